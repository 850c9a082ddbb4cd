// Package router delivers stanzas between the sessions of a Parley node and the modules that serve the domain,
// following the delivery rules of RFC 6120 section 10 and RFC 6121 section 8.
//
// The router asks a Directory where an account's resources live (the Local directory is this node's table of
// bound sessions) and hands everything this node does not serve to one Remote route. It never writes to a
// connection: it hands stanzas to Session.Send, which only queues. No router lock is held while a stanza is
// queued or a module hook runs. Where a stanza came from is an explicit module.Origin, passed by value.
package router

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// AccountExists reports whether a local account exists. The router asks it only on slow paths (a message or
// presence for an account with no session).
type AccountExists func(ctx context.Context, bare jid.JID) bool

// Router routes stanzas for one domain.
type Router struct {
	domain jid.JID
	reg    *module.Registry
	log    *slog.Logger
	exists AccountExists

	dir         Directory
	local       *Local // dir when it is the Local directory, so that lookups avoid the interface call
	remote      Remote
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

// New returns a router for domain, with a Local directory and the NoRemote route. exists may be nil (every
// account is taken to exist).
func New(domain jid.JID, reg *module.Registry, exists AccountExists, log *slog.Logger) *Router {
	l := NewLocal()
	return &Router{domain: domain.Domain(), reg: reg, log: log, exists: exists, dir: l, local: l, remote: NoRemote{}}
}

// SetDirectory replaces the directory (a cluster directory wrapping a Local one). It must be called before
// Start and before any session is bound.
func (r *Router) SetDirectory(d Directory) {
	r.dir = d
	r.local, _ = d.(*Local)
}

// SetRemote replaces the route out of this process. It must be called before Start.
func (r *Router) SetRemote(rm Remote) { r.remote = rm }

// Directory returns the router's directory.
func (r *Router) Directory() Directory { return r.dir }

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

// Bind adds a bound session to the directory. If a session with the same full JID exists it is replaced and
// returned, so that the caller can close it (resource conflict policy "kick old").
func (r *Router) Bind(s module.Session) (replaced module.Session) {
	replaced = r.dir.Bind(s)
	if replaced == nil {
		r.Stats.Sessions.Add(1)
	}
	return replaced
}

// Unbind removes a session; it is a no-op if the session was already replaced.
func (r *Router) Unbind(s module.Session) {
	if r.dir.Unbind(s) {
		r.Stats.Sessions.Add(-1)
	}
}

// Update tells the directory that a bound session's description changed (c2s calls it from the session's
// setters).
func (r *Router) Update(s module.Session) {
	if r.local == nil {
		r.dir.Update(s)
	}
}

// Lookup returns the resources of an account the directory knows.
func (r *Router) Lookup(bare jid.JID) module.Resources {
	if r.local != nil {
		return module.Resources{Local: r.local.Sessions(bare)}
	}
	return r.dir.Lookup(bare)
}

// Sessions returns the sessions of an account bound on this node. The slice must not be modified.
func (r *Router) Sessions(bare jid.JID) []module.Session {
	if r.local != nil {
		return r.local.Sessions(bare)
	}
	return r.dir.Lookup(bare).Local
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
func (r *Router) Route(ctx context.Context, s *stanza.Stanza) {
	var o module.Origin
	r.route(ctx, &o, s)
}

// RouteFrom routes a stanza from o. For a local session (module.OriginSession) the stanza's From must already be
// the session's full JID, and the session's outbound processing applies.
func (r *Router) RouteFrom(ctx context.Context, o module.Origin, s *stanza.Stanza) {
	// Inside the router the origin travels by pointer to this copy, which stays on the stack: hooks get a copy
	// made once per message, in the message's own allocation (see stages).
	r.route(ctx, &o, s)
}

// Deliver implements module.Router: s goes to to as if addressed there, with the sender's side already done.
func (r *Router) Deliver(ctx context.Context, o module.Origin, to jid.JID, s *stanza.Stanza) {
	if to.Equal(jid.JID{}) {
		return
	}
	if s.Kind == stanza.Presence && r.presenceFiltered(ctx, to, s) {
		return
	}
	// Not counted in Stats: a delivery is the fan-out of a stanza counted when it entered the router.
	if r.hasServices {
		if svc := r.reg.Service(to.Domainpart()); svc != nil {
			if !s.To.Equal(to) {
				s = s.WithTo(to)
			}
			svc.HandleStanza(ctx, o, s)
			return
		}
	}
	switch {
	case !r.IsLocal(to):
		r.leave(ctx, &o, "", to, s)
	case to.Localpart() == "":
		// The server itself: nothing to deliver to.
	case s.Kind == stanza.Presence:
		r.presenceIn(ctx, &o, to, s)
	case s.Kind == stanza.Message:
		r.deliverMessage(ctx, &o, to, s, nil)
	default:
		if !s.To.Equal(to) {
			s = s.WithTo(to)
		}
		e := o.Emitted()
		r.routeIQ(ctx, &e, s)
	}
}

func (r *Router) route(ctx context.Context, o *module.Origin, s *stanza.Stanza) {
	sender, fromSession := o.FromSession()
	if r.hasServices {
		// Presence a session sends goes through the presence handler first, which records it as directed
		// presence (so the service hears of the session's end), and comes back here from the server.
		if svc := r.reg.Service(s.To.Domainpart()); svc != nil && !(s.Kind == stanza.Presence && fromSession) {
			if s.Kind == stanza.Message && fromSession {
				md := &delivery{o: *o}
				d := &md.d
				*d = module.Delivery{Stanza: s, Origin: &md.o, Owner: sender.JID().Bare()}
				if r.runStage(ctx, module.Outbound, d) {
					return
				}
				s = d.Stanza
			}
			r.countKind(s.Kind)
			svc.HandleStanza(ctx, *o, s)
			return
		}
	}
	r.countKind(s.Kind)
	switch s.Kind {
	case stanza.Message:
		r.routeMessage(ctx, o, s)
	case stanza.Presence:
		r.routePresence(ctx, o, s)
	case stanza.IQ:
		r.routeIQ(ctx, o, s)
	}
}

// leave hands s to the Remote route: the one call site where a stanza leaves this process. node and to are as
// for Remote.Forward.
func (r *Router) leave(ctx context.Context, o *module.Origin, node string, to jid.JID, s *stanza.Stanza) {
	if err := r.remote.Forward(ctx, *o, node, to, s); err != nil {
		var se *stanza.Error
		if !errors.As(err, &se) {
			r.log.Error("remote route failed", "node", node, "err", err)
		}
		r.bounce(ctx, s, stanza.AsError(err))
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

// deliverOrDrop delivers a server-generated stanza (a bounce) to a local full JID without further rules, or
// hands it to Remote when its recipient is elsewhere.
func (r *Router) deliverOrDrop(ctx context.Context, s *stanza.Stanza) {
	if s.To.Resourcepart() != "" {
		if sess := r.Session(s.To); sess != nil {
			r.send(&module.Origin{}, sess, s)
			return
		}
	}
	var o module.Origin
	switch {
	case r.IsLocal(s.To) && s.To.Localpart() != "":
		r.route(ctx, &o, s)
	case !s.To.Equal(jid.JID{}) && !r.IsLocal(s.To) && !r.IsLocalService(s.To):
		// The bounce is itself an error: if Remote refuses it, bounce does not answer it again.
		r.leave(ctx, &o, "", s.To, s)
	}
}

// send queues s for a local session, in o's write batch if there is one.
func (r *Router) send(o *module.Origin, sess module.Session, s *stanza.Stanza) {
	var err error
	if o.Batch != nil {
		if bs, ok := sess.(module.BatchSender); ok {
			err = bs.SendBatch(o.Batch, s)
		} else {
			err = sess.Send(s)
		}
	} else {
		err = sess.Send(s)
	}
	if err != nil {
		r.log.Debug("queue refused stanza", "session", sess.ID(), "err", err)
	}
}

// stages holds the Deliveries the Outbound and the Inbound stage see for a message a local session sends to a
// local account, and the copy of its origin they point to, so that they cost one allocation, not three. Each
// message has its own: hooks may keep them.
type stages struct {
	out, in module.Delivery
	o       module.Origin
}

// delivery is a Delivery and the copy of the origin it points to, in one allocation.
type delivery struct {
	d module.Delivery
	o module.Origin
}

func (r *Router) routeMessage(ctx context.Context, o *module.Origin, s *stanza.Stanza) {
	var in *module.Delivery
	sender, fromSession := o.FromSession()
	if fromSession {
		st := &stages{o: *o}
		d := &st.out
		in = &st.in
		in.Origin = &st.o
		*d = module.Delivery{Stanza: s, Origin: &st.o, Owner: sender.JID().Bare()}
		if r.runStage(ctx, module.Outbound, d) {
			return
		}
		s = d.Stanza
	}
	to := s.To
	if to.Equal(jid.JID{}) {
		// RFC 6120 10.3.1: a message without to is for the sender's own bare JID.
		if !fromSession {
			return
		}
		to = sender.JID().Bare()
	}
	if !r.IsLocal(to) {
		r.leave(ctx, o, "", to, s)
		return
	}
	if to.Localpart() == "" {
		// Addressed to the server itself; no module handles messages to the domain yet.
		if s.Type != "error" && s.Type != "groupchat" && s.Type != "headline" {
			r.bounce(ctx, s, stanza.ErrServiceUnavailable)
		}
		return
	}
	r.deliverMessage(ctx, o, to, s, in)
}

// deliverMessage applies RFC 6121 section 8.5.2 (bare JID) and 8.5.3 (full JID) for a local account. d, if not
// nil, is the Delivery to fill for the Inbound or Undeliverable stage, its Origin already pointing to a copy of
// o that it may keep (o itself is the caller's and must not be kept).
func (r *Router) deliverMessage(ctx context.Context, o *module.Origin, to jid.JID, s *stanza.Stanza,
	d *module.Delivery) {
	if d == nil {
		md := &delivery{o: *o}
		d = &md.d
		d.Origin = &md.o
	}
	do := d.Origin
	owner := to.Bare()
	var res module.Resources
	if r.local != nil {
		res.Local = r.local.Sessions(owner) // the common case, without the interface call
	} else {
		res = r.lookupFor(o, owner)
	}
	sessions := res.Local
	if !to.Equal(owner) { // a full JID
		for i, sess := range sessions {
			// Every session here has the owner's bare JID, so equal full JIDs mean the same resource. (Comparing
			// Resourcepart strings would allocate for resources longer than 32 bytes.)
			if sess.JID().Equal(to) {
				// sessions is copy-on-write and never changed in place: a window of it, its capacity capped so an
				// append copies, is the one target without an allocation.
				*d = module.Delivery{Stanza: s, Origin: do, Owner: owner, Targets: sessions[i : i+1 : i+1]}
				if r.runStage(ctx, module.Inbound, d) {
					return
				}
				r.send(o, sess, d.Stanza)
				return
			}
		}
		for i, rr := range res.Remote {
			if rr.JID.Equal(to) {
				*d = module.Delivery{Stanza: s, Origin: do, Owner: owner, Remote: res.Remote[i : i+1 : i+1]}
				if r.runStage(ctx, module.Inbound, d) {
					return
				}
				r.leave(ctx, o, rr.Node, rr.JID, d.Stanza)
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
	var targets []module.Session
	var remote []module.Resource
	if len(res.Remote) == 0 {
		targets = pickLocal(sessions, s.Type == "headline")
	} else {
		targets, remote = pickTargets(res, s.Type == "headline")
	}
	*d = module.Delivery{Stanza: s, Origin: do, Owner: owner}
	if len(targets) == 0 && len(remote) == 0 {
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
	d.Targets, d.Remote = targets, remote
	if r.runStage(ctx, module.Inbound, d) {
		return
	}
	for _, t := range targets {
		r.send(o, t, d.Stanza)
	}
	for _, rr := range remote {
		r.leave(ctx, o, rr.Node, rr.JID, d.Stanza)
	}
}

// pickTargets returns the available resources with the highest non-negative priority, or all available
// resources with non-negative priority when all is set (headlines): the local sessions and the remote ones.
func pickTargets(res module.Resources, all bool) ([]module.Session, []module.Resource) {
	if len(res.Remote) == 0 {
		return pickLocal(res.Local, all), nil
	}
	// Resources on other nodes compete with the local ones for the highest priority. This path is taken only
	// with a cluster directory and may allocate.
	best := -1
	for _, s := range res.Local {
		if s.Available() && s.Priority() > best {
			best = s.Priority()
		}
	}
	for _, rr := range res.Remote {
		if rr.Available && rr.Priority > best {
			best = rr.Priority
		}
	}
	if best < 0 {
		return nil, nil
	}
	var local []module.Session
	for _, s := range res.Local {
		if p := s.Priority(); s.Available() && p >= 0 && (all || p == best) {
			local = append(local, s)
		}
	}
	var remote []module.Resource
	for _, rr := range res.Remote {
		if rr.Available && rr.Priority >= 0 && (all || rr.Priority == best) {
			remote = append(remote, rr)
		}
	}
	return local, remote
}

// pickLocal is pickTargets for sessions of this node only, without an allocation in the common cases.
func pickLocal(sessions []module.Session, all bool) []module.Session {
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
			// A stanza error is a hook's refusal (a blocked recipient), not a failure.
			var se *stanza.Error
			if !errors.As(err, &se) {
				r.log.Error("message hook failed", "stage", st.String(), "err", err)
			}
			r.bounce(ctx, d.Stanza, stanza.AsError(err))
			return true
		}
		if v == module.Handled {
			return true
		}
	}
	return false
}

func (r *Router) routePresence(ctx context.Context, o *module.Origin, s *stanza.Stanza) {
	if o.Kind == module.OriginSession {
		p := r.reg.Presence()
		if p == nil {
			return
		}
		if !s.To.Equal(jid.JID{}) && len(r.reg.Filters(module.Outbound)) > 0 {
			// Directed presence and subscription stanzas to an entity the user blocked are refused here, where
			// the sender can still be told; broadcasts are filtered per contact in Deliver.
			if blocked, err := r.filter(ctx, module.Outbound, o.Session.JID().Bare(), s.To, s); blocked {
				if err != nil {
					r.bounce(ctx, s, stanza.AsError(err))
				}
				return
			}
		}
		r.presenceErr(ctx, s, p.Outbound(ctx, *o, r.reg.EditPresence(ctx, o.Session, s)))
		return
	}
	if r.presenceFiltered(ctx, s.To, s) {
		return
	}
	switch {
	case s.To.Equal(jid.JID{}):
		return
	case !r.IsLocal(s.To):
		r.leave(ctx, o, "", s.To, s)
	case s.To.Localpart() == "":
		return // presence to the domain: ignored
	default:
		r.presenceIn(ctx, o, s.To, s)
	}
}

// presenceIn delivers presence for a local account: the share of the account's resources on other nodes goes to
// Remote, once per node; the presence handler takes care of the rest (subscriptions, probes, the sessions on
// this node).
func (r *Router) presenceIn(ctx context.Context, o *module.Origin, to jid.JID, s *stanza.Stanza) {
	if r.local == nil { // the Local directory has no remote resources
		if res := r.lookupFor(o, to.Bare()); len(res.Remote) > 0 {
			r.presenceRemote(ctx, o, to, s, res.Remote)
		}
	}
	p := r.reg.Presence()
	if p == nil {
		return
	}
	err := p.Inbound(ctx, *o, to, s)
	r.presenceErr(ctx, s, err)
	if err == nil && (s.Type == "" || s.Type == "unavailable") {
		for _, h := range r.reg.PresenceHooks() {
			h(ctx, *o, to, s)
		}
	}
}

// presenceRemote hands presence for a local account to the other nodes that hold its resources concerned:
// availability to those holding the addressed resource (full JID) or an available one (bare JID), probes to
// every node holding one. Subscription stanzas are handled here: the roster is shared storage.
func (r *Router) presenceRemote(ctx context.Context, o *module.Origin, to jid.JID, s *stanza.Stanza,
	remote []module.Resource) {
	full := to.Resourcepart() != ""
	switch s.Type {
	case "", "unavailable", "probe":
	case "error":
		if !full {
			return
		}
	default:
		return
	}
next:
	for i, rr := range remote {
		switch {
		case full:
			if !rr.JID.Equal(to) {
				continue
			}
		case s.Type != "probe" && !rr.Available:
			continue
		}
		for _, prev := range remote[:i] {
			if prev.Node == rr.Node && (full || s.Type == "probe" || prev.Available) {
				continue next // that node has it already
			}
		}
		r.leave(ctx, o, rr.Node, to, s)
	}
}

func (r *Router) presenceErr(ctx context.Context, s *stanza.Stanza, err error) {
	if err == nil {
		return
	}
	r.log.Error("presence handling failed", "err", err)
	var se *stanza.Error
	if errors.As(err, &se) {
		r.bounce(ctx, s, se)
	}
}

// lookupFor is Lookup for delivering a stanza from o: what another node hands over is for this node's sessions
// only (that node already gave the other nodes their share), so that no stanza goes back and forth.
func (r *Router) lookupFor(o *module.Origin, bare jid.JID) module.Resources {
	res := r.Lookup(bare)
	if o.Kind == module.OriginNode {
		res.Remote = nil
	}
	return res
}

// remoteResource returns the resource with full JID to that the directory places on another node.
func (r *Router) remoteResource(o *module.Origin, to jid.JID) (module.Resource, bool) {
	if r.local != nil || o.Kind == module.OriginNode {
		return module.Resource{}, false
	}
	for _, rr := range r.dir.Lookup(to.Bare()).Remote {
		if rr.JID.Equal(to) {
			return rr, true
		}
	}
	return module.Resource{}, false
}

func (r *Router) routeIQ(ctx context.Context, o *module.Origin, s *stanza.Stanza) {
	to := s.To
	sender, fromSession := o.FromSession()
	if !s.IsIQRequest() {
		// Results and errors go to a full JID, or are dropped (RFC 6121 8.5.2.1.1 / 8.5.3.2.1).
		if !to.Equal(jid.JID{}) && !r.IsLocal(to) {
			r.leave(ctx, o, "", to, s)
			return
		}
		if to.Resourcepart() != "" {
			if sess := r.Session(to); sess != nil {
				r.send(o, sess, s)
			} else if rr, ok := r.remoteResource(o, to); ok {
				r.leave(ctx, o, rr.Node, to, s)
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
	if r.iqFiltered(ctx, o, s) {
		return
	}
	switch {
	case to.Equal(jid.JID{}):
		if !fromSession {
			return
		}
		r.handleIQ(ctx, module.Account, o, s)
	case !r.IsLocal(to):
		r.leave(ctx, o, "", to, s)
	case to.Localpart() == "":
		r.handleIQ(ctx, module.Server, o, s)
	case to.Resourcepart() == "":
		if r.exists != nil && (!fromSession || !to.Equal(sender.JID().Bare())) && !r.exists(ctx, to) {
			r.bounce(ctx, s, stanza.ErrServiceUnavailable)
			return
		}
		r.handleIQ(ctx, module.Account, o, s)
	default:
		if sess := r.Session(to); sess != nil {
			r.send(o, sess, s)
			return
		}
		if rr, ok := r.remoteResource(o, to); ok {
			r.leave(ctx, o, rr.Node, to, s)
			return
		}
		r.bounce(ctx, s, stanza.ErrServiceUnavailable)
	}
}

// filter runs the presence and IQ filters of a stage for a stanza between the local account owner and peer. It
// reports whether one stopped the stanza, and the error to answer with, if any.
func (r *Router) filter(ctx context.Context, st module.Stage, owner, peer jid.JID, s *stanza.Stanza) (bool, error) {
	for _, h := range r.reg.Filters(st) {
		v, err := h(ctx, owner, peer, s)
		if err != nil {
			return true, err
		}
		if v == module.Handled {
			return true, nil
		}
	}
	return false, nil
}

// presenceFiltered reports whether presence s to to is stopped by a filter: the Outbound filters of its sender
// if that is a local account, the Inbound filters of its recipient if that is one. Filtered presence is dropped
// without an answer.
func (r *Router) presenceFiltered(ctx context.Context, to jid.JID, s *stanza.Stanza) bool {
	if len(r.reg.Filters(module.Outbound)) == 0 && len(r.reg.Filters(module.Inbound)) == 0 {
		return false // no filter module: nothing to compute on the hot path
	}
	from := s.From
	if from.Localpart() != "" && r.IsLocal(from) {
		if blocked, _ := r.filter(ctx, module.Outbound, from.Bare(), to, s); blocked {
			return true
		}
	}
	if to.Localpart() != "" && r.IsLocal(to) {
		if blocked, _ := r.filter(ctx, module.Inbound, to.Bare(), from, s); blocked {
			return true
		}
	}
	return false
}

// iqFiltered applies the filters to an IQ request: the sender's Outbound filters when a local session sends it
// to another entity, the recipient's Inbound filters when it is for another local account. A stopped request
// is answered with the filter's error, if it gave one.
func (r *Router) iqFiltered(ctx context.Context, o *module.Origin, s *stanza.Stanza) bool {
	if len(r.reg.Filters(module.Outbound)) == 0 && len(r.reg.Filters(module.Inbound)) == 0 {
		return false
	}
	to := s.To
	sender, fromSession := o.FromSession()
	var self jid.JID
	if fromSession {
		self = sender.JID().Bare()
		if to.Equal(jid.JID{}) || to.Bare().Equal(self) {
			return false // the user's own account
		}
		if blocked, err := r.filter(ctx, module.Outbound, self, to, s); blocked {
			if err != nil {
				r.bounce(ctx, s, stanza.AsError(err))
			}
			return true
		}
	}
	if to.Localpart() != "" && r.IsLocal(to) {
		if blocked, err := r.filter(ctx, module.Inbound, to.Bare(), s.From, s); blocked {
			if err != nil {
				r.bounce(ctx, s, stanza.AsError(err))
			}
			return true
		}
	}
	return false
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

func (r *Router) handleIQ(ctx context.Context, t module.Target, o *module.Origin, s *stanza.Stanza) {
	local, ns, payload, ok := stanza.FirstChild(s.Payload())
	if !ok {
		r.bounce(ctx, s, stanza.ErrBadRequest)
		return
	}
	iq := &module.IQ{Stanza: s, Origin: *o, Local: local, NS: ns, Payload: payload}
	reply := r.HandleIQ(ctx, t, iq)
	if reply == nil {
		return
	}
	if reply.Type == "error" {
		r.Stats.Errors.Add(1)
	}
	if sender, ok := o.FromSession(); ok && reply.To.Equal(sender.JID()) {
		r.send(o, sender, reply)
		return
	}
	e := o.Emitted()
	r.route(ctx, &e, reply)
}

var _ module.Router = (*Router)(nil)
