package moduletest

import (
	"context"
	"sync"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// Router is a fake module.Router for one domain. It keeps the sessions a test binds, by bare JID, and routes
// stanzas with a small, documented subset of the real router's rules (RFC 6120 section 10, RFC 6121 section 8),
// running the hooks and handlers registered in its registry:
//
//   - To another domain (not this one and not a registered service): recorded in Left, nothing else. This is
//     what "left the server" means here: no s2s, no bounce.
//   - To a registered service domain: the service's HandleStanza.
//   - Message to a full JID with a bound session: the Inbound stage with that session as the one target, then
//     that session. To a full JID without a session: groupchat is bounced, headline and error dropped, normal
//     and chat handled as if sent to the bare JID.
//   - Message to a bare JID: headline to every available session with non-negative priority; normal and chat to
//     the available sessions of the highest non-negative priority, after the Inbound stage. With no such
//     session the Undeliverable stage runs; if no hook handles the message it is bounced (service-unavailable).
//     Groupchat is bounced, error dropped.
//   - Presence to a local account: the registered presence handler's Inbound, as the real router does with
//     presence that is not from a local session, then (available and unavailable) the presence hooks. Without
//     a presence handler: to a full JID, that session; to a bare JID, every available session.
//   - IQ request to the domain or a local bare JID: the registered handler (service-unavailable without one),
//     whose answer is routed back. To a full JID: that session, or service-unavailable. IQ result or error to
//     a full JID: that session; to a local bare JID: the IQ response hooks.
//   - A bounce is the error reply of RFC 6120 8.3.1, routed like any stanza (never for an error).
//
// Every stanza given to Route is recorded in Routed, in order; bounces and IQ answers the router makes itself
// are not, but they reach sessions (and Left) as they would in the server.
type Router struct {
	domain jid.JID
	reg    *module.Registry
	fail   func(format string, args ...any)

	mu       sync.Mutex
	sessions map[string][]module.Session
	routed   []*stanza.Stanza
	left     []*stanza.Stanza
	notified []Notification
}

// Notification is one session event the router was asked to run (by a module, or by Host.Bind and Host.Close).
type Notification struct {
	Event   module.SessionEvent
	Session module.Session
}

// NewRouter returns a router for domain that runs the hooks and handlers of reg. fail reports a handler error
// that the real router would only log (nil: ignored); a Host passes its test's Errorf.
func NewRouter(domain jid.JID, reg *module.Registry, fail func(format string, args ...any)) *Router {
	if fail == nil {
		fail = func(string, ...any) {}
	}
	return &Router{domain: domain.Domain(), reg: reg, fail: fail, sessions: make(map[string][]module.Session)}
}

// Bind adds a session to the table (no hooks run; see Host.Bind). A session with the same full JID is replaced.
func (r *Router) Bind(s module.Session) {
	bare := s.JID().Bare().String()
	r.mu.Lock()
	defer r.mu.Unlock()
	var next []module.Session
	for _, o := range r.sessions[bare] {
		if !o.JID().Equal(s.JID()) {
			next = append(next, o)
		}
	}
	r.sessions[bare] = append(next, s)
}

// Unbind removes a session from the table (no hooks run; see Host.Close).
func (r *Router) Unbind(s module.Session) {
	bare := s.JID().Bare().String()
	r.mu.Lock()
	defer r.mu.Unlock()
	var next []module.Session
	for _, o := range r.sessions[bare] {
		if o != s {
			next = append(next, o)
		}
	}
	if len(next) == 0 {
		delete(r.sessions, bare)
	} else {
		r.sessions[bare] = next
	}
}

// Sessions implements module.Router: the bound sessions of bare, in bind order.
func (r *Router) Sessions(bare jid.JID) []module.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]module.Session(nil), r.sessions[bare.Bare().String()]...)
}

// Session implements module.Router.
func (r *Router) Session(full jid.JID) module.Session {
	for _, s := range r.Sessions(full.Bare()) {
		if s.JID().Equal(full) {
			return s
		}
	}
	return nil
}

// IsLocal implements module.Router: j's domain is the router's domain.
func (r *Router) IsLocal(j jid.JID) bool { return j.Domain().Equal(r.domain) }

// Notify implements module.Router: it records the event and runs its session hooks.
func (r *Router) Notify(ctx context.Context, ev module.SessionEvent, s module.Session) {
	r.mu.Lock()
	r.notified = append(r.notified, Notification{Event: ev, Session: s})
	r.mu.Unlock()
	for _, h := range r.reg.SessionHooks(ev) {
		h(ctx, s)
	}
}

// Route implements module.Router: it records s and delivers it by the rules in the type's documentation.
func (r *Router) Route(ctx context.Context, s *stanza.Stanza) {
	r.RouteFrom(ctx, module.Origin{}, s)
}

// RouteFrom implements module.Router as Route does; a stanza from a local session is delivered with it as the
// sender (the Outbound stage is not run: see Host.SendMessage), and presence from a local session goes to the
// presence handler after the edit hooks, as the router does.
func (r *Router) RouteFrom(ctx context.Context, o module.Origin, s *stanza.Stanza) {
	r.mu.Lock()
	r.routed = append(r.routed, s)
	r.mu.Unlock()
	sender, ok := o.FromSession()
	if ok && s.Kind == stanza.Presence {
		// Presence a module sends on a session's behalf (vcard's re-broadcast of a new avatar hash) takes the
		// session's path, as in the server: edit hooks, then the presence handler.
		if p := r.reg.Presence(); p != nil {
			if err := presenceOutbound(ctx, r.reg, p, sender, s); err != nil {
				r.fail("moduletest: presence routed from %s: %v", sender.JID(), err)
			}
		}
		return
	}
	r.route(ctx, sender, s)
}

// Deliver implements module.Router: s is delivered as if addressed to to, and recorded (in Routed, and in Left
// when it leaves the server) with to as its to, which is what a remote route stamps on it.
func (r *Router) Deliver(ctx context.Context, o module.Origin, to jid.JID, s *stanza.Stanza) {
	if to.Equal(jid.JID{}) {
		return
	}
	addressed := s
	if !s.To.Equal(to) {
		addressed = s.WithTo(to)
	}
	r.mu.Lock()
	r.routed = append(r.routed, addressed)
	r.mu.Unlock()
	if s.Kind == stanza.Presence && r.IsLocal(to) && r.reg.Service(to.Domainpart()) == nil {
		// The same bytes to every local recipient, as the server does.
		r.deliverPresence(ctx, to, s)
		return
	}
	sender, _ := o.FromSession()
	r.route(ctx, sender, addressed)
}

// Lookup implements module.Router: the fake router knows only the sessions bound on it.
func (r *Router) Lookup(bare jid.JID) module.Resources {
	return module.Resources{Local: r.Sessions(bare)}
}

// Routed returns every stanza given to Route so far, in order.
func (r *Router) Routed() []*stanza.Stanza {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*stanza.Stanza(nil), r.routed...)
}

// Left returns every stanza that left the server (addressed to another domain) so far, in order.
func (r *Router) Left() []*stanza.Stanza {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*stanza.Stanza(nil), r.left...)
}

// TakeLeft returns what left the server since the last TakeLeft and forgets it.
func (r *Router) TakeLeft() []*stanza.Stanza {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.left
	r.left = nil
	return out
}

// Notified returns the session events run through Notify so far, in order.
func (r *Router) Notified() []Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Notification(nil), r.notified...)
}

// Reset forgets what was routed, what left and what was notified; bound sessions stay.
func (r *Router) Reset() {
	r.mu.Lock()
	r.routed, r.left, r.notified = nil, nil, nil
	r.mu.Unlock()
}

// route delivers s; sender is the local session that sent it (a message sent through Host.SendMessage), or nil.
func (r *Router) route(ctx context.Context, sender module.Session, s *stanza.Stanza) {
	to := s.To
	if to.Equal(jid.JID{}) {
		if sender == nil {
			return
		}
		to = sender.JID().Bare()
	}
	if svc := r.reg.Service(to.Domainpart()); svc != nil {
		svc.HandleStanza(ctx, origin(sender), s)
		return
	}
	if !r.IsLocal(to) {
		r.mu.Lock()
		r.left = append(r.left, s)
		r.mu.Unlock()
		return
	}
	switch s.Kind {
	case stanza.Message:
		r.deliverMessage(ctx, sender, to, s)
	case stanza.Presence:
		r.deliverPresence(ctx, to, s)
	case stanza.IQ:
		r.deliverIQ(ctx, sender, to, s)
	}
}

func (r *Router) bounce(ctx context.Context, s *stanza.Stanza, e *stanza.Error) {
	if s.Type == "error" || (s.Kind == stanza.IQ && s.Type == "result") {
		return
	}
	r.route(ctx, nil, stanza.ErrorReply(s, jid.JID{}, e))
}

func (r *Router) deliverMessage(ctx context.Context, sender module.Session, to jid.JID, s *stanza.Stanza) {
	if to.Localpart() == "" {
		if s.Type != "error" && s.Type != "groupchat" && s.Type != "headline" {
			r.bounce(ctx, s, stanza.ErrServiceUnavailable)
		}
		return
	}
	owner := to.Bare()
	if !to.Equal(owner) {
		if sess := r.Session(to); sess != nil {
			res := runStage(ctx, r.reg, module.Inbound, sender, owner, s, []module.Session{sess})
			switch {
			case res.Err != nil:
				r.bounce(ctx, res.Stanza, stanza.AsError(res.Err))
			case res.Verdict != module.Handled:
				sess.Send(res.Stanza)
			}
			return
		}
		switch s.Type {
		case "groupchat":
			r.bounce(ctx, s, stanza.ErrServiceUnavailable)
			return
		case "headline", "error":
			return
		}
	}
	switch s.Type {
	case "groupchat":
		r.bounce(ctx, s, stanza.ErrServiceUnavailable)
		return
	case "error":
		return
	}
	targets := pickTargets(r.Sessions(owner), s.Type == "headline")
	if len(targets) == 0 {
		if s.Type == "headline" {
			return
		}
		res := runStage(ctx, r.reg, module.Undeliverable, sender, owner, s, nil)
		switch {
		case res.Err != nil:
			r.bounce(ctx, res.Stanza, stanza.AsError(res.Err))
		case res.Verdict != module.Handled:
			r.bounce(ctx, s, stanza.ErrServiceUnavailable)
		}
		return
	}
	res := runStage(ctx, r.reg, module.Inbound, sender, owner, s, targets)
	switch {
	case res.Err != nil:
		r.bounce(ctx, res.Stanza, stanza.AsError(res.Err))
		return
	case res.Verdict == module.Handled:
		return
	}
	for _, t := range targets {
		t.Send(res.Stanza)
	}
}

// pickTargets returns the available sessions with the highest non-negative priority, or every available one
// with non-negative priority when all is set.
func pickTargets(sessions []module.Session, all bool) []module.Session {
	best := -1
	for _, s := range sessions {
		if s.Available() && s.Priority() > best {
			best = s.Priority()
		}
	}
	var out []module.Session
	for _, s := range sessions {
		if s.Available() && s.Priority() >= 0 && (all || s.Priority() == best) {
			out = append(out, s)
		}
	}
	return out
}

func (r *Router) deliverPresence(ctx context.Context, to jid.JID, s *stanza.Stanza) {
	if to.Localpart() == "" {
		return // presence to the domain: ignored, as by the server
	}
	if p := r.reg.Presence(); p != nil {
		if err := presenceInbound(ctx, p, to, s); err != nil {
			r.fail("moduletest: presence handler: inbound %s presence from %s to %s: %v", s.Type, s.From, s.To, err)
			return
		}
		if s.Type == "" || s.Type == "unavailable" {
			presenceHooks(ctx, r.reg, to, s)
		}
		return
	}
	if to.Resourcepart() != "" {
		if sess := r.Session(to); sess != nil {
			sess.Send(s)
		}
		return
	}
	if s.Type == "error" {
		return
	}
	for _, sess := range r.Sessions(to) {
		if sess.Available() {
			sess.Send(s)
		}
	}
}

func (r *Router) deliverIQ(ctx context.Context, sender module.Session, to jid.JID, s *stanza.Stanza) {
	if !s.IsIQRequest() {
		if to.Resourcepart() != "" {
			if sess := r.Session(to); sess != nil {
				sess.Send(s)
			}
			return
		}
		if to.Localpart() != "" {
			for _, h := range r.reg.IQResponseHooks() {
				if h(ctx, s) {
					break
				}
			}
		}
		return
	}
	var t module.Target
	switch {
	case to.Localpart() == "":
		t = module.Server
	case to.Resourcepart() == "":
		t = module.Account
	default:
		if sess := r.Session(to); sess != nil {
			sess.Send(s)
			return
		}
		r.bounce(ctx, s, stanza.ErrServiceUnavailable)
		return
	}
	if reply := runIQ(ctx, r.reg, t, sender, s, ""); reply != nil {
		r.route(ctx, nil, reply)
	}
}

var _ module.Router = (*Router)(nil)
