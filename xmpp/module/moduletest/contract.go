package moduletest

import (
	"context"
	"errors"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// This file is the only place in moduletest (and in the module tests built on it) that builds module.Delivery
// and module.IQ values or calls the presence handler: when the hook and handler arguments change, only these
// functions change.

// StageResult is what the hooks of a message stage made of a message.
type StageResult struct {
	// Verdict is Handled if a hook handled the message (or failed), Continue if every hook passed it on.
	Verdict module.Verdict
	// Stanza is the message as the hooks left it (a hook may replace it with an edited copy).
	Stanza *stanza.Stanza
	// Err is the error of the hook that failed, which stopped the stage.
	Err error
}

// runStage runs the hooks of stage in registration order, as the router does, for a message owned by owner
// (the sender's account in Outbound, the recipient's otherwise), sent by sender (nil when not from a local
// session), about to be delivered to targets (Inbound only).
func runStage(ctx context.Context, reg *module.Registry, stage module.Stage, sender module.Session, owner jid.JID,
	s *stanza.Stanza, targets []module.Session) StageResult {
	o := origin(sender)
	d := &module.Delivery{Stanza: s, Origin: &o, Owner: owner.Bare(), Targets: targets}
	for _, h := range reg.MessageHooks(stage) {
		v, err := h(ctx, d)
		if err != nil {
			return StageResult{Verdict: module.Handled, Stanza: d.Stanza, Err: err}
		}
		if v == module.Handled {
			return StageResult{Verdict: module.Handled, Stanza: d.Stanza}
		}
	}
	return StageResult{Verdict: module.Continue, Stanza: d.Stanza}
}

// runIQ runs the handler registered for an IQ request as the router's HandleIQ does and returns the answer to
// route: the result, an error reply (service-unavailable when no handler is registered), or nil when the
// handler answered itself (module.ErrAnswered).
func runIQ(ctx context.Context, reg *module.Registry, t module.Target, sender module.Session, s *stanza.Stanza,
	remoteAddr string) *stanza.Stanza {
	local, ns, payload, ok := stanza.FirstChild(s.Payload())
	if !ok {
		return stanza.ErrorReply(s, jid.JID{}, stanza.ErrBadRequest)
	}
	fn := reg.IQHandler(t, s.Type, ns, local)
	if fn == nil {
		return stanza.ErrorReply(s, jid.JID{}, stanza.ErrServiceUnavailable)
	}
	iq := &module.IQ{Stanza: s, Origin: origin(sender), Local: local, NS: ns, Payload: payload, RemoteAddr: remoteAddr}
	inner, err := fn(ctx, iq)
	if errors.Is(err, module.ErrAnswered) {
		return nil
	}
	if err != nil {
		return stanza.ErrorReply(s, jid.JID{}, stanza.AsError(err))
	}
	return stanza.Result(s, inner)
}

// origin is the origin of a stanza sent by sender, the server's when sender is nil.
func origin(sender module.Session) module.Origin {
	if sender == nil {
		return module.Origin{}
	}
	return module.Origin{Kind: module.OriginSession, Session: sender}
}

// presenceOutbound hands presence a local session sent to the presence handler, after the presence edit hooks
// (module.Host.EditPresence), as the router does.
func presenceOutbound(ctx context.Context, reg *module.Registry, p module.PresenceHandler, from module.Session,
	s *stanza.Stanza) error {
	return p.Outbound(ctx, origin(from), reg.EditPresence(ctx, from, s))
}

// presenceInbound hands presence from anyone else, for the local account or resource to, to the presence
// handler.
func presenceInbound(ctx context.Context, p module.PresenceHandler, to jid.JID, s *stanza.Stanza) error {
	return p.Inbound(ctx, module.Origin{}, to, s)
}

// presenceHooks runs the presence hooks (module.Host.OnPresence) for availability presence that reached the
// local account or resource to, as the router does after the presence handler's Inbound.
func presenceHooks(ctx context.Context, reg *module.Registry, to jid.JID, s *stanza.Stanza) {
	for _, h := range reg.PresenceHooks() {
		h(ctx, module.Origin{}, to, s)
	}
}
