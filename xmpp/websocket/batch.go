package websocket

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"time"
)

// batchMax bounds what batchConn gathers before it writes: a c2s chunk (16 KiB of stanzas) plus frame headers
// fits, a large element goes out in pieces of about this size.
const batchMax = 64 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, batchMax); return &b }}

// batchConn is the hijacked connection under the WebSocket library. The library flushes every message it
// writes (one TLS record and one write(2) per stanza); between begin and end, batchConn gathers those writes
// and sends them with one Write, so one Conn.Write (a c2s chunk of many stanzas) costs one of each. Every
// stanza is still its own complete message, in order: only the syscalls are merged.
//
// It also carries Conn's write deadline, on the socket itself and only for the writes of one batch, so that no
// context or timer is set up per frame.
type batchConn struct {
	net.Conn

	mu       sync.Mutex
	batching bool
	deadline bool // a write deadline is set on Conn for this batch
	buf      *[]byte
	err      error // the first write error; the byte stream is broken after it, so every later write fails
}

// begin gathers writes until end. A non-zero dl bounds the batch's writes to the network.
func (b *batchConn) begin(dl time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = true
	if !dl.IsZero() {
		b.Conn.SetWriteDeadline(dl)
		b.deadline = true
	}
}

// end writes what was gathered since begin and stops gathering.
func (b *batchConn) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.flush()
	if b.buf != nil {
		*b.buf = (*b.buf)[:0]
		batchPool.Put(b.buf)
		b.buf = nil
	}
	b.batching = false
	if b.deadline {
		// Control frames written outside a batch (pongs, pings, the close frame) have their own timeouts.
		b.Conn.SetWriteDeadline(time.Time{})
		b.deadline = false
	}
	return err
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if !b.batching {
		return b.write(p)
	}
	if b.buf != nil && len(*b.buf)+len(p) > batchMax {
		if err := b.flush(); err != nil {
			return 0, err
		}
	}
	if len(p) >= batchMax {
		return b.write(p)
	}
	if b.buf == nil {
		b.buf = batchPool.Get().(*[]byte)
	}
	*b.buf = append(*b.buf, p...)
	return len(p), nil
}

// flush writes the gathered bytes; b.mu is held.
func (b *batchConn) flush() error {
	if b.err != nil {
		return b.err
	}
	if b.buf == nil || len(*b.buf) == 0 {
		return nil
	}
	_, err := b.write(*b.buf)
	*b.buf = (*b.buf)[:0]
	return err
}

// write writes p to the network; b.mu is held.
func (b *batchConn) write(p []byte) (int, error) {
	n, err := b.Conn.Write(p)
	if err != nil {
		b.err = err
	}
	return n, err
}

// batchResponse hands the WebSocket library a batchConn when it hijacks the HTTP connection.
type batchResponse struct {
	http.ResponseWriter
	conn *batchConn // set by Hijack
}

func (w *batchResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// net/http has flushed the 101 response; anything else still buffered must go out before the frames.
	if err := brw.Writer.Flush(); err != nil {
		nc.Close()
		return nil, nil, err
	}
	w.conn = &batchConn{Conn: nc}
	// The library reads through brw.Reader (bytes net/http read ahead, then the connection) and writes through
	// brw.Writer, which it flushes after each message: now into w.conn.
	brw.Writer.Reset(w.conn)
	return w.conn, brw, nil
}

func (w *batchResponse) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var (
	_ net.Conn      = (*batchConn)(nil)
	_ http.Hijacker = (*batchResponse)(nil)
)
