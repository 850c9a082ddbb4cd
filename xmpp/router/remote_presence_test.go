package router

import (
	"context"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// presenceRecorder is a presence handler that routes what a session sends on, as the presence module does
// (subscription requests leave from the bare JID), and records the inbound presence it is handed.
type presenceRecorder struct {
	r       *Router
	mu      sync.Mutex
	inbound []*stanza.Stanza
}

func (*presenceRecorder) Name() string                    { return "presence" }
func (p *presenceRecorder) Register(h *module.Host) error { return h.HandlePresence(p) }

func (p *presenceRecorder) Outbound(ctx context.Context, o module.Origin, s *stanza.Stanza) error {
	p.r.Route(ctx, stanza.New(stanza.Presence, s.Type, s.ID, o.Session.JID().Bare(), s.To.Bare(), s.Payload()))
	return nil
}

func (p *presenceRecorder) Inbound(_ context.Context, _ module.Origin, _ jid.JID, s *stanza.Stanza) error {
	p.mu.Lock()
	p.inbound = append(p.inbound, s)
	p.mu.Unlock()
	return nil
}

var _ module.PresenceHandler = (*presenceRecorder)(nil)

// Issue 19 item 6: without server-to-server, a subscription request to another domain was dropped in silence
// and the roster item stayed ask='subscribe' forever. It is answered with remote-server-not-found, addressed to
// the user's bare JID (where the presence handler clears the ask); other presence to remote domains is still
// dropped without an answer.
func TestDefectRemoteSubscriptionBouncesRemoteServerNotFound(t *testing.T) {
	p := &presenceRecorder{}
	r := newTestRouter(t, p)
	p.r = r
	alice := session(r, "alice@example.net/laptop", 0, true)
	r.RouteFrom(context.Background(), originOf(alice),
		stanza.New(stanza.Presence, "subscribe", "s1", alice.JID(), jid.MustParse("romeo@unreachable.example"), nil))
	if len(p.inbound) != 1 {
		t.Fatalf("presence handler got %d inbound stanzas, want the bounce", len(p.inbound))
	}
	e := p.inbound[0]
	if e.Type != "error" || e.ID != "s1" || !e.From.Equal(jid.MustParse("romeo@unreachable.example")) ||
		!e.To.Equal(jid.MustParse("alice@example.net")) || !strings.Contains(string(e.Raw), "<remote-server-not-found") {
		t.Fatalf("bounce: %s", e.Raw)
	}

	for _, typ := range []string{"", "unavailable", "subscribed", "unsubscribe", "unsubscribed", "probe", "error"} {
		r.Route(context.Background(), stanza.New(stanza.Presence, typ, "x", jid.MustParse("alice@example.net"),
			jid.MustParse("romeo@unreachable.example"), nil))
	}
	if len(p.inbound) != 1 {
		t.Fatalf("other presence to a remote domain was answered: %s", p.inbound[len(p.inbound)-1].Raw)
	}
	if n := r.Stats.Errors.Load(); n != 1 {
		t.Fatalf("Stats.Errors = %d, want 1", n)
	}
}

// presenceWatcher records what its presence hook (module.Host.OnPresence) sees.
type presenceWatcher struct {
	mu  sync.Mutex
	got []string // "to type from"
}

func (*presenceWatcher) Name() string { return "watcher" }
func (w *presenceWatcher) Register(h *module.Host) error {
	h.OnPresence(func(_ context.Context, _ module.Origin, to jid.JID, p *stanza.Stanza) {
		w.mu.Lock()
		w.got = append(w.got, to.String()+" "+p.Type+" "+p.From.String())
		w.mu.Unlock()
	})
	return nil
}

// Presence hooks see availability presence for a local account after the presence handler took it, and
// nothing else: not subscriptions, probes or errors, and not presence to other domains.
func TestPresenceHookSeesAvailabilityForLocalAccounts(t *testing.T) {
	p := &presenceRecorder{}
	w := &presenceWatcher{}
	r := newTestRouter(t, p, w)
	p.r = r
	ctx := context.Background()
	romeo := jid.MustParse("romeo@example.org/phone")
	for _, typ := range []string{"", "unavailable", "subscribe", "probe", "error"} {
		r.Deliver(ctx, module.Origin{}, jid.MustParse("alice@example.net"),
			stanza.New(stanza.Presence, typ, "", romeo, jid.JID{}, nil))
	}
	r.Route(ctx, stanza.New(stanza.Presence, "", "", romeo, jid.MustParse("alice@example.net/laptop"), nil))
	r.Route(ctx, stanza.New(stanza.Presence, "", "", jid.MustParse("alice@example.net/laptop"),
		jid.MustParse("juliet@elsewhere.example"), nil))
	want := []string{
		"alice@example.net  romeo@example.org/phone",
		"alice@example.net unavailable romeo@example.org/phone",
		"alice@example.net/laptop  romeo@example.org/phone",
	}
	if strings.Join(w.got, "|") != strings.Join(want, "|") {
		t.Fatalf("hooks saw %q, want %q", w.got, want)
	}
	if len(p.inbound) != 6 {
		t.Fatalf("presence handler got %d stanzas, want 6 (the hook comes after it)", len(p.inbound))
	}
}

// outboundRecorder is a presence handler that records what Outbound is handed.
type outboundRecorder struct{ out []*stanza.Stanza }

func (*outboundRecorder) Name() string                    { return "presence" }
func (p *outboundRecorder) Register(h *module.Host) error { return h.HandlePresence(p) }
func (p *outboundRecorder) Outbound(_ context.Context, _ module.Origin, s *stanza.Stanza) error {
	p.out = append(p.out, s)
	return nil
}
func (*outboundRecorder) Inbound(context.Context, module.Origin, jid.JID, *stanza.Stanza) error {
	return nil
}

// presenceEditor appends <child/> to available presence (Host.EditPresence).
type presenceEditor struct{ name, child string }

func (e presenceEditor) Name() string { return e.name }
func (e presenceEditor) Register(h *module.Host) error {
	h.EditPresence(func(_ context.Context, s module.Session, p *stanza.Stanza) *stanza.Stanza {
		if s == nil {
			panic("edit hook without the sending session")
		}
		return p.AppendChild([]byte(e.child))
	})
	return nil
}

// The presence edit hooks run, in module order, on the available presence a local session sends, and the
// presence handler gets their result; other presence, and presence from elsewhere, pass untouched.
func TestPresenceEditHooksBeforeHandler(t *testing.T) {
	p := &outboundRecorder{}
	r := newTestRouter(t, p, presenceEditor{"e1", "<one/>"}, presenceEditor{"e2", "<two/>"})
	alice := session(r, "alice@example.net/laptop", 0, true)
	ctx := context.Background()
	avail := stanza.New(stanza.Presence, "", "", alice.JID(), jid.JID{}, []byte("<show>away</show>"))
	r.RouteFrom(ctx, originOf(alice), avail)
	un := stanza.New(stanza.Presence, "unavailable", "", alice.JID(), jid.JID{}, nil)
	r.RouteFrom(ctx, originOf(alice), un)
	if len(p.out) != 2 {
		t.Fatalf("handler got %d presences, want 2", len(p.out))
	}
	if got := string(p.out[0].Payload()); got != "<show>away</show><one/><two/>" {
		t.Errorf("available presence the handler got: %s", p.out[0].Raw)
	}
	if string(avail.Raw) != "<presence from='alice@example.net/laptop'><show>away</show></presence>" {
		t.Errorf("the hooks modified the routed stanza in place: %s", avail.Raw)
	}
	if p.out[1] != un {
		t.Errorf("unavailable presence was edited: %s", p.out[1].Raw)
	}
}
