package router

import (
	"context"
	"fmt"
	"hash/maphash"
	"testing"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/blocking"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/stanza"
)

func TestAppendKeyMatchesString(t *testing.T) {
	for _, s := range []string{"example.net", "bob@example.net", "bob@example.net/phone",
		"benvolio.montague.of.verona@example.net/Conversations.Xk3p", "example.net/res", "ñandú@example.net/ü"} {
		j := jid.MustParse(s)
		key := appendKey(nil, j)
		if string(key) != j.String() {
			t.Errorf("appendKey(%s) = %q, want %q", s, key, j.String())
		}
		// Sessions finds the shard with maphash.Bytes, Bind and Unbind with maphash.String.
		d := NewLocal()
		if &d.shards[maphash.Bytes(d.seed, key)%shards] != d.shard(j.String()) {
			t.Errorf("%s: Sessions and Bind hash to different shards", s)
		}
	}
}

// targetsHook appends to the Targets it is given, which the Delivery contract does not forbid.
type targetsHook struct{ stranger module.Session }

func (targetsHook) Name() string { return "targets" }
func (m targetsHook) Register(h *module.Host) error {
	h.OnMessage(module.Inbound, func(_ context.Context, d *module.Delivery) (module.Verdict, error) {
		_ = append(d.Targets, m.stranger)
		return module.Continue, nil
	})
	return nil
}

// TestTargetsAreNotTheSessionTable checks that Targets handed to Inbound hooks, which may be a window of the
// router's copy-on-write session slice, cannot be appended into it.
func TestTargetsAreNotTheSessionTable(t *testing.T) {
	stranger := &fakeSession{jid: jid.MustParse("mallory@example.net/x"), available: true}
	r := newTestRouter(t, targetsHook{stranger})
	a := session(r, "bob@example.net/a", 5, true)
	session(r, "bob@example.net/b", 1, true)
	for _, to := range []string{"bob@example.net/b", "bob@example.net"} {
		r.Route(context.Background(), msg("alice@example.net/x", to, "chat", "hi"))
		for _, s := range r.Sessions(jid.MustParse("bob@example.net")) {
			if s == module.Session(stranger) {
				t.Fatalf("to %s: a hook's append changed bob's sessions", to)
			}
		}
	}
	if len(a.received()) != 1 {
		t.Fatalf("highest priority got %d messages, want 1", len(a.received()))
	}
}

// batchSession is a session that takes the write batch of the routing that sends to it, as the c2s session does.
type batchSession struct {
	*benchSession
	batched int
}

func (s *batchSession) SendBatch(b module.WriteBatch, st *stanza.Stanza) error {
	if b != nil {
		s.batched++
	}
	return s.Send(st)
}

type testBatch struct{}

func (*testBatch) WriteBatch() {}

type testDurability struct{}

func (testDurability) Track() func(error) { return func(error) {} }

// TestRouteMessageAllocs checks that the explicit Origin (with a write batch and a durability tracker, as c2s
// gives it) costs no allocation: a chat message from a session to a local bare JID allocates only the
// Deliveries of its two stages (one allocation), the directory lookup nothing, and the recipient is sent the
// message with the sender's batch.
func TestRouteMessageAllocs(t *testing.T) {
	r := newBenchRouter(t, stageHooks{all: true})
	bob := &batchSession{benchSession: newBenchSession("benvolio.montague.of.verona@example.net/Conversations.Xk3p", 0, true)}
	r.Bind(bob)
	alice := newBenchSession("alice@example.net/desk", 0, true)
	r.Bind(alice)
	o := module.Origin{Kind: module.OriginSession, Session: alice, Durability: testDurability{}, Batch: &testBatch{}}
	st := mustParse(t, fmt.Sprintf(benchChat, "benvolio.montague.of.verona@example.net"))
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() { r.RouteFrom(ctx, o, st) }); n > 1 {
		t.Errorf("RouteFrom allocates %v times per message, want at most 1", n)
	}
	if bob.got.Load() == 0 || bob.batched != int(bob.got.Load()) {
		t.Errorf("bob got %d messages, %d with the batch; want all with it", bob.got.Load(), bob.batched)
	}
	bare := jid.MustParse("benvolio.montague.of.verona@example.net")
	if n := testing.AllocsPerRun(100, func() { _ = r.Lookup(bare) }); n != 0 {
		t.Errorf("Lookup allocates %v times, want 0", n)
	}
}

// TestRouteWithBlockingAllocs checks that the XEP-0191 module, registered on every server, adds no allocation
// to a message between two online accounts (both block lists are checked, one of them not empty) nor to a
// presence broadcast to a contact.
func TestRouteWithBlockingAllocs(t *testing.T) {
	store := moduletest.Store(t)
	r := newBenchRouter(t, stageHooks{all: true}, blocking.New(blocking.Config{}, store, store))
	bob := &batchSession{benchSession: newBenchSession("benvolio.montague.of.verona@example.net/Conversations.Xk3p", 0, true)}
	r.Bind(bob)
	alice := newBenchSession("alice@example.net/desk", 0, true)
	r.Bind(alice)
	ctx := context.Background()
	block := stanza.New(stanza.IQ, "set", "b1", alice.JID(), jid.JID{}, []byte("<block xmlns='urn:xmpp:blocking'><item jid='mallory@example.net'/></block>"))
	r.RouteFrom(ctx, module.Origin{Kind: module.OriginSession, Session: alice}, block)
	o := module.Origin{Kind: module.OriginSession, Session: alice, Durability: testDurability{}, Batch: &testBatch{}}
	st := mustParse(t, fmt.Sprintf(benchChat, "benvolio.montague.of.verona@example.net"))
	before := bob.got.Load()
	if n := testing.AllocsPerRun(100, func() { r.RouteFrom(ctx, o, st) }); n > 1 {
		t.Errorf("RouteFrom with blocking allocates %v times per message, want at most 1", n)
	}
	if bob.got.Load() == before {
		t.Error("bob got none of the messages")
	}
	p := stanza.New(stanza.Presence, "", "", alice.JID(), jid.JID{}, nil)
	bare := jid.MustParse("benvolio.montague.of.verona@example.net")
	if n := testing.AllocsPerRun(100, func() { r.Deliver(ctx, o, bare, p) }); n != 0 {
		t.Errorf("a presence broadcast with blocking allocates %v times, want 0", n)
	}
}
