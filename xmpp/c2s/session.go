package c2s

import (
	"bytes"
	"context"
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
	// afterDrain returns bytes to write at the end of a drain (an XEP-0198 ack request), or nil.
	afterDrain func() []byte
	// onClose runs after the queue closed the socket (it wakes a parked reader, see parking in conn.go).
	onClose func()
	// room tells whether the socket can take n more bytes without blocking (nil: never assume so).
	room *roomCheck
	// held: the connection's reader is handling stanzas it has read; a writer that would start now waits for
	// release (deferred), so that what the handling sends goes out in one write.
	held, deferred bool
}

// hold makes writers that would start wait for release.
func (q *outq) hold() {
	q.mu.Lock()
	q.held = true
	q.mu.Unlock()
}

// release starts the writer that hold deferred, if any.
func (q *outq) release() {
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
		q.kick()
	}
}

// writeChunk is the size of the coalescing buffer one drain writes through: a burst of small stanzas goes out in
// one TLS record / one syscall instead of one each.
const writeChunk = 16 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, writeChunk); return &b }}

// push queues b. It reports false when the session is closing or the queue is over its limit.
func (q *outq) push(b []byte) bool {
	ok, start := q.enqueue(b)
	if start {
		go q.drain()
	}
	return ok
}

// enqueue queues b without starting a writer; start reports that the caller must (kick).
func (q *outq) enqueue(b []byte) (ok, start bool) {
	q.mu.Lock()
	if q.closing || q.closed || q.bytes+len(b) > q.max {
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

// kick starts writing what enqueue queued, called with no lock held. When the socket's send buffer has room
// for it, the caller writes it itself: no goroutine is started and none woken, which was a third of the
// server's CPU per routed message. More that arrives meanwhile, or a socket without room, goes to a writer
// goroutine, so a slow client never holds up the sender. It reports whether the caller wrote.
func (q *outq) kick() bool {
	q.mu.Lock()
	n, room := q.bytes, q.room
	q.mu.Unlock()
	if room != nil && room.fits(n) {
		q.run(true)
		return true
	}
	go q.drain()
	return false
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

func (q *outq) drain() { q.run(false) }

// closeConn closes the socket and tells the connection (onClose).
func (q *outq) closeConn() {
	q.conn.Close()
	if q.onClose != nil {
		q.onClose()
	}
}

// run writes the queue until it is empty. inline: the caller's goroutine, which writes one round and hands
// whatever came meanwhile to a writer goroutine.
func (q *outq) run(inline bool) {
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
			if !asked && !q.closing && q.afterDrain != nil {
				// Asked outside q.mu: afterDrain takes the session lock, which is ordered before q.mu.
				q.mu.Unlock()
				asked = true
				if extra := q.afterDrain(); extra != nil {
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
func (q *outq) writeOrFail(bufs [][]byte, bp *[]byte) bool {
	err := q.write(bufs, bp)
	if err == nil {
		return true
	}
	q.mu.Lock()
	q.closed, q.writing, q.bufs = true, false, nil
	q.mu.Unlock()
	q.closeConn()
	if q.onFailed != nil {
		q.onFailed(err)
	}
	return false
}

func (q *outq) write(bufs [][]byte, bp *[]byte) error {
	if q.timeout > 0 {
		q.conn.SetWriteDeadline(time.Now().Add(q.timeout))
	}
	q.mu.Lock()
	room := q.room
	q.mu.Unlock()
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

// session is the module.Session of a bound resource. Without stream management it lives and dies with its
// connection. With XEP-0198 resumption enabled it outlives a broken connection: it hibernates, keeps what is
// sent to it among its unacknowledged stanzas, and a new connection that resumes it gets them replayed.
type session struct {
	srv *Server
	id  string // the id of the connection that bound it, for logs
	jid jid.JID

	mu         sync.Mutex
	conn       *conn // nil while hibernating
	ended      bool
	presence   *stanza.Stanza
	priority   int
	interested bool
	carbons    bool   // XEP-0280 enabled, recorded by the carbons module
	caps       string // XEP-0115 ver of the last presence, recorded by the presence module
	sm         smState
	inactive   bool             // XEP-0352: the client said it is not being looked at
	held       []*stanza.Stanza // what waits for the client to become active
	hIn        *atomic.Uint32   // XEP-0198 inbound count, advanced by the reading connection
	pending    *pending         // durable writes under way for handled stanzas

	available atomic.Bool
}

// smState is the XEP-0198 bookkeeping of a session, guarded by session.mu.
type smState struct {
	enabled   bool
	resumable bool
	id        string
	hOut      uint32 // stanzas sent to the client
	unacked   []*stanza.Stanza
	unackedSz int
	requested bool // an <r/> is outstanding
	timer     *time.Timer
}

func (s *session) ID() string   { return s.id }
func (s *session) JID() jid.JID { return s.jid }

// Send queues a stanza. With stream management it is kept until the client acknowledges it; while the session
// hibernates it is only kept, to be replayed on resumption. While the client is inactive (XEP-0352), what can
// wait is held back.
func (s *session) Send(st *stanza.Stanza) error { return s.send(nil, st) }

// SendBatch is Send from the router (module.BatchSender): when b is the batch of a connection's reader handling
// a burst of its client's stanzas, the write waits for the end of the burst, so that several stanzas for this
// session go out in one write.
func (s *session) SendBatch(b module.WriteBatch, st *stanza.Stanza) error {
	bb, _ := b.(*batch)
	return s.send(bb, st)
}

func (s *session) send(b *batch, st *stanza.Stanza) error {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return errClosed
	}
	if s.inactive {
		if s.hold(st) {
			s.mu.Unlock()
			return nil
		}
		// Something urgent: what was held goes first, so the client sees everything in order.
		held := s.held
		s.held = nil
		for _, h := range held {
			if err := s.sendLocked(b, h); err != nil {
				return err
			}
			s.mu.Lock()
		}
	}
	return s.sendLocked(b, st)
}

// sendLocked queues st; it is called with s.mu held and releases it. b, if not nil, may start the writer later.
func (s *session) sendLocked(b *batch, st *stanza.Stanza) error {
	if s.sm.enabled {
		if s.sm.unackedSz+len(st.Raw) > s.srv.cfg.MaxQueue {
			c := s.conn
			s.mu.Unlock()
			s.srv.log.Warn("too many unacknowledged stanzas; ending session", "session", s.id, "limit", s.srv.cfg.MaxQueue)
			if c != nil {
				c.closeStream("resource-constraint", "too many unacknowledged stanzas")
			} else {
				s.terminate()
			}
			return errClosed
		}
		s.sm.unacked = append(s.sm.unacked, st)
		s.sm.unackedSz += len(st.Raw)
		s.sm.hOut++
	}
	c := s.conn
	if c == nil {
		s.mu.Unlock()
		return nil
	}
	ok, start := c.out.enqueue(st.Raw)
	s.mu.Unlock()
	if start && !b.add(&c.out) {
		c.out.kick()
	}
	if !ok {
		if c.out.isClosing() {
			return errClosed
		}
		c.log.Warn("outbound queue full; closing slow session", "limit", c.out.max)
		c.closeStream("resource-constraint", "too many stanzas queued for this session")
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
	s.srv.router.Update(s)
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

// Describe implements module.Session.
func (s *session) Describe() module.Resource {
	s.mu.Lock()
	defer s.mu.Unlock()
	return module.Resource{JID: s.jid, Available: s.available.Load(), Priority: s.priority, Caps: s.caps,
		Carbons: s.carbons, Inactive: s.inactive}
}

// SetCarbons implements module.Session.
func (s *session) SetCarbons(on bool) {
	s.mu.Lock()
	s.carbons = on
	s.mu.Unlock()
	s.srv.router.Update(s)
}

// SetCaps implements module.Session.
func (s *session) SetCaps(ver string) {
	s.mu.Lock()
	s.caps = ver
	s.mu.Unlock()
	s.srv.router.Update(s)
}

// maxHeld bounds what an inactive session holds back; past it everything is flushed.
const maxHeld = 256

// hold keeps st back while the client is inactive, if it can wait: presence updates (only the latest per
// sender is kept) and messages without a body (chat states). It reports whether st was held. Called with s.mu.
func (s *session) hold(st *stanza.Stanza) bool {
	if len(s.held) >= maxHeld {
		return false
	}
	switch st.Kind {
	case stanza.Presence:
		if st.Type != "" && st.Type != "unavailable" {
			return false // subscription requests and errors go now
		}
		for i, h := range s.held {
			if h.Kind == stanza.Presence && h.From.Equal(st.From) {
				s.held = append(s.held[:i], s.held[i+1:]...)
				break
			}
		}
	case stanza.Message:
		p := st.Payload()
		if st.Type == "groupchat" || bytes.Contains(p, []byte("<body")) || bytes.Contains(p, []byte("<encrypted")) ||
			!bytes.Contains(p, []byte("http://jabber.org/protocol/chatstates")) {
			return false
		}
	default:
		return false
	}
	s.held = append(s.held, st)
	return true
}

// setActive records a XEP-0352 state change; becoming active flushes what was held.
func (s *session) setActive(active bool) {
	defer s.srv.router.Update(s) // Resource.Inactive
	s.mu.Lock()
	s.inactive = !active
	held := s.held
	s.held = nil
	if !active || len(held) == 0 {
		s.held = held
		s.mu.Unlock()
		return
	}
	for _, h := range held {
		if s.sendLocked(nil, h) != nil {
			return
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
}

// Hibernating implements module.Session.
func (s *session) Hibernating() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn == nil && !s.ended
}

// Close ends the session: its connection gets the stream error; a hibernating session ends at once.
func (s *session) Close(condition, text string) {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		c.closeStream(condition, text)
		return
	}
	s.terminate()
}

// ack drops the stanzas the client acknowledged with h. It reports false when h acknowledges more than was sent.
func (s *session) ack(h uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sm.requested = false
	sentBefore := s.sm.hOut - uint32(len(s.sm.unacked)) // h of the oldest unacknowledged stanza, minus one
	n := h - sentBefore                                 // uint32 arithmetic wraps like the counters (XEP-0198 5)
	if n > uint32(len(s.sm.unacked)) {
		return false
	}
	for _, st := range s.sm.unacked[:n] {
		s.sm.unackedSz -= len(st.Raw)
	}
	clear(s.sm.unacked[:n])
	s.sm.unacked = s.sm.unacked[n:]
	return true
}

// wantAck says whether the writer should ask the client for an acknowledgement after a drain: there are
// unacknowledged stanzas and no request is outstanding.
func (s *session) wantAck() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sm.enabled || len(s.sm.unacked) == 0 || s.sm.requested {
		return false
	}
	s.sm.requested = true
	return true
}

// hibernate detaches the session from its broken connection and waits for a resumption.
func (s *session) hibernate(c *conn) {
	s.mu.Lock()
	if s.conn != c || s.ended {
		s.mu.Unlock()
		return
	}
	s.conn = nil
	s.sm.requested = false
	timeout := s.srv.cfg.ResumeTimeout
	s.sm.timer = time.AfterFunc(timeout, s.terminate)
	s.mu.Unlock()
	s.srv.log.Info("session hibernating", "session", s.id, "jid", s.jid.String(), "timeout", timeout)
}

// terminate ends the session for good: it leaves the router, its Closed hooks run (unavailable presence), and
// messages the client never acknowledged are routed again, so that they reach another resource or offline
// storage rather than being lost (XEP-0198 section 5).
func (s *session) terminate() {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	if s.sm.timer != nil {
		s.sm.timer.Stop()
	}
	unacked := s.sm.unacked
	s.sm.unacked, s.sm.unackedSz = nil, 0
	resumable, id := s.sm.resumable, s.sm.id
	s.mu.Unlock()
	if resumable {
		s.srv.forgetResumable(id, s)
	}
	ctx := context.Background()
	s.srv.router.Unbind(s)
	s.srv.router.Notify(ctx, module.Closed, s)
	n := 0
	for _, st := range unacked {
		if st.Kind == stanza.Message && st.Type != "error" && st.Type != "groupchat" {
			s.srv.router.Route(ctx, st)
			n++
		}
	}
	s.srv.log.Info("session ended", "session", s.id, "jid", s.jid.String(), "rerouted_unacked", n)
}

var _ module.Session = (*session)(nil)

// batch collects the queues whose writers a connection's reader started while it handled a burst of its
// client's stanzas; release starts them together at the end of the burst, each writing everything queued by
// then in one write. Other goroutines may add to it (a context can outlive the burst): while no burst is under
// way, add refuses and the caller starts the writer itself.
type batch struct {
	mu     sync.Mutex
	active bool
	qs     []*outq
	spare  []*outq
}

// WriteBatch implements module.WriteBatch: the router passes the batch in the Origin of the reader's stanzas.
func (*batch) WriteBatch() {}

var _ module.WriteBatch = (*batch)(nil)

// add defers starting q's writer to release; false if no burst is under way (or b is nil).
func (b *batch) add(q *outq) bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.active {
		return false
	}
	b.qs = append(b.qs, q)
	return true
}

func (b *batch) hold() {
	b.mu.Lock()
	b.active = true
	b.mu.Unlock()
}

// release ends the burst and starts the writers deferred during it. Only the reader calls it.
func (b *batch) release() {
	b.mu.Lock()
	if !b.active {
		b.mu.Unlock()
		return
	}
	b.active = false
	qs := b.qs
	b.qs, b.spare = b.spare[:0], nil
	b.mu.Unlock()
	for i, q := range qs {
		q.kick()
		qs[i] = nil
	}
	b.mu.Lock()
	b.spare = qs[:0]
	b.mu.Unlock()
}
