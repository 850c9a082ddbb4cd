package moduletest

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// Domain is the domain every Host serves.
const Domain = "example.net"

// Host is a registry, a fake Router over it and the modules a test registered, standing in for the server
// around those modules. Its methods play the parts of the c2s listener and the router: a session binds, sends
// an IQ, a presence or a message, becomes available, closes.
type Host struct {
	t testing.TB
	// Domain is the served domain (Domain).
	Domain jid.JID
	// Registry holds what the modules registered: IQ handlers, hooks, features, identities, items.
	Registry *module.Registry
	// Router is the router the modules were given; it records what was routed and what left the server.
	Router *Router

	ids atomic.Uint64
}

// NewHost returns a host with nothing registered. Register the modules with Register; a module that needs the
// registry itself (disco) can be built from h.Registry first.
func NewHost(t testing.TB) *Host {
	t.Helper()
	reg := module.NewRegistry()
	return &Host{t: t, Domain: jid.MustParse(Domain), Registry: reg, Router: NewRouter(jid.MustParse(Domain), reg, t.Errorf)}
}

// New returns a host with mods registered, in order; it fails the test if a registration fails.
func New(t testing.TB, mods ...module.Module) *Host {
	t.Helper()
	h := NewHost(t)
	if err := h.Register(mods...); err != nil {
		t.Fatalf("moduletest: register: %v", err)
	}
	return h
}

// Register registers mods, in order, as the server does with its module list.
func (h *Host) Register(mods ...module.Module) error {
	return h.Registry.Register(mods, h.Router, h.Domain, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// Bind binds s as the c2s listener does after resource binding: the Bound hooks run, then s joins the router's
// table. It returns s.
func (h *Host) Bind(ctx context.Context, s *Session) *Session {
	for _, fn := range h.Registry.SessionHooks(module.Bound) {
		fn(ctx, s)
	}
	h.Router.Bind(s)
	return s
}

// Connect returns a new session for full, bound and not yet available.
func (h *Host) Connect(ctx context.Context, full string) *Session {
	return h.Bind(ctx, NewSession(full))
}

// Online returns a new session for full, bound and available with priority prio, without broadcasting
// anything (as if its initial presence was handled before the test looks). For a session whose initial
// presence the presence module must handle, use Connect and SendPresence.
func (h *Host) Online(ctx context.Context, full string, prio int) *Session {
	return h.Connect(ctx, full).SetAvailable(prio)
}

// Close ends s as the c2s listener does: it leaves the router's table, then the Closed hooks run.
func (h *Host) Close(ctx context.Context, s *Session) {
	h.Router.Unbind(s)
	h.Router.Notify(ctx, module.Closed, s)
}

// Notify runs the hooks of a session event for s (and records it in Router.Notified).
func (h *Host) Notify(ctx context.Context, ev module.SessionEvent, s module.Session) {
	h.Router.Notify(ctx, ev, s)
}

func (h *Host) nextID() string { return "t" + strconv.FormatUint(h.ids.Add(1), 10) }

// SendIQ sends an IQ request of type typ ("get" or "set") with payload as its child from session from, without
// a to (so on behalf of from's own account), and returns the answer the router would send back: a result or
// an error reply. It returns nil when the handler answered itself (module.ErrAnswered); the answer is then
// among what from received. With no handler registered the answer is service-unavailable.
func (h *Host) SendIQ(ctx context.Context, from *Session, typ, payload string) *stanza.Stanza {
	h.t.Helper()
	return h.SendIQTo(ctx, from, "", typ, payload)
}

// SendIQTo is SendIQ with a to: "" (the sender's account), the domain (the server), or a local bare JID.
func (h *Host) SendIQTo(ctx context.Context, from *Session, to, typ, payload string) *stanza.Stanza {
	h.t.Helper()
	var toJID jid.JID
	t := module.Account
	if to != "" {
		toJID = jid.MustParse(to)
		switch {
		case !h.Router.IsLocal(toJID):
			h.t.Fatalf("moduletest: SendIQTo %s: not a local JID", to)
		case toJID.Resourcepart() != "":
			h.t.Fatalf("moduletest: SendIQTo %s: IQs to full JIDs go to the session, not to a handler", to)
		case toJID.Localpart() == "":
			t = module.Server
		}
	}
	s := stanza.New(stanza.IQ, typ, h.nextID(), from.JID(), toJID, []byte(payload))
	return runIQ(ctx, h.Registry, t, from, s, "")
}

// PreAuthIQ sends an IQ request on a stream that has not authenticated (no from, no session), from the
// client address remoteAddr, and returns the answer as SendIQ does.
func (h *Host) PreAuthIQ(ctx context.Context, remoteAddr, typ, payload string) *stanza.Stanza {
	h.t.Helper()
	s := stanza.New(stanza.IQ, typ, h.nextID(), jid.JID{}, jid.JID{}, []byte(payload))
	return runIQ(ctx, h.Registry, module.PreAuth, nil, s, remoteAddr)
}

// SendPresence hands a presence stanza from session from to the presence handler, as the router does with
// presence a local session sends: type typ ("" for available), to to ("" for a broadcast) and inner XML inner.
// It fails the test if no presence handler is registered, and returns the handler's error.
func (h *Host) SendPresence(ctx context.Context, from *Session, to, typ, inner string) error {
	h.t.Helper()
	p := h.Registry.Presence()
	if p == nil {
		h.t.Fatal("moduletest: no presence handler registered")
	}
	var toJID jid.JID
	if to != "" {
		toJID = jid.MustParse(to)
	}
	return presenceOutbound(ctx, h.Registry, p, from, stanza.New(stanza.Presence, typ, "", from.JID(), toJID, []byte(inner)))
}

// SendMessage routes a message that session from sent, as the router does: the Outbound stage runs with from as
// the sender, then the message is delivered by the Router's rules (with from as the sender in the Inbound
// stage). A hook error bounces the message to from. It returns the Outbound stage's result.
func (h *Host) SendMessage(ctx context.Context, from *Session, s *stanza.Stanza) StageResult {
	res := runStage(ctx, h.Registry, module.Outbound, from, from.JID().Bare(), s, nil)
	switch {
	case res.Err != nil:
		h.Router.bounce(ctx, res.Stanza, stanza.AsError(res.Err))
	case res.Verdict == module.Continue:
		h.Router.route(ctx, from, res.Stanza)
	}
	return res
}

// RunStage runs the hooks of one message stage on s for the account owner, with sender the local session that
// sent it (nil if none) and targets the sessions about to receive it (Inbound only), and returns what they
// decided. Nothing is delivered.
func (h *Host) RunStage(ctx context.Context, stage module.Stage, owner jid.JID, sender module.Session,
	s *stanza.Stanza, targets ...module.Session) StageResult {
	return runStage(ctx, h.Registry, stage, sender, owner, s, targets)
}

// Outbound runs the Outbound stage for s sent by session from.
func (h *Host) Outbound(ctx context.Context, from *Session, s *stanza.Stanza) StageResult {
	return runStage(ctx, h.Registry, module.Outbound, from, from.JID().Bare(), s, nil)
}

// Inbound runs the Inbound stage for s, owned by the account s is addressed to, about to go to targets.
func (h *Host) Inbound(ctx context.Context, s *stanza.Stanza, targets ...module.Session) StageResult {
	return runStage(ctx, h.Registry, module.Inbound, nil, s.To.Bare(), s, targets)
}

// Undeliverable runs the Undeliverable stage for s, owned by the account s is addressed to.
func (h *Host) Undeliverable(ctx context.Context, s *stanza.Stanza) StageResult {
	return runStage(ctx, h.Registry, module.Undeliverable, nil, s.To.Bare(), s, nil)
}
