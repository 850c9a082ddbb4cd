package module

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/stanza"
)

type fnModule struct {
	name string
	reg  func(h *Host) error
}

func (m fnModule) Name() string           { return m.name }
func (m fnModule) Register(h *Host) error { return m.reg(h) }

func nop(context.Context, *IQ) ([]byte, error) { return nil, nil }

func TestConflictingIQHandlersNameBothModules(t *testing.T) {
	route := IQRoute{Target: Server, Type: "get", NS: "urn:example", Local: "query", Feature: "urn:example"}
	mods := []Module{
		fnModule{"first", func(h *Host) error { return h.HandleIQ(route, nop) }},
		fnModule{"second", func(h *Host) error { return h.HandleIQ(route, nop) }},
	}
	err := NewRegistry().Register(mods, nil, jid.MustParse("example.net"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		t.Fatal("two handlers for the same IQ registered without error")
	}
	for _, want := range []string{"first", "second", "registry_test.go"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestHandlerAndFeatureComeTogether(t *testing.T) {
	reg := NewRegistry()
	mods := []Module{fnModule{"m", func(h *Host) error {
		return h.HandleIQ(IQRoute{Target: Server | Account, Type: "get", NS: "urn:x", Local: "q", Feature: "urn:x"}, nop)
	}}}
	if err := reg.Register(mods, nil, jid.MustParse("example.net"), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	for _, tg := range []Target{Server, Account} {
		if reg.IQHandler(tg, "get", "urn:x", "q") == nil {
			t.Errorf("no handler for %s", tg)
		}
		if f := reg.Features(tg); len(f) != 1 || f[0] != "urn:x" {
			t.Errorf("features for %s = %v", tg, f)
		}
	}
	if reg.IQHandler(PreAuth, "get", "urn:x", "q") != nil {
		t.Error("handler registered for a target it did not ask for")
	}
	if reg.IQHandler(Server, "set", "urn:x", "q") != nil {
		t.Error("handler registered for a type it did not ask for")
	}
}

func TestSecondPresenceHandlerFails(t *testing.T) {
	reg := NewRegistry()
	mods := []Module{
		fnModule{"a", func(h *Host) error { return h.HandlePresence(nilPresence{}) }},
		fnModule{"b", func(h *Host) error { return h.HandlePresence(nilPresence{}) }},
	}
	err := reg.Register(mods, nil, jid.MustParse("example.net"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "a at") || !strings.Contains(err.Error(), "by b") {
		t.Fatalf("got %v, want a conflict naming a and b", err)
	}
}

type nilPresence struct{}

func (nilPresence) Outbound(context.Context, Origin, *stanza.Stanza) error         { return nil }
func (nilPresence) Inbound(context.Context, Origin, jid.JID, *stanza.Stanza) error { return nil }

func TestClosedHooksRunInReverse(t *testing.T) {
	reg := NewRegistry()
	var order []string
	mk := func(name string) Module {
		return fnModule{name, func(h *Host) error {
			h.OnSession(Closed, func(context.Context, Session) { order = append(order, name) })
			return nil
		}}
	}
	if err := reg.Register([]Module{mk("a"), mk("b")}, nil, jid.MustParse("example.net"), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	for _, h := range reg.SessionHooks(Closed) {
		h(context.Background(), nil)
	}
	if strings.Join(order, ",") != "b,a" {
		t.Fatalf("closed hooks ran %v, want b,a", order)
	}
}

// Filters are kept per stage in module-list order; only Outbound and Inbound have filters.
func TestFiltersKeptPerStageInModuleOrder(t *testing.T) {
	var order []string
	filter := func(name string) FilterHook {
		return func(context.Context, jid.JID, jid.JID, *stanza.Stanza) (Verdict, error) {
			order = append(order, name)
			return Continue, nil
		}
	}
	mods := []Module{
		fnModule{"first", func(h *Host) error {
			h.OnFilter(Inbound, filter("first-in"))
			h.OnFilter(Outbound, filter("first-out"))
			h.OnFilter(Undeliverable, filter("ignored"))
			return nil
		}},
		fnModule{"second", func(h *Host) error { h.OnFilter(Inbound, filter("second-in")); return nil }},
	}
	reg := NewRegistry()
	if err := reg.Register(mods, nil, jid.MustParse("example.net"), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	for _, st := range []Stage{Outbound, Inbound, Undeliverable} {
		for _, f := range reg.Filters(st) {
			f(context.Background(), jid.JID{}, jid.JID{}, nil)
		}
	}
	if got := strings.Join(order, " "); got != "first-out first-in second-in" {
		t.Errorf("filters ran as %q, want %q", got, "first-out first-in second-in")
	}
}

// The router asks for a stage's hooks for every message it routes (for each occupant of a room): that lookup
// allocated a copy of the slice per call, one allocation per delivery and stage.
func TestDefectMessageHooksAllocatePerCall(t *testing.T) {
	reg := NewRegistry()
	noop := func(context.Context, *Delivery) (Verdict, error) { return Continue, nil }
	reg.addMessageHook("a", Inbound, noop)
	reg.addMessageHook("b", Inbound, noop)
	if n := len(reg.MessageHooks(Inbound)); n != 2 {
		t.Fatalf("%d Inbound hooks, want 2", n)
	}
	if a := testing.AllocsPerRun(100, func() { _ = reg.MessageHooks(Inbound) }); a != 0 {
		t.Errorf("MessageHooks allocates %v times per call, want 0", a)
	}
}
