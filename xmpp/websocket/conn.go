package websocket

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

var (
	// ErrIdle is what Read returns after the connection was closed for silence (no message and no pong for
	// IdleTimeout). c2s treats it like a broken TCP connection: a resumable session hibernates.
	ErrIdle = errors.New("websocket: idle timeout")
	// ErrBinary is what Read returns after the client sent a binary message (RFC 7395 uses text messages).
	ErrBinary = errors.New("websocket: binary message")
)

// maxOutgoing bounds one element the server sends (c2s bounds its queue by c2s.max_queue, 4 MiB by default).
const maxOutgoing = 64 << 20

// chunkSize is what the reading goroutine passes to Read at a time.
const chunkSize = 4096

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// Conn is one XMPP WebSocket connection seen as the byte stream of a TCP XMPP connection (net.Conn), so that
// the c2s session core serves it unchanged.
//
// Read returns the client's messages as one XML stream: <open/> becomes a stream header, <close/> the stream
// close tag, anything else passes unchanged. Write takes the server's stream (coalesced or split arbitrarily)
// and sends one text message per top-level element. Deadlines work as on a TCP connection: a read that times
// out can be retried. Close sends a close frame with status 1000.
//
// The WebSocket library is always given context.Background(): a context that can end costs the library a
// context.AfterFunc per frame read or written. Close ends the library's connection instead, and the write
// deadline is set on the socket (batchConn), once per Write.
type Conn struct {
	ws     *websocket.Conn
	nc     *batchConn // under ws
	local  net.Addr
	remote net.Addr
	log    *slog.Logger

	pingInterval, idleTimeout time.Duration

	// Read side: a goroutine (pump) reads messages and hands them over one chunk at a time.
	data     chan []byte   // pump → Read
	consumed chan struct{} // Read → pump: the chunk was used up
	pumpDone chan struct{}
	readErr  error // set before pumpDone is closed
	rmu      sync.Mutex
	pending  []byte
	rdl      deadline

	// Write side.
	wmu   sync.Mutex
	split *splitter
	wdl   atomic.Int64 // write deadline, unix nanoseconds; 0 for none

	closed    chan struct{}
	closeOnce sync.Once
	cause     error // why the connection was closed by this side, if not by Close; set before closed is closed
	onClose   func()

	lastRecv atomic.Int64 // unix nanoseconds of the last frame from the client
	busy     atomic.Bool  // the pump waits for Read: the client is not idle, the server is slow
	timer    *time.Timer
}

func newConn(ws *websocket.Conn, nc *batchConn, local, remote net.Addr, cfg Config, log *slog.Logger) *Conn {
	c := &Conn{
		ws: ws, nc: nc, local: local, remote: remote, log: log,
		pingInterval: cfg.PingInterval, idleTimeout: cfg.IdleTimeout,
		data:     make(chan []byte),
		consumed: make(chan struct{}, 1),
		pumpDone: make(chan struct{}),
		rdl:      makeDeadline(),
		split:    newSplitter(maxOutgoing),
		closed:   make(chan struct{}),
	}
	c.touch()
	return c
}

// start begins reading and the keepalive; separate from newConn so that the ping callback can find c.
func (c *Conn) start() {
	if c.pingInterval > 0 {
		c.timer = time.AfterFunc(time.Hour, c.keepalive)
		c.timer.Reset(c.pingInterval)
	}
	go c.pump()
}

func (c *Conn) touch() { c.lastRecv.Store(time.Now().UnixNano()) }

func (c *Conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// pump reads WebSocket messages until the connection ends.
func (c *Conn) pump() {
	var err error
	defer func() {
		c.readErr = err
		close(c.pumpDone)
	}()
	for {
		typ, r, rerr := c.ws.Reader(context.Background())
		if rerr != nil {
			err = c.readError(rerr)
			return
		}
		c.touch()
		if typ != websocket.MessageText {
			c.closeWith(websocket.StatusUnsupportedData, "XMPP uses text messages", ErrBinary)
			err = ErrBinary
			return
		}
		if err = c.forward(r); err != nil {
			err = c.readError(err)
			return
		}
	}
}

// readError maps what the WebSocket library returned to what the c2s reader should see: io.EOF when the
// client closed the WebSocket (without <close/>, the reader reports an unexpected EOF: a broken stream).
func (c *Conn) readError(err error) error {
	if c.isClosed() {
		return c.closedErr()
	}
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd:
		return io.EOF
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return io.EOF
	}
	return err
}

// closedErr is what Read returns once the connection is closed: why this side closed it, or net.ErrClosed.
func (c *Conn) closedErr() error {
	if c.cause != nil {
		return c.cause
	}
	return net.ErrClosed
}

// forward passes one message to Read: translated if it is an <open/> or <close/>, else unchanged and in
// chunks, so a large stanza is never held whole here (the c2s reader enforces its size limit as it reads).
func (c *Conn) forward(r io.Reader) error {
	bp := chunkPool.Get().(*[]byte)
	pool := false
	defer func() {
		// Pooled again only after a message was read to its end and used up. On an error (a close) Read may
		// still hold a slice of it: another connection must never get bytes of this one.
		if pool {
			chunkPool.Put(bp)
		}
	}()
	buf := *bp
	n, eof := 0, false
	for !eof && n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			eof = true
		} else if err != nil {
			return err
		}
		if _, complete := firstName(buf[:n]); complete {
			break
		}
	}
	if local, complete := firstName(buf[:n]); complete && isFramingName(local) {
		msg := buf[:n]
		for !eof && len(msg) <= maxFramingMessage {
			if len(msg) == cap(msg) {
				msg = append(msg, 0)[:len(msg)]
			}
			m, err := r.Read(msg[len(msg):cap(msg)])
			msg = msg[:len(msg)+m]
			if err == io.EOF {
				eof = true
			} else if err != nil {
				return err
			}
		}
		if eof {
			if out, ok := translateIn(msg); ok {
				pool = true // Read gets out, a copy
				return c.deliver(out)
			}
		}
		if err := c.deliver(msg); err != nil {
			return err
		}
		n = 0
	}
	for {
		if n > 0 {
			if err := c.deliver(buf[:n]); err != nil {
				return err
			}
		}
		if eof {
			pool = true
			return nil
		}
		m, err := r.Read(buf)
		n = m
		if err == io.EOF {
			eof = true
		} else if err != nil {
			return err
		}
	}
}

// deliver hands b to Read and waits until it has been used up.
func (c *Conn) deliver(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	c.busy.Store(true)
	defer func() {
		c.busy.Store(false)
		c.touch()
	}()
	select {
	case c.data <- b:
	case <-c.closed:
		return net.ErrClosed
	}
	select {
	case <-c.consumed:
		return nil
	case <-c.closed:
		return net.ErrClosed
	}
}

// Read reads the client's XML stream.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	if c.isClosed() {
		c.pending = nil
		return 0, c.closedErr()
	}
	if len(c.pending) == 0 {
		select {
		case <-c.rdl.wait():
			return 0, os.ErrDeadlineExceeded
		default:
		}
		select {
		case b := <-c.data:
			c.pending = b
		case <-c.pumpDone:
			return 0, c.readErr
		case <-c.rdl.wait():
			return 0, os.ErrDeadlineExceeded
		case <-c.closed:
			return 0, c.closedErr()
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil
		c.consumed <- struct{}{}
	}
	return n, nil
}

// Write sends the server's stream as one message per top-level element. It returns when those messages are
// written; bytes of an unfinished element are kept for the next Write.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.isClosed() {
		return 0, net.ErrClosed
	}
	var dl time.Time
	if d := c.wdl.Load(); d != 0 {
		dl = time.Unix(0, d)
		if !time.Now().Before(dl) {
			return 0, os.ErrDeadlineExceeded
		}
	}
	// One network write for all the messages of p (see batchConn).
	c.nc.begin(dl)
	err := c.split.write(p, func(msg []byte) error {
		return c.ws.Write(context.Background(), websocket.MessageText, msg)
	})
	if ferr := c.nc.end(); err == nil {
		err = ferr
	}
	if err != nil {
		switch {
		case errors.Is(err, errOutput):
			c.log.Error("server output not framed; closing", "err", err)
			c.closeWith(websocket.StatusInternalError, "", err)
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Part of a message may have been sent: the stream cannot go on, so the socket is closed now.
			c.nc.Close()
			err = os.ErrDeadlineExceeded
		case c.isClosed():
			err = net.ErrClosed
		}
		return 0, err
	}
	return len(p), nil
}

// Close closes the WebSocket with status 1000 after a close handshake, which runs in the background: Read,
// Write and the keepalive stop at once.
func (c *Conn) Close() error {
	if c.isClosed() {
		return net.ErrClosed
	}
	c.closeWith(websocket.StatusNormalClosure, "", nil)
	return nil
}

func (c *Conn) closeWith(code websocket.StatusCode, reason string, cause error) {
	c.closeOnce.Do(func() {
		c.cause = cause
		close(c.closed)
		if c.timer != nil {
			c.timer.Stop()
		}
		if c.onClose != nil {
			c.onClose()
		}
		go func() {
			// The handshake waits at most a few seconds for the client's close frame.
			c.ws.Close(code, reason)
		}()
	})
}

// keepalive runs every PingInterval: it pings a silent client and closes a connection silent for IdleTimeout.
func (c *Conn) keepalive() {
	if c.isClosed() {
		return
	}
	idle := time.Since(time.Unix(0, c.lastRecv.Load()))
	if c.busy.Load() {
		idle = 0
	}
	switch {
	case idle >= c.idleTimeout:
		c.log.Debug("websocket idle; closing", "idle", idle)
		c.closeWith(websocket.StatusGoingAway, "idle timeout", ErrIdle)
		return
	case idle >= c.pingInterval:
		ctx, cancel := context.WithTimeout(context.Background(), c.pingInterval)
		err := c.ws.Ping(ctx)
		cancel()
		if err == nil {
			c.touch()
		}
		c.timer.Reset(c.pingInterval)
	default:
		c.timer.Reset(c.pingInterval - idle)
	}
}

func (c *Conn) LocalAddr() net.Addr  { return c.local }
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rdl.set(t)
	return nil
}

// SetWriteDeadline bounds later Writes' network writes. A write that times out closes the connection (a TCP
// write that timed out leaves the stream in an unknown state too). Waiting for a control frame that another
// goroutine is writing is bounded by the library's own timeout for those (5 s), not by the deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.wdl.Store(0)
	} else {
		c.wdl.Store(t.UnixNano())
	}
	return nil
}

// deadline is a read deadline that a blocked Read can wait on: a channel closed when the time passes.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{}
}

func makeDeadline() deadline { return deadline{cancel: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait until its function has closed cancel
	}
	d.timer = nil
	closed := isClosedChan(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		ch := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosedChan(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

var _ net.Conn = (*Conn)(nil)
