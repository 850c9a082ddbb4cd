package moduletest

import (
	"strconv"
	"sync"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// Session is a fake module.Session. It records every stanza it is sent, in order, and its presence, priority,
// interest in the roster and hibernation can be set by the test. It is safe for concurrent use.
type Session struct {
	jid jid.JID

	mu          sync.Mutex
	received    []*stanza.Stanza
	presence    *stanza.Stanza
	priority    int
	interested  bool
	hibernating bool
	carbons     bool
	caps        string
	closed      bool
	condition   string
	closeText   string
	sendErr     error
}

// NewSession returns an unbound, unavailable session with the full JID full. It panics if full is not a valid
// full JID, as a test fixture should.
func NewSession(full string) *Session {
	j := jid.MustParse(full)
	if j.Resourcepart() == "" {
		panic("moduletest: session JID " + full + " has no resource")
	}
	return &Session{jid: j}
}

// ID implements module.Session: the full JID.
func (s *Session) ID() string { return s.jid.String() }

// JID implements module.Session.
func (s *Session) JID() jid.JID { return s.jid }

// Send implements module.Session: it records st, or fails with the error set by FailSends.
func (s *Session) Send(st *stanza.Stanza) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sendErr != nil {
		return s.sendErr
	}
	s.received = append(s.received, st)
	return nil
}

// FailSends makes every later Send fail with err (nil restores normal sends), as a closed or overflowing
// session does.
func (s *Session) FailSends(err error) {
	s.mu.Lock()
	s.sendErr = err
	s.mu.Unlock()
}

// Received returns every stanza the session was sent so far, in order.
func (s *Session) Received() []*stanza.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*stanza.Stanza(nil), s.received...)
}

// Take returns what the session was sent since the last Take (or since it was made) and forgets it.
func (s *Session) Take() []*stanza.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.received
	s.received = nil
	return out
}

// Presence implements module.Session.
func (s *Session) Presence() *stanza.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.presence
}

// Priority implements module.Session.
func (s *Session) Priority() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.priority
}

// Available implements module.Session: the session has a presence.
func (s *Session) Available() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.presence != nil
}

// SetPresence implements module.Session; nil marks the session unavailable.
func (s *Session) SetPresence(p *stanza.Stanza, priority int) {
	s.mu.Lock()
	s.presence, s.priority = p, priority
	s.mu.Unlock()
}

// SetAvailable gives the session an available presence with priority prio, as if the presence module had
// recorded its initial presence, without broadcasting anything. It returns the session.
func (s *Session) SetAvailable(prio int) *Session {
	inner := "<priority>" + strconv.Itoa(prio) + "</priority>"
	s.SetPresence(stanza.New(stanza.Presence, "", "", s.jid, jid.JID{}, []byte(inner)), prio)
	return s
}

// Interested implements module.Session.
func (s *Session) Interested() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.interested
}

// SetInterested implements module.Session.
func (s *Session) SetInterested() {
	s.mu.Lock()
	s.interested = true
	s.mu.Unlock()
}

// Close implements module.Session: it records the condition and text; the session stays bound (the router's
// owner unbinds it, see Host.Close).
func (s *Session) Close(condition, text string) {
	s.mu.Lock()
	s.closed, s.condition, s.closeText = true, condition, text
	s.mu.Unlock()
}

// Closed reports whether Close was called, and with which stream error condition and text.
func (s *Session) Closed() (closed bool, condition, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed, s.condition, s.closeText
}

// Hibernating implements module.Session.
func (s *Session) Hibernating() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hibernating
}

// SetHibernating sets what Hibernating reports.
func (s *Session) SetHibernating(h bool) {
	s.mu.Lock()
	s.hibernating = h
	s.mu.Unlock()
}

// Describe implements module.Session: the session's description as a directory would share it (always on this
// node).
func (s *Session) Describe() module.Resource {
	s.mu.Lock()
	defer s.mu.Unlock()
	return module.Resource{JID: s.jid, Available: s.presence != nil, Priority: s.priority, Caps: s.caps, Carbons: s.carbons}
}

// SetCarbons implements module.Session.
func (s *Session) SetCarbons(on bool) {
	s.mu.Lock()
	s.carbons = on
	s.mu.Unlock()
}

// SetCaps implements module.Session.
func (s *Session) SetCaps(ver string) {
	s.mu.Lock()
	s.caps = ver
	s.mu.Unlock()
}

var _ module.Session = (*Session)(nil)
