package blocking

import (
	"context"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/stanza"
)

func items(t *testing.T, s *stanza.Stanza) []string {
	t.Helper()
	if s == nil || s.Type != "result" {
		t.Fatalf("blocklist answer %v, want a result", s)
	}
	var out []string
	stanza.Children(inner(moduletest.Child(s, NS, "blocklist")), func(local, _ string, raw []byte) bool {
		out = append(out, stanza.ChildAttr(raw, "jid"))
		return true
	})
	return out
}

func TestBlockUnblockAndPushes(t *testing.T) {
	ctx := context.Background()
	store := moduletest.Store(t)
	h := moduletest.New(t, New(Config{}, store, store))
	a := h.Online(ctx, "alice@example.net/a", 0)
	b := h.Online(ctx, "alice@example.net/b", 0)
	c := h.Online(ctx, "alice@example.net/c", 0) // never asks for the list: gets no push

	if got := items(t, h.SendIQ(ctx, a, "get", "<blocklist xmlns='urn:xmpp:blocking'/>")); len(got) != 0 {
		t.Fatalf("new account's block list: %v, want empty", got)
	}
	items(t, h.SendIQ(ctx, b, "get", "<blocklist xmlns='urn:xmpp:blocking'/>"))
	res := h.SendIQ(ctx, a, "set", "<block xmlns='urn:xmpp:blocking'><item jid='mallory@example.net'/><item jid='spam.example'/></block>")
	if res.Type != "result" {
		t.Fatalf("block answered %s", res.Raw)
	}
	if got := items(t, h.SendIQ(ctx, a, "get", "<blocklist xmlns='urn:xmpp:blocking'/>")); strings.Join(got, " ") != "mallory@example.net spam.example" {
		t.Errorf("block list after block: %v", got)
	}
	for _, s := range []*moduletest.Session{a, b} {
		got := moduletest.Only(s.Take(), stanza.IQ, "set")
		if len(got) != 1 || !strings.Contains(string(got[0].Raw), "<block xmlns='urn:xmpp:blocking'><item jid='mallory@example.net'/><item jid='spam.example'/></block>") {
			t.Errorf("%s got pushes %v, want one block push", s.JID(), got)
		}
	}
	if n := len(moduletest.Only(c.Take(), stanza.IQ, "set")); n != 0 {
		t.Errorf("the resource that never asked for the list got %d pushes", n)
	}
	// Blocking again changes nothing and pushes nothing.
	h.SendIQ(ctx, a, "set", "<block xmlns='urn:xmpp:blocking'><item jid='mallory@example.net'/></block>")
	if n := len(moduletest.Only(b.Take(), stanza.IQ, "set")); n != 0 {
		t.Errorf("blocking an already blocked JID pushed %d times", n)
	}

	h.SendIQ(ctx, a, "set", "<unblock xmlns='urn:xmpp:blocking'><item jid='spam.example'/></unblock>")
	if got := items(t, h.SendIQ(ctx, a, "get", "<blocklist xmlns='urn:xmpp:blocking'/>")); strings.Join(got, " ") != "mallory@example.net" {
		t.Errorf("block list after unblock: %v", got)
	}
	if got := moduletest.Only(b.Take(), stanza.IQ, "set"); len(got) != 1 || !strings.Contains(string(got[0].Raw), "<unblock xmlns='urn:xmpp:blocking'><item jid='spam.example'/></unblock>") {
		t.Errorf("unblock pushes %v", got)
	}
	// An empty unblock unblocks everyone.
	h.SendIQ(ctx, a, "set", "<unblock xmlns='urn:xmpp:blocking'/>")
	if got := items(t, h.SendIQ(ctx, a, "get", "<blocklist xmlns='urn:xmpp:blocking'/>")); len(got) != 0 {
		t.Errorf("block list after unblock all: %v", got)
	}
	if got := moduletest.Only(b.Take(), stanza.IQ, "set"); len(got) != 1 || !strings.Contains(string(got[0].Raw), "<unblock xmlns='urn:xmpp:blocking'></unblock>") {
		t.Errorf("unblock-all pushes %v", got)
	}
	if moduletest.ErrorCondition(h.SendIQ(ctx, a, "set", "<block xmlns='urn:xmpp:blocking'/>")) != "bad-request" {
		t.Error("a block without items was not refused with bad-request")
	}
	if moduletest.ErrorCondition(h.SendIQ(ctx, a, "set", "<block xmlns='urn:xmpp:blocking'><item jid='@@'/></block>")) != "jid-malformed" {
		t.Error("a block of an invalid JID was not refused with jid-malformed")
	}
}

func TestBlockMatchesResourcesAndDomains(t *testing.T) {
	ctx := context.Background()
	store := moduletest.Store(t)
	m := New(Config{}, store, store)
	h := moduletest.New(t, m)
	a := h.Online(ctx, "alice@example.net/a", 0)
	h.SendIQ(ctx, a, "set", "<block xmlns='urn:xmpp:blocking'><item jid='mallory@example.net'/><item jid='spam.example'/><item jid='eve@example.org/phone'/><item jid='other.example/bot'/></block>")
	owner := jid.MustParse("alice@example.net")
	for peer, want := range map[string]bool{
		"mallory@example.net":       true,
		"mallory@example.net/any":   true,
		"spam.example":              true,
		"bot@spam.example/x":        true,
		"eve@example.org/phone":     true,
		"eve@example.org/laptop":    false,
		"eve@example.org":           false,
		"bob@example.net/b":         false,
		"mallory@other.example":     false,
		"alice@example.net/another": false,
		"x@other.example/bot":       true,
		"x@other.example/human":     false,
		"other.example":             false,
	} {
		got, err := m.Blocked(ctx, owner, jid.MustParse(peer))
		if err != nil || got != want {
			t.Errorf("Blocked(%s) = %v, %v; want %v", peer, got, err, want)
		}
	}
}

func TestBlockedStanzasRefusedAndDropped(t *testing.T) {
	ctx := context.Background()
	store := moduletest.Store(t)
	h := moduletest.New(t, New(Config{}, store, store))
	a := h.Online(ctx, "alice@example.net/a", 0)
	h.SendIQ(ctx, a, "set", "<block xmlns='urn:xmpp:blocking'><item jid='mallory@example.net'/></block>")

	out := h.Outbound(ctx, a, moduletest.Message("alice@example.net/a", "mallory@example.net", "chat", "<body>hi</body>"))
	se := stanza.AsError(out.Err)
	if out.Verdict != module.Handled || se.Condition != "not-acceptable" || !strings.Contains(string(se.App), "<blocked xmlns='urn:xmpp:blocking:errors'/>") {
		t.Errorf("message to a blocked JID: %v %v, want not-acceptable with the blocked condition", out.Verdict, out.Err)
	}
	if out := h.Outbound(ctx, a, moduletest.Message("alice@example.net/a", "bob@example.net", "chat", "<body>hi</body>")); out.Verdict != module.Continue || out.Err != nil {
		t.Errorf("message to bob: %v %v, want it passed", out.Verdict, out.Err)
	}
	spam := moduletest.Message("mallory@example.net/m", "alice@example.net", "chat", "<body>spam</body>")
	if in := h.Inbound(ctx, spam, a); in.Verdict != module.Handled || in.Err != nil {
		t.Errorf("inbound message from a blocked JID: %v %v, want dropped silently", in.Verdict, in.Err)
	}
	if in := h.Undeliverable(ctx, spam); in.Verdict != module.Handled || in.Err != nil {
		t.Errorf("undeliverable message from a blocked JID: %v %v, want dropped silently (not stored offline)", in.Verdict, in.Err)
	}
	if in := h.Inbound(ctx, moduletest.Message("bob@example.net/b", "alice@example.net", "chat", "<body>hi</body>"), a); in.Verdict != module.Continue {
		t.Errorf("inbound message from bob: %v, want passed", in.Verdict)
	}

	owner, mallory := jid.MustParse("alice@example.net"), jid.MustParse("mallory@example.net/m")
	iq := moduletest.IQ("mallory@example.net/m", "alice@example.net", "get", "q", "<query xmlns='jabber:iq:version'/>")
	for _, f := range h.Registry.Filters(module.Inbound) {
		if v, err := f(ctx, owner, mallory, iq); v != module.Handled || stanza.AsError(err).Condition != "service-unavailable" {
			t.Errorf("inbound iq from a blocked JID: %v %v, want service-unavailable", v, err)
		}
		if v, err := f(ctx, owner, mallory, moduletest.Presence("mallory@example.net/m", "alice@example.net", "", "")); v != module.Handled || err != nil {
			t.Errorf("inbound presence from a blocked JID: %v %v, want dropped silently", v, err)
		}
	}
	for _, f := range h.Registry.Filters(module.Outbound) {
		if v, err := f(ctx, owner, mallory, moduletest.IQ("alice@example.net/a", "mallory@example.net/m", "get", "q", "<ping xmlns='urn:xmpp:ping'/>")); v != module.Handled || stanza.AsError(err).Condition != "not-acceptable" {
			t.Errorf("outbound iq to a blocked JID: %v %v, want not-acceptable", v, err)
		}
	}
}

func TestBlockHidesPresenceFromSubscribedContact(t *testing.T) {
	ctx := context.Background()
	store := moduletest.Store(t)
	for _, c := range []storage.RosterItem{
		{JID: "dave@elsewhere.example", Subscription: storage.SubBoth},
		{JID: "erin@elsewhere.example", Subscription: storage.SubNone},
	} {
		if _, err := store.PutRosterItem(ctx, "alice@example.net", c); err != nil {
			t.Fatal(err)
		}
	}
	h := moduletest.New(t, New(Config{}, store, store))
	a := h.Online(ctx, "alice@example.net/a", 0)
	h.Connect(ctx, "alice@example.net/b") // not available: sends nothing
	h.SendIQ(ctx, a, "set", "<block xmlns='urn:xmpp:blocking'><item jid='elsewhere.example'/></block>")
	left := h.Router.TakeLeft()
	if len(left) != 1 || left[0].Kind != stanza.Presence || left[0].Type != "unavailable" ||
		!left[0].From.Equal(a.JID()) || !left[0].To.Equal(jid.MustParse("dave@elsewhere.example")) {
		t.Errorf("blocking sent %v, want one unavailable presence from alice/a to dave", left)
	}
}

func TestBlockListBoundedAndPersistent(t *testing.T) {
	ctx := context.Background()
	store := moduletest.Store(t)
	h := moduletest.New(t, New(Config{MaxItems: 2}, store, store))
	a := h.Online(ctx, "alice@example.net/a", 0)
	h.SendIQ(ctx, a, "set", "<block xmlns='urn:xmpp:blocking'><item jid='one@example.org'/><item jid='two@example.org'/></block>")
	if c := moduletest.ErrorCondition(h.SendIQ(ctx, a, "set", "<block xmlns='urn:xmpp:blocking'><item jid='three@example.org'/></block>")); c != "resource-constraint" {
		t.Errorf("a block past max_items answered %q, want resource-constraint", c)
	}
	// A new module over the same store (a restart) reads the list back.
	h2 := moduletest.New(t, New(Config{}, store, store))
	a2 := h2.Online(ctx, "alice@example.net/a", 0)
	if got := items(t, h2.SendIQ(ctx, a2, "get", "<blocklist xmlns='urn:xmpp:blocking'/>")); strings.Join(got, " ") != "one@example.org two@example.org" {
		t.Errorf("block list after restart: %v", got)
	}
	if (Config{MaxItems: -1}).Validate() == nil {
		t.Error("negative max_items validated")
	}
}

// The check runs for every stanza an online account sends or gets: it must not allocate, with an empty list
// (most accounts) or a non-empty one.
func TestBlockedCheckDoesNotAllocate(t *testing.T) {
	ctx := context.Background()
	store := moduletest.Store(t)
	m := New(Config{}, store, store)
	h := moduletest.New(t, m)
	a := h.Online(ctx, "alice@example.net/a", 0)
	owner, peer := jid.MustParse("alice@example.net"), jid.MustParse("bob@example.net/phone")
	if n := testing.AllocsPerRun(100, func() { m.Blocked(ctx, owner, peer) }); n != 0 {
		t.Errorf("Blocked with an empty list: %v allocations, want 0", n)
	}
	h.SendIQ(ctx, a, "set", "<block xmlns='urn:xmpp:blocking'><item jid='mallory@example.net'/><item jid='spam.example'/></block>")
	if n := testing.AllocsPerRun(100, func() { m.Blocked(ctx, owner, peer) }); n != 0 {
		t.Errorf("Blocked with a non-empty list: %v allocations, want 0", n)
	}
	// Parts longer than 32 bytes, which a string conversion would put on the heap.
	long := jid.MustParse("benvolio.montague.of.verona.and.more@a.rather.long.domain.example/Conversations.Xk3p-0123456789abcdef")
	if n := testing.AllocsPerRun(100, func() { m.Blocked(ctx, owner, long) }); n != 0 {
		t.Errorf("Blocked for a long JID: %v allocations, want 0", n)
	}
}
