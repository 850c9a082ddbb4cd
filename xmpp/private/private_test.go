package private_test

import (
	"strings"
	"testing"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/disco"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/pep"
	"parley.im/parley/xmpp/presence"
	"parley.im/parley/xmpp/private"
	"parley.im/parley/xmpp/pubsub"
	"parley.im/parley/xmpp/stanza"
)

func newHost(t *testing.T) (*moduletest.Host, storage.Store) {
	store := moduletest.Store(t)
	p := pep.New(pep.Config{}, store, store)
	return moduletest.New(t, presence.New(store, store), p, private.New(private.Config{MaxSize: 4096}, store, store, p)), store
}

func query(inner string) string { return "<query xmlns='" + private.NS + "'>" + inner + "</query>" }

func TestPrivateXMLRoundTrip(t *testing.T) {
	h, _ := newHost(t)
	ctx := t.Context()
	s := h.Online(ctx, "alice@example.net/pc", 0)
	empty := h.SendIQ(ctx, s, "get", query("<prefs xmlns='exodus:prefs'/>"))
	if empty.Type != "result" || !strings.Contains(string(empty.Raw), "<prefs xmlns='exodus:prefs'/>") {
		t.Fatalf("get before set: %s", empty.Raw)
	}
	prefs := "<prefs xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></prefs>"
	if r := h.SendIQ(ctx, s, "set", query(prefs)); r.Type != "result" {
		t.Fatalf("set: %s", r.Raw)
	}
	if r := h.SendIQ(ctx, s, "get", query("<prefs xmlns='exodus:prefs'/>")); !strings.Contains(string(r.Raw), prefs) {
		t.Fatalf("get: %s", r.Raw)
	}
	if r := h.SendIQ(ctx, s, "set", query("<x xmlns='jabber:x:data'/>")); moduletest.ErrorCondition(r) != "not-acceptable" {
		t.Errorf("reserved namespace: %s", r.Raw)
	}
	if r := h.SendIQ(ctx, s, "set", query("<big xmlns='urn:big'>"+strings.Repeat("a", 5000)+"</big>")); moduletest.ErrorCondition(r) != "not-acceptable" {
		t.Errorf("too large: %s", r.Raw)
	}
	bob := h.Online(ctx, "bob@example.net/pc", 0)
	if r := h.SendIQTo(ctx, bob, "alice@example.net", "get", query("<prefs xmlns='exodus:prefs'/>")); moduletest.ErrorCondition(r) != "forbidden" {
		t.Errorf("another account's storage: %s", r.Raw)
	}
}

// XEP-0411: bookmarks stored through XEP-0048 (private XML) are the XEP-0402 node's items, and the other way
// round; a XEP-0402 client is notified of what an old client changed.
func TestBookmarksConversion(t *testing.T) {
	h, store := newHost(t)
	ctx := t.Context()
	if !strings.Contains(strings.Join(h.Registry.Features(module.Account), " "), private.NSBookmarksCV) {
		t.Error("bookmarks#compat not advertised")
	}
	old := h.Online(ctx, "alice@example.net/old", 0)
	// A XEP-0402 client online with +notify for the bookmarks node.
	modern := h.Connect(ctx, "alice@example.net/modern")
	features := []string{disco.NSInfo, disco.NSCaps, private.NSBookmarks2 + "+notify"}
	ver := disco.CapsVer([]module.Identity{{Category: "client", Type: "pc"}}, features)
	if err := h.SendPresence(ctx, modern, "", "", "<c xmlns='"+disco.NSCaps+"' hash='sha-1' node='n' ver='"+ver+"'/>"); err != nil {
		t.Fatal(err)
	}
	info := "<query xmlns='" + disco.NSInfo + "'><identity category='client' type='pc'/>"
	for _, f := range features {
		info += "<feature var='" + f + "'/>"
	}
	for _, q := range moduletest.Only(modern.Take(), stanza.IQ, "get") {
		h.Router.Route(ctx, stanza.New(stanza.IQ, "result", q.ID, modern.JID(), q.From, []byte(info+"</query>")))
	}

	set := query("<storage xmlns='storage:bookmarks'><conference name='Council' autojoin='true' jid='council@conference.example.net'>" +
		"<nick>Puck</nick></conference><url name='web' url='https://example.net'/></storage>")
	if r := h.SendIQ(ctx, old, "set", set); r.Type != "result" {
		t.Fatalf("0048 set: %s", r.Raw)
	}
	items, err := store.Items(ctx, "alice@example.net", private.NSBookmarks2, storage.PubSubItemQuery{})
	if err != nil || len(items) != 1 || items[0].ID != "council@conference.example.net" ||
		string(items[0].Payload) != "<conference xmlns='urn:xmpp:bookmarks:1' name='Council' autojoin='true'><nick>Puck</nick></conference>" {
		t.Fatalf("0402 items %+v, %v", items, err)
	}
	n, _ := store.Node(ctx, "alice@example.net", private.NSBookmarks2)
	if n.AccessModel != "whitelist" || n.MaxItems != pubsub.MaxItemsMax {
		t.Errorf("bookmarks node %+v: want whitelist, max", n)
	}
	ev := moduletest.Only(modern.Take(), stanza.Message, "headline")
	if len(ev) != 1 || !strings.Contains(string(ev[0].Raw), "council@conference.example.net") {
		t.Fatalf("0402 client notified %v", ev)
	}

	// A XEP-0402 publish is read back through XEP-0048.
	pub := "<pubsub xmlns='" + pubsub.NS + "'><publish node='" + private.NSBookmarks2 + "'><item id='orchard@conference.example.net'>" +
		"<conference xmlns='urn:xmpp:bookmarks:1' name='The Orchard'><nick>JC</nick></conference></item></publish></pubsub>"
	if r := h.SendIQ(ctx, modern, "set", pub); r.Type != "result" {
		t.Fatalf("0402 publish: %s", r.Raw)
	}
	r := h.SendIQ(ctx, old, "get", query("<storage xmlns='storage:bookmarks'/>"))
	got := string(r.Raw)
	for _, want := range []string{"<conference jid='council@conference.example.net' name='Council' autojoin='true'><nick>Puck</nick></conference>",
		"<conference jid='orchard@conference.example.net' name='The Orchard'><nick>JC</nick></conference>"} {
		if !strings.Contains(got, want) {
			t.Errorf("0048 get lacks %s:\n%s", want, got)
		}
	}
	modern.Take()
	// The old client drops the council: it is retracted, the orchard stays untouched (not republished).
	if r := h.SendIQ(ctx, old, "set", query("<storage xmlns='storage:bookmarks'><conference name='The Orchard' jid='orchard@conference.example.net'><nick>JC</nick></conference></storage>")); r.Type != "result" {
		t.Fatalf("0048 set: %s", r.Raw)
	}
	ev = moduletest.Only(modern.Take(), stanza.Message, "headline")
	if len(ev) != 1 || !strings.Contains(string(ev[0].Raw), "<retract id='council@conference.example.net'/>") {
		t.Fatalf("notifications %v, want only the council's retraction", ev)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (private.Config{MaxSize: -1}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "private.max_size") {
		t.Errorf("Validate = %v", err)
	}
}
