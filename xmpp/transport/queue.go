// Package transport is the connection layer under Parley's XML streams: a bounded outbound queue per connection
// that coalesces what is queued into few writes, written by a writer goroutine that exists only while there is
// something to write or, within a budget, by the goroutine that queued it (Queue, Batch); parking an idle
// connection's reader in one process-wide epoll poller (Parker); raw nonblocking socket I/O through package sock
// (Wrap); and closing a stream with a stream error (AppendStreamError, Queue.CloseStream).
//
// It knows nothing of what a stream carries: client (xmpp/c2s), server-to-server and component streams all use
// it, and it imports none of them, nor the router or storage.
package transport

import (
	"errors"
	"math"
	"net"
	"sync"
	"time"

	"parley.im/parley/xmpp/sock"
)

// ErrClosed is returned by Flush when the queue's socket is closed.
var ErrClosed = errors.New("transport: connection closed")

// Queue is a connection's outbound queue. The read side of any session only appends to it; a writer goroutine
// is started when the queue goes from empty to non-empty and exits when it has drained it, so an idle
// connection holds no writer goroutine and no write buffer. The exported fields are set before the first Push
// and not changed afterwards (AfterDrain may be set again by the connection's reader before its session's
// first stanza, as at binding and resumption).
type Queue struct {
	// Max bounds the bytes queued and not yet written; past it Push and Enqueue refuse.
	Max int
	// Timeout, if set, is the write deadline set before each write (0: the connection bounds its writes
	// itself, as a sock.Conn does).
	Timeout time.Duration
	// OnFailed is told of a write error, after the queue closed the socket.
	OnFailed func(error)
	// AfterDrain returns bytes to write at the end of a drain (an XEP-0198 ack request), or nil. It is called
	// with no queue lock held: it may take the session's lock, which is ordered before the queue's.
	AfterDrain func() []byte
	// OnClose runs after the queue closed the socket (it wakes a parked reader, see Parker.Wake).
	OnClose func()

	mu      sync.Mutex
	bufs    [][]byte
	bytes   int
	writing bool
	closing bool // no more appends; close the socket after the queue drains
	closed  bool // the socket is closed
	conn    net.Conn
	// room tells whether the socket can take n more bytes without blocking (nil: never assume so).
	room *RoomCheck
	// held: the connection's reader is handling stanzas it has read; a writer that would start now waits for
	// release (deferred), so that what the handling sends goes out in one write.
	held, deferred bool
}

// Init sets the queue up to write to nc with at most max bytes queued and returns the connection to read
// from and write to: a TCP connection is wrapped for raw nonblocking I/O (sock.Wrap), which then bounds how
// long a write may wait by writeTimeout itself; anything else gets the deadline set by the queue.
func (q *Queue) Init(nc net.Conn, max int, writeTimeout time.Duration) net.Conn {
	q.Max = max
	if sc := sock.Wrap(nc, writeTimeout); sc != nc {
		nc = sc // it arms the write timeout itself, only when a write has to wait
	} else {
		q.Timeout = writeTimeout
	}
	q.conn = nc
	return nc
}

// SetConn makes the queue write to nc from now on (the TLS connection over the socket, after a handshake).
func (q *Queue) SetConn(nc net.Conn) {
	q.mu.Lock()
	q.conn = nc
	q.mu.Unlock()
}

// SetRoom installs the send-buffer check (SendRoom) that lets Kick write inline; nil disables inline writes.
func (q *Queue) SetRoom(r *RoomCheck) {
	q.mu.Lock()
	q.room = r
	q.mu.Unlock()
}

// Hold makes writers that would start wait for Release.
func (q *Queue) Hold() {
	q.mu.Lock()
	q.held = true
	q.mu.Unlock()
}

// Release starts the writer that Hold deferred, if any.
func (q *Queue) Release() {
	q.mu.Lock()
	if !q.held {
		q.mu.Unlock()
		return
	}
	q.held = false
	d := q.deferred
	q.deferred = false
	q.mu.Unlock()
	if d {
		q.Kick()
	}
}

// writeChunk is the size of the coalescing buffer one drain writes through: a burst of small stanzas goes out in
// one TLS record / one syscall instead of one each.
const writeChunk = 16 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, writeChunk); return &b }}

// Push queues b and starts a writer goroutine if none runs. It reports false when the connection is closing or
// the queue is over its limit.
func (q *Queue) Push(b []byte) bool {
	ok, start := q.Enqueue(b)
	if start {
		go q.drain()
	}
	return ok
}

// Enqueue queues b without starting a writer; start reports that the caller must (Kick, or Batch.Add).
func (q *Queue) Enqueue(b []byte) (ok, start bool) {
	q.mu.Lock()
	if q.closing || q.closed || q.bytes+len(b) > q.Max {
		q.mu.Unlock()
		return false, false
	}
	q.bufs = append(q.bufs, b)
	q.bytes += len(b)
	start = !q.writing
	q.writing = true
	if start && q.held {
		q.deferred, start = true, false // the reader's release starts it
	}
	q.mu.Unlock()
	return true, start
}

// Kick starts writing what Enqueue queued, called with no lock held. When the socket's send buffer has room
// for it, the caller writes it itself: no goroutine is started and none woken, which was a third of the
// server's CPU per routed message. More that arrives meanwhile, or a socket without room, goes to a writer
// goroutine, so a slow client never holds up the sender. It reports whether the caller wrote.
func (q *Queue) Kick() bool {
	wrote, _ := q.kick(math.MaxInt)
	return wrote
}

// kick is Kick, writing inline only if at most limit bytes are queued (limit < 0: never). n is what was queued
// when it looked (what an inline write wrote, give or take what came meanwhile).
func (q *Queue) kick(limit int) (wrote bool, n int) {
	q.mu.Lock()
	n, room := q.bytes, q.room
	q.mu.Unlock()
	if n <= limit && room != nil && room.fits(n) {
		q.run(true)
		return true, n
	}
	go q.drain()
	return false, n
}

// Finish queues last (a stream error and/or the stream close tag) and closes the socket once everything queued
// before it is written. Nothing is queued after it.
func (q *Queue) Finish(last []byte) {
	q.mu.Lock()
	if q.closing || q.closed {
		q.mu.Unlock()
		return
	}
	q.closing = true
	if len(last) > 0 {
		q.bufs = append(q.bufs, last)
		q.bytes += len(last)
	}
	start := !q.writing
	q.writing = true
	q.mu.Unlock()
	if start {
		go q.drain()
	}
}

// Closing reports whether the queue takes no more (Finish was called or the socket is closed).
func (q *Queue) Closing() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closing || q.closed
}

// Idle reports whether no writer is running (everything queued has been written).
func (q *Queue) Idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.writing
}

// Flush waits until everything queued has been written, for at most timeout (STARTTLS: <proceed/> must be on
// the wire in plaintext before the handshake starts). Only the connection's reader calls it, before anything
// else writes to the connection.
func (q *Queue) Flush(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		q.mu.Lock()
		idle, closed := !q.writing, q.closed
		q.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if idle {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("transport: write timed out")
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func (q *Queue) drain() { q.run(false) }

// closeConn closes the socket and tells the connection (OnClose).
func (q *Queue) closeConn() {
	q.conn.Close()
	if q.OnClose != nil {
		q.OnClose()
	}
}

// run writes the queue until it is empty. inline: the caller's goroutine, which writes one round and hands
// whatever came meanwhile to a writer goroutine.
func (q *Queue) run(inline bool) {
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	asked := false
	rounds := 0
	for {
		q.mu.Lock()
		bufs := q.bufs
		if inline && rounds > 0 && len(bufs) > 0 {
			q.mu.Unlock()
			go q.drain() // q.writing stays true: the writer goroutine takes over
			return
		}
		rounds++
		q.bufs = nil
		q.bytes = 0
		if len(bufs) == 0 {
			if !asked && !q.closing && q.AfterDrain != nil {
				// Asked outside q.mu: AfterDrain takes the session lock, which is ordered before q.mu.
				q.mu.Unlock()
				asked = true
				if extra := q.AfterDrain(); extra != nil {
					if !q.writeOrFail([][]byte{extra}, bp) {
						return
					}
				}
				continue
			}
			q.writing = false
			closing := q.closing && !q.closed
			if closing {
				q.closed = true
			}
			q.mu.Unlock()
			if closing {
				q.closeConn()
			}
			return
		}
		asked = false
		q.mu.Unlock()
		if !q.writeOrFail(bufs, bp) {
			return
		}
	}
}

// writeOrFail writes bufs; on error it marks the queue closed, closes the socket and reports false.
func (q *Queue) writeOrFail(bufs [][]byte, bp *[]byte) bool {
	err := q.write(bufs, bp)
	if err == nil {
		return true
	}
	q.mu.Lock()
	q.closed, q.writing, q.bufs = true, false, nil
	q.mu.Unlock()
	q.closeConn()
	if q.OnFailed != nil {
		q.OnFailed(err)
	}
	return false
}

func (q *Queue) write(bufs [][]byte, bp *[]byte) error {
	q.mu.Lock()
	conn, room := q.conn, q.room
	q.mu.Unlock()
	if q.Timeout > 0 {
		conn.SetWriteDeadline(time.Now().Add(q.Timeout))
	}
	if room != nil {
		n := 0
		for _, b := range bufs {
			n += len(b)
		}
		room.wrote(n)
	}
	chunk := (*bp)[:0]
	for _, b := range bufs {
		if len(chunk)+len(b) > cap(chunk) && len(chunk) > 0 {
			if _, err := conn.Write(chunk); err != nil {
				return err
			}
			chunk = chunk[:0]
		}
		if len(b) > cap(chunk) {
			if _, err := conn.Write(b); err != nil {
				return err
			}
			continue
		}
		chunk = append(chunk, b...)
	}
	if len(chunk) > 0 {
		if _, err := conn.Write(chunk); err != nil {
			return err
		}
	}
	return nil
}
