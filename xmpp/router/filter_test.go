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

// filterModule blocks, for alice, everything between her and mallory (as a XEP-0191 block list would), and
// records what its presence handler gets.
type filterModule struct {
	mu       sync.Mutex
	inbound  []string // "to <- from" of presence the handler got
	outbound []string // "to" of presence the handler got from sessions
	seen     []string // "stage owner peer" of filter calls that stopped a stanza
}

func (*filterModule) Name() string { return "filter" }

func (m *filterModule) Register(h *module.Host) error {
	alice, mallory := jid.MustParse("alice@example.net"), jid.MustParse("mallory@example.net")
	stop := func(st module.Stage, err error) module.FilterHook {
		return func(_ context.Context, owner, peer jid.JID, s *stanza.Stanza) (module.Verdict, error) {
			if owner.Equal(alice) && peer.Bare().Equal(mallory) {
				m.mu.Lock()
				m.seen = append(m.seen, st.String()+" "+owner.String()+" "+peer.String())
				m.mu.Unlock()
				if s.Kind == stanza.IQ {
					return module.Handled, err
				}
				return module.Handled, nil
			}
			return module.Continue, nil
		}
	}
	h.OnFilter(module.Outbound, stop(module.Outbound, stanza.ErrNotAcceptable))
	h.OnFilter(module.Inbound, stop(module.Inbound, stanza.ErrServiceUnavailable))
	return h.HandlePresence(m)
}

func (m *filterModule) Outbound(_ context.Context, _ module.Origin, p *stanza.Stanza) error {
	m.mu.Lock()
	m.outbound = append(m.outbound, p.To.String())
	m.mu.Unlock()
	return nil
}

func (m *filterModule) Inbound(_ context.Context, _ module.Origin, to jid.JID, p *stanza.Stanza) error {
	m.mu.Lock()
	m.inbound = append(m.inbound, to.String()+" <- "+p.From.String())
	m.mu.Unlock()
	return nil
}

func TestFiltersStopPresenceAndIQBothWays(t *testing.T) {
	fm := &filterModule{}
	r := newTestRouter(t, fm)
	ctx := context.Background()
	alice := session(r, "alice@example.net/a", 0, true)
	mallory := session(r, "mallory@example.net/m", 0, true)
	bob := session(r, "bob@example.net/b", 0, true)

	// An IQ request from mallory to alice: refused with the Inbound filter's error.
	r.RouteFrom(ctx, originOf(mallory), stanza.New(stanza.IQ, "get", "i1", mallory.jid, jid.MustParse("alice@example.net/a"), []byte("<query xmlns='jabber:iq:version'/>")))
	if got := mallory.received(); len(got) != 1 || got[0].Type != "error" || !strings.Contains(string(got[0].Raw), "service-unavailable") {
		t.Errorf("mallory's iq to alice was answered with %v, want one service-unavailable error", got)
	}
	if n := len(alice.received()); n != 0 {
		t.Errorf("alice got %d stanzas from mallory's iq, want 0", n)
	}
	// An IQ request from alice to mallory: refused with the Outbound filter's error.
	r.RouteFrom(ctx, originOf(alice), stanza.New(stanza.IQ, "get", "i2", alice.jid, mallory.jid, []byte("<query xmlns='jabber:iq:version'/>")))
	if got := alice.received(); len(got) != 1 || got[0].Type != "error" || !strings.Contains(string(got[0].Raw), "not-acceptable") {
		t.Errorf("alice's iq to mallory was answered with %v, want one not-acceptable error", got)
	}
	if n := len(mallory.received()); n != 1 { // the error of the first iq only
		t.Errorf("mallory got %d stanzas, want 1", n)
	}
	// Bob's IQ to alice passes the filters.
	r.RouteFrom(ctx, originOf(bob), stanza.New(stanza.IQ, "get", "i3", bob.jid, alice.jid, []byte("<query xmlns='jabber:iq:version'/>")))
	if n := len(alice.received()); n != 2 {
		t.Errorf("alice got %d stanzas after bob's iq, want 2", n)
	}

	// Presence: mallory's to alice (routed and delivered) never reaches the presence handler, neither does a
	// broadcast of alice's to mallory; bob's does.
	r.Route(ctx, stanza.New(stanza.Presence, "", "", mallory.jid, jid.MustParse("alice@example.net"), nil))
	r.Deliver(ctx, module.Origin{}, jid.MustParse("alice@example.net"), stanza.New(stanza.Presence, "", "", mallory.jid, jid.JID{}, nil))
	r.Deliver(ctx, module.Origin{}, jid.MustParse("mallory@example.net"), stanza.New(stanza.Presence, "", "", alice.jid, jid.JID{}, nil))
	r.Deliver(ctx, module.Origin{}, jid.MustParse("alice@example.net"), stanza.New(stanza.Presence, "", "", bob.jid, jid.JID{}, nil))
	// Directed presence from alice to mallory: dropped before the presence handler; from alice to bob: passed.
	r.RouteFrom(ctx, originOf(alice), stanza.New(stanza.Presence, "", "", alice.jid, mallory.jid, nil))
	r.RouteFrom(ctx, originOf(alice), stanza.New(stanza.Presence, "", "", alice.jid, bob.jid, nil))

	fm.mu.Lock()
	defer fm.mu.Unlock()
	if len(fm.inbound) != 1 || fm.inbound[0] != "alice@example.net <- bob@example.net/b" {
		t.Errorf("presence handler got inbound %v, want only bob's presence to alice", fm.inbound)
	}
	if len(fm.outbound) != 1 || fm.outbound[0] != "bob@example.net/b" {
		t.Errorf("presence handler got outbound %v, want only alice's directed presence to bob", fm.outbound)
	}
	want := []string{
		"inbound alice@example.net mallory@example.net/m",
		"outbound alice@example.net mallory@example.net/m",
		"inbound alice@example.net mallory@example.net/m",
		"inbound alice@example.net mallory@example.net/m",
		"outbound alice@example.net mallory@example.net",
		"outbound alice@example.net mallory@example.net/m",
	}
	if strings.Join(fm.seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("filters stopped:\n%s\nwant:\n%s", strings.Join(fm.seen, "\n"), strings.Join(want, "\n"))
	}
}
