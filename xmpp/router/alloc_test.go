package router

import (
	"context"
	"hash/maphash"
	"testing"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
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
