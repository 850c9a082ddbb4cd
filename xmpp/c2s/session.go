package c2s

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

var errClosed = errors.New("c2s: session closed")

// outq is a session's outbound queue. The read side of any session only appends to it; a writer goroutine is
// started when the queue goes from empty to non-empty and exits when it has drained it, so an idle session
// holds no writer goroutine and no write buffer.
type outq struct {
	mu       sync.Mutex
	bufs     [][]byte
	bytes    int
	writing  bool
	closing  bool // no more appends; close the socket after the queue drains
	closed   bool // the socket is closed
	max      int
	conn     net.Conn
	timeout  time.Duration
	onFailed func(error)
}

// writeChunk is the size of the coalescing buffer one drain writes through: a burst of small stanzas goes out in
// one TLS record / one syscall instead of one each.
const writeChunk = 16 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, writeChunk); return &b }}

// push queues b. It reports false when the session is closing or the queue is over its limit.
func (q *outq) push(b []byte) bool {
	q.mu.Lock()
	if q.closing || q.closed {
		q.mu.Unlock()
		return false
	}
	if q.bytes+len(b) > q.max {
		q.mu.Unlock()
		return false
	}
	q.bufs = append(q.bufs, b)
	q.bytes += len(b)
	start := !q.writing
	q.writing = true
	q.mu.Unlock()
	if start {
		go q.drain()
	}
	return true
}

// finish queues last (a stream error and/or the stream close tag) and closes the socket once everything queued
// before it is written.
func (q *outq) finish(last []byte) {
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

func (q *outq) drain() {
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	for {
		q.mu.Lock()
		bufs := q.bufs
		q.bufs = nil
		q.bytes = 0
		if len(bufs) == 0 {
			q.writing = false
			closing := q.closing && !q.closed
			if closing {
				q.closed = true
			}
			q.mu.Unlock()
			if closing {
				q.conn.Close()
			}
			return
		}
		q.mu.Unlock()
		if err := q.write(bufs, bp); err != nil {
			q.mu.Lock()
			q.closed, q.writing, q.bufs = true, false, nil
			q.mu.Unlock()
			q.conn.Close()
			if q.onFailed != nil {
				q.onFailed(err)
			}
			return
		}
	}
}

func (q *outq) write(bufs [][]byte, bp *[]byte) error {
	if q.timeout > 0 {
		q.conn.SetWriteDeadline(time.Now().Add(q.timeout))
	}
	chunk := (*bp)[:0]
	for _, b := range bufs {
		if len(chunk)+len(b) > cap(chunk) && len(chunk) > 0 {
			if _, err := q.conn.Write(chunk); err != nil {
				return err
			}
			chunk = chunk[:0]
		}
		if len(b) > cap(chunk) {
			if _, err := q.conn.Write(b); err != nil {
				return err
			}
			continue
		}
		chunk = append(chunk, b...)
	}
	if len(chunk) > 0 {
		if _, err := q.conn.Write(chunk); err != nil {
			return err
		}
	}
	return nil
}

// session is the module.Session of a bound connection. Presence fields are guarded by mu; the router reads them
// for every message to the account, the presence module writes them.
type session struct {
	c *conn

	mu         sync.Mutex
	presence   *stanza.Stanza
	priority   int
	interested bool

	available atomic.Bool
}

func (s *session) ID() string   { return s.c.id }
func (s *session) JID() jid.JID { return s.c.jid }

func (s *session) Send(st *stanza.Stanza) error {
	if !s.c.out.push(st.Raw) {
		if s.c.out.isClosing() {
			return errClosed
		}
		s.c.log.Warn("outbound queue full; closing slow session", "limit", s.c.out.max)
		s.Close("resource-constraint", "too many stanzas queued for this session")
		return errClosed
	}
	return nil
}

func (q *outq) isClosing() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closing || q.closed
}

func (s *session) Presence() *stanza.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.presence
}

func (s *session) Priority() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.priority
}

func (s *session) Available() bool { return s.available.Load() }

func (s *session) SetPresence(p *stanza.Stanza, priority int) {
	s.mu.Lock()
	s.presence, s.priority = p, priority
	s.mu.Unlock()
	s.available.Store(p != nil)
}

func (s *session) Interested() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.interested
}

func (s *session) SetInterested() {
	s.mu.Lock()
	s.interested = true
	s.mu.Unlock()
}

func (s *session) Close(condition, text string) { s.c.closeStream(condition, text) }

var _ module.Session = (*session)(nil)
