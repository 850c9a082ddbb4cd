package c2s

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
	"parley.im/parley/xmpp/transport"
)

var errClosed = errors.New("c2s: session closed")

// session is the module.Session of a bound resource. Without stream management it lives and dies with its
// connection. With XEP-0198 resumption enabled it outlives a broken connection: it hibernates, keeps what is
// sent to it among its unacknowledged stanzas, and a new connection that resumes it gets them replayed.
type session struct {
	srv *Server
	id  string // the id of the connection that bound it, for logs
	jid jid.JID

	mu    sync.Mutex
	conn  *conn // nil while hibernating
	ended bool
	// late are messages the router handed over after the session ended but before terminate routed its
	// unacknowledged messages again (the router picked the session just before it was unbound); rerouted is
	// set once terminate has done so. Neither kind of message is refused: it would be lost.
	late       []*stanza.Stanza
	rerouted   bool
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
	bb, _ := b.(*transport.Batch)
	return s.send(bb, st)
}

func (s *session) send(b *transport.Batch, st *stanza.Stanza) error {
	s.mu.Lock()
	if s.ended {
		if !reroutable(st) {
			s.mu.Unlock()
			return errClosed
		}
		if !s.rerouted {
			s.late = append(s.late, st) // terminate routes it again after the unacknowledged ones
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		// The session is unbound by now: the router cannot pick it again.
		s.srv.router.Route(context.Background(), st)
		return nil
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
func (s *session) sendLocked(b *transport.Batch, st *stanza.Stanza) error {
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
	ok, start := c.out.Enqueue(st.Raw)
	s.mu.Unlock()
	if start && !b.Add(&c.out) {
		c.out.Kick()
	}
	if !ok {
		if c.out.Closing() {
			return errClosed
		}
		c.log.Warn("outbound queue full; closing slow session", "limit", c.out.Max)
		c.closeStream("resource-constraint", "too many stanzas queued for this session")
		return errClosed
	}
	return nil
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
	unacked, ok := s.markEnded()
	if ok {
		s.finish(unacked)
	}
}

// markEnded is terminate's first half: the session takes no more stanzas for its client, and its
// unacknowledged ones are taken out. It reports false if the session had ended already.
func (s *session) markEnded() (unacked []*stanza.Stanza, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, false
	}
	s.ended = true
	if s.sm.timer != nil {
		s.sm.timer.Stop()
	}
	unacked = s.sm.unacked
	s.sm.unacked, s.sm.unackedSz = nil, 0
	return unacked, true
}

// finish is terminate's second half: unbind, the Closed hooks, then every message the client never got is
// routed again (another resource, or offline storage): the unacknowledged ones, then those handed over after
// the session ended (late).
func (s *session) finish(unacked []*stanza.Stanza) {
	s.mu.Lock()
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
		if reroutable(st) {
			s.srv.router.Route(ctx, st)
			n++
		}
	}
	s.mu.Lock()
	late := s.late
	s.late, s.rerouted = nil, true
	s.mu.Unlock()
	for _, st := range late {
		s.srv.router.Route(ctx, st)
	}
	s.srv.log.Info("session ended", "session", s.id, "jid", s.jid.String(), "rerouted_unacked", n, "rerouted_late", len(late))
}

// reroutable reports whether a stanza a session's client never got is routed again when the session ends: a
// message that is not an error, a groupchat message (the room has it), a carbon copy or an archive result (both
// addressed to this resource only, and meaningless to another).
func reroutable(st *stanza.Stanza) bool {
	if st.Kind != stanza.Message || st.Type == "error" || st.Type == "groupchat" {
		return false
	}
	copied := false
	stanza.Children(st.Payload(), func(local, ns string, _ []byte) bool {
		copied = (ns == "urn:xmpp:carbons:2" && (local == "sent" || local == "received")) ||
			(ns == "urn:xmpp:mam:2" && local == "result")
		return !copied
	})
	return !copied
}

var _ module.Session = (*session)(nil)

// The reader's transport.Batch travels to session.SendBatch in the Origin of the stanzas it routes
// (module.WriteBatch): the writers of the sessions it sends to start together at the end of its burst.
var _ module.WriteBatch = (*transport.Batch)(nil)
