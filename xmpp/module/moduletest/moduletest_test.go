package moduletest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// recorder is a module that records what its hooks see and lets a test decide what they return.
type recorder struct {
	inbound, undeliverable []*stanza.Stanza
	targets                [][]string
	undeliverableVerdict   module.Verdict
	answer                 func(iq *module.IQ) ([]byte, error)
}

func (*recorder) Name() string { return "recorder" }

func (r *recorder) Register(h *module.Host) error {
	h.OnMessage(module.Inbound, func(_ context.Context, d *module.Delivery) (module.Verdict, error) {
		r.inbound = append(r.inbound, d.Stanza)
		var ts []string
		for _, t := range d.Targets {
			ts = append(ts, t.JID().String())
		}
		r.targets = append(r.targets, ts)
		return module.Continue, nil
	})
	h.OnMessage(module.Undeliverable, func(_ context.Context, d *module.Delivery) (module.Verdict, error) {
		r.undeliverable = append(r.undeliverable, d.Stanza)
		return r.undeliverableVerdict, nil
	})
	return h.HandleIQ(module.IQRoute{Target: module.Server | module.Account, Type: "get", NS: "urn:example", Local: "q"},
		func(_ context.Context, iq *module.IQ) ([]byte, error) { return r.answer(iq) })
}

func TestMessageDelivery(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{answer: func(*module.IQ) ([]byte, error) { return nil, nil }}
	h := New(t, rec)
	high := h.Online(ctx, "alice@example.net/high", 5)
	low := h.Online(ctx, "alice@example.net/low", 1)
	neg := h.Online(ctx, "alice@example.net/neg", -1)
	idle := h.Connect(ctx, "alice@example.net/idle")

	h.Router.Route(ctx, Message("bob@other.org/x", "alice@example.net", "chat", "<body>1</body>"))
	h.Router.Route(ctx, Message("bob@other.org/x", "alice@example.net", "headline", "<body>2</body>"))
	h.Router.Route(ctx, Message("bob@other.org/x", "alice@example.net/low", "chat", "<body>3</body>"))
	h.Router.Route(ctx, Message("bob@other.org/x", "alice@example.net/gone", "chat", "<body>4</body>"))
	h.Router.Route(ctx, Message("bob@other.org/x", "alice@example.net/gone", "headline", "<body>5</body>"))

	count := func(s *Session) int { return len(s.Received()) }
	if count(high) != 3 || count(low) != 2 || count(neg) != 0 || count(idle) != 0 {
		t.Errorf("received high %d low %d neg %d idle %d, want 3 2 0 0", count(high), count(low), count(neg), count(idle))
	}
	want := [][]string{{"alice@example.net/high"}, {"alice@example.net/high", "alice@example.net/low"},
		{"alice@example.net/low"}, {"alice@example.net/high"}}
	if !slices.EqualFunc(rec.targets, want, slices.Equal[[]string]) {
		t.Errorf("inbound targets %q, want %q", rec.targets, want)
	}
	if got := h.Router.Routed(); len(got) != 5 {
		t.Errorf("routed %d stanzas, want the 5 given to Route", len(got))
	}
	if len(h.Router.Left()) != 0 {
		t.Errorf("%d stanzas left the server", len(h.Router.Left()))
	}
}

func TestUndeliverableAndBounces(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{answer: func(*module.IQ) ([]byte, error) { return nil, nil }}
	h := New(t, rec)
	h.Online(ctx, "carol@example.net/neg", -1)

	h.Router.Route(ctx, Message("bob@other.org/x", "carol@example.net", "chat", "<body>1</body>"))
	if len(rec.undeliverable) != 1 {
		t.Fatalf("undeliverable stage saw %d messages, want 1 (negative priority takes no bare-JID messages)", len(rec.undeliverable))
	}
	left := h.Router.TakeLeft()
	if len(left) != 1 || ErrorCondition(left[0]) != "service-unavailable" || left[0].To.String() != "bob@other.org/x" {
		t.Errorf("bounce %v, want service-unavailable to the sender", left)
	}
	rec.undeliverableVerdict = module.Handled
	h.Router.Route(ctx, Message("bob@other.org/x", "carol@example.net", "chat", "<body>2</body>"))
	if left := h.Router.TakeLeft(); len(left) != 0 {
		t.Errorf("a handled undeliverable message was bounced: %v", left)
	}
	h.Router.Route(ctx, Message("bob@other.org/x", "carol@example.net", "error", ""))
	h.Router.Route(ctx, Message("alice@example.net/a", "dave@elsewhere.org", "chat", "<body>3</body>"))
	left = h.Router.TakeLeft()
	if len(left) != 1 || left[0].To.String() != "dave@elsewhere.org" {
		t.Errorf("left %v, want the message to the other domain and no bounce of an error", left)
	}
}

func TestPresenceWithoutHandlerAndIQ(t *testing.T) {
	ctx := t.Context()
	rec := &recorder{}
	h := New(t, rec)
	a := h.Online(ctx, "alice@example.net/a", 0)
	b := h.Connect(ctx, "alice@example.net/b")
	h.Router.Route(ctx, Presence("bob@other.org/x", "alice@example.net", "", ""))
	h.Router.Route(ctx, Presence("bob@other.org/x", "alice@example.net/b", "", ""))
	if len(a.Take()) != 1 || len(b.Take()) != 1 {
		t.Error("presence to the bare JID reaches available sessions, to a full JID that session")
	}

	rec.answer = func(iq *module.IQ) ([]byte, error) {
		if iq.Origin.Session != a || iq.Local != "q" || iq.NS != "urn:example" {
			t.Errorf("handler got session %v, payload {%s}%s", iq.Origin.Session, iq.NS, iq.Local)
		}
		return []byte("<q xmlns='urn:example'>ok</q>"), nil
	}
	r := h.SendIQTo(ctx, a, Domain, "get", "<q xmlns='urn:example'/>")
	if r.Type != "result" || string(r.Payload()) != "<q xmlns='urn:example'>ok</q>" || !r.To.Equal(a.JID()) {
		t.Errorf("answer %s", r.Raw)
	}
	rec.answer = func(*module.IQ) ([]byte, error) { return nil, stanza.ErrForbidden }
	if got := ErrorCondition(h.SendIQ(ctx, a, "get", "<q xmlns='urn:example'/>")); got != "forbidden" {
		t.Errorf("stanza error: %q", got)
	}
	rec.answer = func(*module.IQ) ([]byte, error) { return nil, errors.New("disk on fire") }
	if got := ErrorCondition(h.SendIQ(ctx, a, "get", "<q xmlns='urn:example'/>")); got != "internal-server-error" {
		t.Errorf("other error: %q", got)
	}
	rec.answer = func(*module.IQ) ([]byte, error) { return nil, module.ErrAnswered }
	if r := h.SendIQ(ctx, a, "get", "<q xmlns='urn:example'/>"); r != nil {
		t.Errorf("answered by the handler: %s, want nil", r.Raw)
	}
	if got := ErrorCondition(h.SendIQ(ctx, a, "set", "<q xmlns='urn:example'/>")); got != "service-unavailable" {
		t.Errorf("no handler: %q", got)
	}

	// An IQ a module routes to the server is answered back to its sender.
	rec.answer = func(*module.IQ) ([]byte, error) { return nil, nil }
	h.Router.Route(ctx, IQ("alice@example.net/a", Domain, "get", "r1", "<q xmlns='urn:example'/>"))
	if got := a.Take(); len(got) != 1 || !got[0].Is(stanza.IQ, "result") || got[0].ID != "r1" {
		t.Errorf("routed IQ: session got %v, want the result", got)
	}
}

func TestSessionEvents(t *testing.T) {
	ctx := t.Context()
	var events []string
	h := New(t, fnModule(func(mh *module.Host) error {
		for _, ev := range []module.SessionEvent{module.Bound, module.Available, module.Closed} {
			mh.OnSession(ev, func(_ context.Context, s module.Session) {
				events = append(events, map[module.SessionEvent]string{module.Bound: "bound", module.Available: "available", module.Closed: "closed"}[ev]+" "+s.JID().String())
			})
		}
		return nil
	}))
	s := h.Connect(ctx, "alice@example.net/a")
	h.Notify(ctx, module.Available, s)
	h.Close(ctx, s)
	want := []string{"bound alice@example.net/a", "available alice@example.net/a", "closed alice@example.net/a"}
	if !slices.Equal(events, want) {
		t.Errorf("events %q, want %q", events, want)
	}
	if h.Router.Session(s.JID()) != nil {
		t.Error("a closed session is still bound")
	}
}

type fnModule func(h *module.Host) error

func (fnModule) Name() string                    { return "fn" }
func (f fnModule) Register(h *module.Host) error { return f(h) }

// inboxPresence is a minimal presence handler (inbound only) with a presence hook, recording both in order.
type inboxPresence struct{ seen []string }

func (*inboxPresence) Name() string { return "inbox" }
func (p *inboxPresence) Register(h *module.Host) error {
	h.OnPresence(func(_ context.Context, _ module.Origin, to jid.JID, s *stanza.Stanza) {
		p.seen = append(p.seen, "hook "+s.Type+" "+to.String())
	})
	return h.HandlePresence(p)
}
func (*inboxPresence) Outbound(context.Context, module.Origin, *stanza.Stanza) error { return nil }
func (p *inboxPresence) Inbound(_ context.Context, _ module.Origin, to jid.JID, s *stanza.Stanza) error {
	p.seen = append(p.seen, "handler "+s.Type+" "+to.String())
	return nil
}

// The fake router runs the presence hooks after the handler, for availability only, as the router does.
func TestPresenceHooksAfterHandler(t *testing.T) {
	ctx := t.Context()
	p := &inboxPresence{}
	h := New(t, p)
	for _, typ := range []string{"", "subscribe", "unavailable"} {
		h.Router.Route(ctx, Presence("bob@other.org/x", "alice@example.net", typ, ""))
	}
	want := []string{"handler  alice@example.net", "hook  alice@example.net", "handler subscribe alice@example.net",
		"handler unavailable alice@example.net", "hook unavailable alice@example.net"}
	if !slices.Equal(p.seen, want) {
		t.Fatalf("saw %q, want %q", p.seen, want)
	}
}
