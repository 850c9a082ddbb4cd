// Package router delivers stanzas between the sessions of a Parley node and the modules that serve the domain,
// following the delivery rules of RFC 6120 section 10 and RFC 6121 section 8.
//
// The router keeps the table of bound sessions. It never writes to a connection: it hands stanzas to
// Session.Send, which only queues. No router lock is held while a stanza is queued or a module hook runs.
package router

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

const shards = 64

// AccountExists reports whether a local account exists. The router asks it only on slow paths (a message or
// presence for an account with no session).
type AccountExists func(ctx context.Context, bare jid.JID) bool

// Router routes stanzas for one domain.
type Router struct {
	domain jid.JID
	reg    *module.Registry
	log    *slog.Logger
	exists AccountExists

	seed        maphash.Seed
	shards      [shards]shard
	hasServices bool

	Stats Stats
}

// Stats are the router's counters, read by the metrics endpoint.
type Stats struct {
	Sessions  atomic.Int64
	Messages  atomic.Uint64
	Presences atomic.Uint64
	IQs       atomic.Uint64
	Errors    atomic.Uint64 // error replies the router generated
}

// shard holds the sessions of the accounts whose bare JID hashes to it. The slices are copy-on-write: readers
// take the slice under RLock and use it after unlocking; writers replace it.
type shard struct {
	mu       sync.RWMutex
	accounts map[string][]module.Session
}

// New returns a router for domain. exists may be nil (every account is taken to exist).
func New(domain jid.JID, reg *module.Registry, exists AccountExists, log *slog.Logger) *Router {
	r := &Router{domain: domain.Domain(), reg: reg, log: log, exists: exists, seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].accounts = make(map[string][]module.Session)
	}
	return r
}

// Start must be called once every module is registered, before the first stanza is routed.
func (r *Router) Start() { r.hasServices = r.reg.HasServices() }

func (r *Router) countKind(k stanza.Kind) {
	switch k {
	case stanza.Message:
		r.Stats.Messages.Add(1)
	case stanza.Presence:
		r.Stats.Presences.Add(1)
	case stanza.IQ:
		r.Stats.IQs.Add(1)
	}
}

func (r *Router) shard(bare string) *shard {
	return &r.shards[maphash.String(r.seed, bare)%shards]
}

// Bind adds a bound session. If a session with the same full JID exists it is replaced and returned, so that the
// caller can close it (resource conflict policy "kick old").
func (r *Router) Bind(s module.Session) (replaced module.Session) {
	full := s.JID()
	bare := full.Bare().String()
	sh := r.shard(bare)
	sh.mu.Lock()
	old := sh.accounts[bare]
	next := make([]module.Session, 0, len(old)+1)
	for _, o := range old {
		if o.JID().Equal(full) {
			replaced = o
			continue
		}
		next = append(next, o)
	}
	next = append(next, s)
	sh.accounts[bare] = next
	sh.mu.Unlock()
	if replaced == nil {
		r.Stats.Sessions.Add(1)
	}
	return replaced
}

// Unbind removes a session; it is a no-op if the session was already replaced.
func (r *Router) Unbind(s module.Session) {
	bare := s.JID().Bare().String()
	sh := r.shard(bare)
	sh.mu.Lock()
	old := sh.accounts[bare]
	found := false
	next := make([]module.Session, 0, len(old))
	for _, o := range old {
		if o == s {
			found = true
			continue
		}
		next = append(next, o)
	}
	if len(next) == 0 {
		delete(sh.accounts, bare)
	} else {
		sh.accounts[bare] = next
	}
	sh.mu.Unlock()
	if found {
		r.Stats.Sessions.Add(-1)
	}
}

// Sessions returns the bound sessions of an account. The slice must not be modified.
func (r *Router) Sessions(bare jid.JID) []module.Session {
	// The key is built in a stack buffer and looked up as bytes: bare.String() allocates for JIDs longer than 32
	// bytes, on every message.
	var buf [128]byte
	key := appendKey(buf[:0], bare)
	sh := &r.shards[maphash.Bytes(r.seed, key)%shards]
	sh.mu.RLock()
	ss := sh.accounts[string(key)]
	sh.mu.RUnlock()
	return ss
}

// appendKey appends j as jid.JID.String spells it, the session table's key.
func appendKey(b []byte, j jid.JID) []byte {
	if l := j.Localpart(); l != "" {
		b = append(append(b, l...), '@')
	}
	b = append(b, j.Domainpart()...)
	if res := j.Resourcepart(); res != "" {
		b = append(append(b, '/'), res...)
	}
	return b
}

// Session returns the session bound to a full JID, or nil.
func (r *Router) Session(full jid.JID) module.Session {
	for _, s := range r.Sessions(full.Bare()) {
		if s.JID().Equal(full) {
			return s
		}
	}
	return nil
}

// IsLocal reports whether j's domain is this router's domain. It compares JIDs rather than Domainpart strings,
// which would allocate for domains longer than 32 bytes.
func (r *Router) IsLocal(j jid.JID) bool { return j.Domain().Equal(r.domain) }

// Notify runs the hooks registered for a session event.
func (r *Router) Notify(ctx context.Context, ev module.SessionEvent, s module.Session) {
	for _, h := range r.reg.SessionHooks(ev) {
		h(ctx, s)
	}
}

// IsLocalService reports whether j's domain is one of this server's service domains.
func (r *Router) IsLocalService(j jid.JID) bool { return r.reg.Service(j.Domainpart()) != nil }

// Route routes a stanza emitted by the server or a module.
func (r *Router) Route(ctx context.Context, s *stanza.Stanza) { r.route(ctx, nil, s) }

// RouteFrom routes a stanza a bound local session sent. The stanza's From must already be the session's full JID.
func (r *Router) RouteFrom(ctx context.Context, from module.Session, s *stanza.Stanza) {
	r.route(ctx, from, s)
}

func (r *Router) route(ctx context.Context, sender module.Session, s *stanza.Stanza) {
	if r.hasServices {
		// Presence a session sends goes through the presence handler first, which records it as directed
		// presence (so the service hears of the session's end), and comes back here with no sender.
		if svc := r.reg.Service(s.To.Domainpart()); svc != nil && !(s.Kind == stanza.Presence && sender != nil) {
			if s.Kind == stanza.Message && sender != nil {
				d := &module.Delivery{Stanza: s, Sender: sender, Owner: sender.JID().Bare()}
				if r.runStage(ctx, module.Outbound, d) {
					return
				}
				s = d.Stanza
			}
			r.countKind(s.Kind)
			svc.HandleStanza(ctx, sender, s)
			return
		}
	}
	r.countKind(s.Kind)
	switch s.Kind {
	case stanza.Message:
		r.routeMessage(ctx, sender, s)
	case stanza.Presence:
		r.routePresence(ctx, sender, s)
	case stanza.IQ:
		r.routeIQ(ctx, sender, s)
	}
}

// bounce answers s with a stanza error, unless s is itself an error (never answer an error with an error).
func (r *Router) bounce(ctx context.Context, s *stanza.Stanza, e *stanza.Error) {
	if s.Type == "error" || (s.Kind == stanza.IQ && s.Type == "result") {
		return
	}
	r.Stats.Errors.Add(1)
	// A stanza without to was handled on behalf of the sender's account: its reply has no from.
	r.deliverOrDrop(ctx, stanza.ErrorReply(s, jid.JID{}, e))
}

// deliverOrDrop delivers a server-generated stanza to a local full JID, without further rules.
func (r *Router) deliverOrDrop(ctx context.Context, s *stanza.Stanza) {
	if s.To.Resourcepart() != "" {
		if sess := r.Session(s.To); sess != nil {
			r.send(ctx, sess, s)
			return
		}
	}
	if r.IsLocal(s.To) && s.To.Localpart() != "" {
		r.route(ctx, nil, s)
	}
}

func (r *Router) send(ctx context.Context, sess module.Session, s *stanza.Stanza) {
	var err error
	if cs, ok := sess.(module.ContextSender); ok {
		err = cs.SendContext(ctx, s)
	} else {
		err = sess.Send(s)
	}
	if err != nil {
		r.log.Debug("queue refused stanza", "session", sess.ID(), "err", err)
	}
}

// stages holds the Deliveries the Outbound and the Inbound stage see for a message a local session sends to a
// local account, so that they cost one allocation, not two. Each message has its own: hooks may keep them.
type stages struct{ out, in module.Delivery }

func (r *Router) routeMessage(ctx context.Context, sender module.Session, s *stanza.Stanza) {
	var in *module.Delivery
	if sender != nil {
		st := &stages{}
		d := &st.out
		in = &st.in
		*d = module.Delivery{Stanza: s, Sender: sender, Owner: sender.JID().Bare()}
		if r.runStage(ctx, module.Outbound, d) {
			return
		}
		s = d.Stanza
	}
	to := s.To
	if to.Equal(jid.JID{}) {
		// RFC 6120 10.3.1: a message without to is for the sender's own bare JID.
		if sender == nil {
			return
		}
		to = sender.JID().Bare()
	}
	if !r.IsLocal(to) {
		r.bounce(ctx, s, stanza.ErrRemoteServerNotFnd)
		return
	}
	if to.Localpart() == "" {
		// Addressed to the server itself; no module handles messages to the domain yet.
		if s.Type != "error" && s.Type != "groupchat" && s.Type != "headline" {
			r.bounce(ctx, s, stanza.ErrServiceUnavailable)
		}
		return
	}
	r.deliverMessage(ctx, sender, to, s, in)
}

// deliverMessage applies RFC 6121 section 8.5.2 (bare JID) and 8.5.3 (full JID) for a local account. d, if not
// nil, is the zero Delivery to fill for the Inbound or Undeliverable stage.
func (r *Router) deliverMessage(ctx context.Context, sender module.Session, to jid.JID, s *stanza.Stanza,
	d *module.Delivery) {
	if d == nil {
		d = &module.Delivery{}
	}
	owner := to.Bare()
	sessions := r.Sessions(owner)
	if !to.Equal(owner) { // a full JID
		for i, sess := range sessions {
			// Every session here has the owner's bare JID, so equal full JIDs mean the same resource. (Comparing
			// Resourcepart strings would allocate for resources longer than 32 bytes.)
			if sess.JID().Equal(to) {
				// sessions is copy-on-write and never changed in place: a window of it, its capacity capped so an
				// append copies, is the one target without an allocation.
				*d = module.Delivery{Stanza: s, Sender: sender, Owner: owner, Targets: sessions[i : i+1 : i+1]}
				if r.runStage(ctx, module.Inbound, d) {
					return
				}
				r.send(ctx, sess, d.Stanza)
				return
			}
		}
		// 8.5.3.2: no such resource.
		switch s.Type {
		case "groupchat":
			r.bounce(ctx, s, stanza.ErrServiceUnavailable)
			return
		case "headline", "error":
			return
		}
		// normal and chat: as if to the bare JID.
	}
	switch s.Type {
	case "groupchat":
		r.bounce(ctx, s, stanza.ErrServiceUnavailable)
		return
	case "error":
		return
	}
	targets := pickTargets(sessions, s.Type == "headline")
	*d = module.Delivery{Stanza: s, Sender: sender, Owner: owner}
	if len(targets) == 0 {
		if s.Type == "headline" {
			return
		}
		if r.exists != nil && !r.exists(ctx, owner) {
			r.bounce(ctx, s, stanza.ErrServiceUnavailable)
			return
		}
		if r.runStage(ctx, module.Undeliverable, d) {
			return
		}
		r.bounce(ctx, s, stanza.ErrServiceUnavailable)
		return
	}
	d.Targets = targets
	if r.runStage(ctx, module.Inbound, d) {
		return
	}
	for _, t := range targets {
		r.send(ctx, t, d.Stanza)
	}
}

// pickTargets returns the available sessions with the highest non-negative priority, or all available sessions
// with non-negative priority when all is set (headlines).
func pickTargets(sessions []module.Session, all bool) []module.Session {
	best := -1
	n := 0
	for _, s := range sessions {
		if !s.Available() || s.Priority() < 0 {
			continue
		}
		p := s.Priority()
		switch {
		case all:
			n++
		case p > best:
			best, n = p, 1
		case p == best:
			n++
		}
	}
	if n == 0 {
		return nil
	}
	// sessions is copy-on-write and never changed in place: when the targets are all of it (one session, or all
	// at the same priority) or a single one, a window of it, its capacity capped so an append copies, is returned
	// without an allocation.
	if n == len(sessions) {
		return sessions[:n:n]
	}
	if n == 1 {
		for i, s := range sessions {
			if s.Available() && s.Priority() >= 0 && (all || s.Priority() == best) {
				return sessions[i : i+1 : i+1]
			}
		}
	}
	out := make([]module.Session, 0, n)
	for _, s := range sessions {
		if s.Available() && s.Priority() >= 0 && (all || s.Priority() == best) {
			out = append(out, s)
		}
	}
	return out
}

// runStage runs the hooks of a stage and reports whether one handled the message.
func (r *Router) runStage(ctx context.Context, st module.Stage, d *module.Delivery) bool {
	for _, h := range r.reg.MessageHooks(st) {
		v, err := h(ctx, d)
		if err != nil {
			r.log.Error("message hook failed", "stage", st.String(), "err", err)
			r.bounce(ctx, d.Stanza, stanza.AsError(err))
			return true
		}
		if v == module.Handled {
			return true
		}
	}
	return false
}

func (r *Router) routePresence(ctx context.Context, sender module.Session, s *stanza.Stanza) {
	p := r.reg.Presence()
	if p == nil {
		return
	}
	var err error
	switch {
	case sender != nil:
		err = p.Outbound(ctx, sender, s)
	case r.IsLocal(s.To) && s.To.Localpart() != "":
		err = p.Inbound(ctx, s)
	case !r.IsLocal(s.To):
		r.remotePresence(ctx, s)
		return
	default:
		return // presence to the domain: ignored
	}
	if err != nil {
		r.log.Error("presence handling failed", "err", err)
		var se *stanza.Error
		if errors.As(err, &se) {
			r.bounce(ctx, s, se)
		}
	}
}

// remotePresence takes presence for another server's domain, which cannot be delivered: Parley has no
// server-to-server connections yet (the Remote route will take this over, and its default bounces too). A
// subscription request is answered with remote-server-not-found (RFC 6120 10.4.3), addressed to the user's bare
// JID as the request left: the presence module clears the roster item's pending ask when it sees the error,
// and the client shows it, instead of the item staying ask='subscribe' forever. Other presence is dropped
// without an answer: a broadcast would bounce one error per remote contact at every presence change, and
// unavailable presence, probes and subscribed/unsubscribe/unsubscribed expect no answer (the local roster has
// already changed).
func (r *Router) remotePresence(ctx context.Context, s *stanza.Stanza) {
	if s.Type == "subscribe" {
		r.bounce(ctx, s, stanza.ErrRemoteServerNotFnd)
	}
}

func (r *Router) routeIQ(ctx context.Context, sender module.Session, s *stanza.Stanza) {
	to := s.To
	if !s.IsIQRequest() {
		// Results and errors go to a full JID, or are dropped (RFC 6121 8.5.2.1.1 / 8.5.3.2.1).
		if to.Resourcepart() != "" {
			if sess := r.Session(to); sess != nil {
				r.send(ctx, sess, s)
			}
		}
		if r.IsLocal(to) && to.Localpart() != "" && to.Resourcepart() == "" {
			for _, h := range r.reg.IQResponseHooks() {
				if h(ctx, s) {
					break
				}
			}
		}
		return
	}
	switch {
	case to.Equal(jid.JID{}):
		if sender == nil {
			return
		}
		r.handleIQ(ctx, module.Account, sender, s)
	case !r.IsLocal(to):
		r.bounce(ctx, s, stanza.ErrRemoteServerNotFnd)
	case to.Localpart() == "":
		r.handleIQ(ctx, module.Server, sender, s)
	case to.Resourcepart() == "":
		if r.exists != nil && (sender == nil || !to.Equal(sender.JID().Bare())) && !r.exists(ctx, to) {
			r.bounce(ctx, s, stanza.ErrServiceUnavailable)
			return
		}
		r.handleIQ(ctx, module.Account, sender, s)
	default:
		if sess := r.Session(to); sess != nil {
			r.send(ctx, sess, s)
			return
		}
		r.bounce(ctx, s, stanza.ErrServiceUnavailable)
	}
}

// HandleIQ runs the registered handler for an IQ request and returns its answer, nil when the handler answered
// itself. The router routes the answer; the c2s listener calls it directly with target PreAuth for in-band
// registration before authentication and writes the answer.
func (r *Router) HandleIQ(ctx context.Context, t module.Target, iq *module.IQ) *stanza.Stanza {
	fn := r.reg.IQHandler(t, iq.Type, iq.NS, iq.Local)
	if fn == nil {
		return stanza.ErrorReply(iq.Stanza, jid.JID{}, stanza.ErrServiceUnavailable)
	}
	inner, err := fn(ctx, iq)
	if errors.Is(err, module.ErrAnswered) {
		return nil
	}
	if err != nil {
		var se *stanza.Error
		if !errors.As(err, &se) {
			r.log.Error("iq handler failed", "ns", iq.NS, "err", err)
		}
		return stanza.ErrorReply(iq.Stanza, jid.JID{}, stanza.AsError(err))
	}
	return stanza.Result(iq.Stanza, inner)
}

func (r *Router) handleIQ(ctx context.Context, t module.Target, sender module.Session, s *stanza.Stanza) {
	local, ns, payload, ok := stanza.FirstChild(s.Payload())
	if !ok {
		r.bounce(ctx, s, stanza.ErrBadRequest)
		return
	}
	iq := &module.IQ{Stanza: s, Session: sender, Local: local, NS: ns, Payload: payload}
	reply := r.HandleIQ(ctx, t, iq)
	if reply == nil {
		return
	}
	if reply.Type == "error" {
		r.Stats.Errors.Add(1)
	}
	if sender != nil && reply.To.Equal(sender.JID()) {
		r.send(ctx, sender, reply)
		return
	}
	r.route(ctx, nil, reply)
}

var _ module.Router = (*Router)(nil)
