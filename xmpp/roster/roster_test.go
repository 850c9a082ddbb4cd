package roster_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/roster"
	"parley.im/parley/xmpp/stanza"
)

type item struct {
	JID          string   `xml:"jid,attr"`
	Name         string   `xml:"name,attr"`
	Subscription string   `xml:"subscription,attr"`
	Ask          string   `xml:"ask,attr"`
	Groups       []string `xml:"group"`
}

type iqQuery struct {
	Type  string `xml:"type,attr"`
	To    string `xml:"to,attr"`
	Query *struct {
		Ver   *string `xml:"ver,attr"`
		Items []item  `xml:"item"`
	} `xml:"jabber:iq:roster query"`
}

func decode(t *testing.T, s *stanza.Stanza) iqQuery {
	t.Helper()
	var q iqQuery
	moduletest.Decode(t, s, &q)
	return q
}

func setup(t *testing.T, cfg roster.Config) (*moduletest.Host, storage.Store) {
	t.Helper()
	st := moduletest.Store(t)
	return moduletest.New(t, roster.New(cfg, st, st)), st
}

const alice = "alice@example.net"

func put(t *testing.T, st storage.Roster, it storage.RosterItem) int64 {
	t.Helper()
	ver, err := st.PutRosterItem(context.Background(), alice, it)
	if err != nil {
		t.Fatal(err)
	}
	return ver
}

func TestGetReturnsItemsAndVersionAndMarksInterest(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t, roster.Config{})
	put(t, st, storage.RosterItem{JID: "bob@example.net", Name: "Bob", Subscription: storage.SubBoth, Groups: []string{"Friends"}})
	ver := put(t, st, storage.RosterItem{JID: "carol@other.org", Subscription: storage.SubNone, AskOut: true})
	phone := h.Online(ctx, alice+"/phone", 0)

	reply := h.SendIQ(ctx, phone, "get", "<query xmlns='jabber:iq:roster'/>")
	if reply.Type != "result" {
		t.Fatalf("roster get: %s", reply.Raw)
	}
	q := decode(t, reply)
	if q.Query == nil || q.Query.Ver == nil || *q.Query.Ver != strconv.FormatInt(ver, 10) {
		t.Fatalf("roster get answered %s, want a query with ver %d", reply.Raw, ver)
	}
	got := map[string]item{}
	for _, it := range q.Query.Items {
		got[it.JID] = it
	}
	if b := got["bob@example.net"]; b.Name != "Bob" || b.Subscription != "both" || !slices.Equal(b.Groups, []string{"Friends"}) {
		t.Errorf("bob = %+v", b)
	}
	if c := got["carol@other.org"]; c.Subscription != "none" || c.Ask != "subscribe" {
		t.Errorf("carol = %+v", c)
	}
	if len(got) != 2 {
		t.Errorf("got %d items, want 2: %s", len(got), reply.Raw)
	}
	if !phone.Interested() {
		t.Error("a session that requested the roster is not marked interested (RFC 6121 2.1.6)")
	}
}

func TestGetWithCurrentVersionAnswersEmpty(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t, roster.Config{})
	ver := put(t, st, storage.RosterItem{JID: "bob@example.net", Subscription: storage.SubBoth})
	phone := h.Online(ctx, alice+"/phone", 0)

	cur := h.SendIQ(ctx, phone, "get", "<query xmlns='jabber:iq:roster' ver='"+strconv.FormatInt(ver, 10)+"'/>")
	if cur.Type != "result" || len(cur.Payload()) != 0 {
		t.Errorf("get with the current version: %s, want an empty result (XEP-0237)", cur.Raw)
	}
	stale := h.SendIQ(ctx, phone, "get", "<query xmlns='jabber:iq:roster' ver='"+strconv.FormatInt(ver-1, 10)+"'/>")
	if q := decode(t, stale); q.Query == nil || len(q.Query.Items) != 1 {
		t.Errorf("get with a stale version: %s, want the whole roster", stale.Raw)
	}
	if len(h.Registry.StreamFeatures()) != 1 || h.Registry.StreamFeatures()[0] != "<ver xmlns='urn:xmpp:features:rosterver'/>" {
		t.Errorf("stream features = %q, want roster versioning", h.Registry.StreamFeatures())
	}
}

func TestSetStoresItemAndPushesToInterestedResources(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t, roster.Config{})
	phone := h.Online(ctx, alice+"/phone", 0)
	laptop := h.Online(ctx, alice+"/laptop", 0)
	tablet := h.Online(ctx, alice+"/tablet", 0)
	h.SendIQ(ctx, phone, "get", "<query xmlns='jabber:iq:roster'/>")
	h.SendIQ(ctx, laptop, "get", "<query xmlns='jabber:iq:roster'/>")

	// The client's subscription attribute is ignored (RFC 6121 2.1.2.5).
	reply := h.SendIQ(ctx, phone, "set", "<query xmlns='jabber:iq:roster'><item jid='Bob@Example.net/res' name='Bobby' subscription='both'><group>Work</group><group>Friends</group></item></query>")
	if reply.Type != "result" {
		t.Fatalf("roster set: %s", reply.Raw)
	}
	stored, err := st.RosterItem(ctx, alice, "bob@example.net")
	if err != nil {
		t.Fatalf("item not stored under the contact's bare JID: %v", err)
	}
	if stored.Name != "Bobby" || stored.Subscription != storage.SubNone || !slices.Equal(stored.Groups, []string{"Work", "Friends"}) {
		t.Errorf("stored %+v", stored)
	}
	_, ver, _ := st.Roster(ctx, alice)
	for _, s := range []*moduletest.Session{phone, laptop} {
		pushes := s.Take()
		if len(pushes) != 1 {
			t.Fatalf("%s got %d stanzas, want one roster push", s.JID(), len(pushes))
		}
		q := decode(t, pushes[0])
		if q.Type != "set" || q.To != s.JID().String() || q.Query == nil || len(q.Query.Items) != 1 {
			t.Fatalf("%s got %s, want a roster push", s.JID(), pushes[0].Raw)
		}
		if *q.Query.Ver != strconv.FormatInt(ver, 10) || q.Query.Items[0].JID != "bob@example.net" || q.Query.Items[0].Name != "Bobby" {
			t.Errorf("%s: push %s, want bob at version %d", s.JID(), pushes[0].Raw, ver)
		}
	}
	if got := tablet.Received(); len(got) != 0 {
		t.Errorf("a resource that never requested the roster got %d pushes", len(got))
	}
}

func TestSetRejectsInvalidItems(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t, roster.Config{})
	phone := h.Online(ctx, alice+"/phone", 0)
	for _, c := range []struct {
		name, payload, cond string
	}{
		{"two items", "<query xmlns='jabber:iq:roster'><item jid='a@example.net'/><item jid='b@example.net'/></query>", "bad-request"},
		{"duplicate group", "<query xmlns='jabber:iq:roster'><item jid='a@example.net'><group>x</group><group>x</group></item></query>", "bad-request"},
		{"empty group", "<query xmlns='jabber:iq:roster'><item jid='a@example.net'><group></group></item></query>", "bad-request"},
		{"bad jid", "<query xmlns='jabber:iq:roster'><item jid='@@'/></query>", "jid-malformed"},
	} {
		if got := moduletest.ErrorCondition(h.SendIQ(ctx, phone, "set", c.payload)); got != c.cond {
			t.Errorf("%s: condition %q, want %q", c.name, got, c.cond)
		}
	}
	// Another account's roster is not the sender's to change.
	reply := h.SendIQTo(ctx, phone, "bob@example.net", "set", "<query xmlns='jabber:iq:roster'><item jid='a@example.net'/></query>")
	if got := moduletest.ErrorCondition(reply); got != "forbidden" {
		t.Errorf("set on another account: %q, want forbidden", got)
	}
	if items, _, _ := st.Roster(ctx, alice); len(items) != 0 {
		t.Errorf("rejected sets stored %v", items)
	}
	if items, _, _ := st.Roster(ctx, "bob@example.net"); len(items) != 0 {
		t.Errorf("a forbidden set stored %v in bob's roster", items)
	}
}

func TestSetPastMaxItemsIsRefused(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t, roster.Config{MaxItems: 1})
	phone := h.Online(ctx, alice+"/phone", 0)
	if r := h.SendIQ(ctx, phone, "set", "<query xmlns='jabber:iq:roster'><item jid='a@example.net'/></query>"); r.Type != "result" {
		t.Fatalf("first item: %s", r.Raw)
	}
	// Changing an existing item is not adding one.
	if r := h.SendIQ(ctx, phone, "set", "<query xmlns='jabber:iq:roster'><item jid='a@example.net' name='A'/></query>"); r.Type != "result" {
		t.Fatalf("renaming the only item: %s", r.Raw)
	}
	r := h.SendIQ(ctx, phone, "set", "<query xmlns='jabber:iq:roster'><item jid='b@example.net'/></query>")
	if got := moduletest.ErrorCondition(r); got != "not-allowed" {
		t.Errorf("item past max_items: %q, want not-allowed", got)
	}
	if _, err := st.RosterItem(ctx, alice, "b@example.net"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("item past the cap stored (err %v)", err)
	}
}

func TestRemoveCancelsSubscriptionsAndPushesRemoval(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t, roster.Config{})
	put(t, st, storage.RosterItem{JID: "carol@other.org", Subscription: storage.SubBoth})
	put(t, st, storage.RosterItem{JID: "dave@other.org", Subscription: storage.SubNone})
	phone := h.Online(ctx, alice+"/phone", 0)
	phone.SetInterested()

	reply := h.SendIQ(ctx, phone, "set", "<query xmlns='jabber:iq:roster'><item jid='carol@other.org' subscription='remove'/></query>")
	if reply.Type != "result" {
		t.Fatalf("remove: %s", reply.Raw)
	}
	if _, err := st.RosterItem(ctx, alice, "carol@other.org"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("removed item still stored (err %v)", err)
	}
	// RFC 6121 2.5.2: both directions end, the contact is told, from the user's bare JID.
	var types []string
	for _, p := range h.Router.Left() {
		if p.Kind != stanza.Presence || p.To.String() != "carol@other.org" || p.From.String() != alice {
			t.Errorf("unexpected stanza left: %s", p.Raw)
			continue
		}
		types = append(types, p.Type)
	}
	slices.Sort(types)
	if !slices.Equal(types, []string{"unsubscribe", "unsubscribed"}) {
		t.Errorf("presence to the removed contact: %v, want unsubscribe and unsubscribed", types)
	}
	pushes := phone.Take()
	if len(pushes) != 1 {
		t.Fatalf("got %d stanzas, want one roster push", len(pushes))
	}
	if q := decode(t, pushes[0]); q.Query == nil || len(q.Query.Items) != 1 || q.Query.Items[0].Subscription != "remove" || q.Query.Items[0].JID != "carol@other.org" {
		t.Errorf("push %s, want carol with subscription='remove'", pushes[0].Raw)
	}

	// Without a subscription there is nobody to tell.
	h.Router.Reset()
	if r := h.SendIQ(ctx, phone, "set", "<query xmlns='jabber:iq:roster'><item jid='dave@other.org' subscription='remove'/></query>"); r.Type != "result" {
		t.Fatalf("remove dave: %s", r.Raw)
	}
	if left := h.Router.Left(); len(left) != 0 {
		t.Errorf("removing a contact without subscription sent %d stanzas", len(left))
	}
}

func TestRemoveUnknownContactIsItemNotFound(t *testing.T) {
	ctx := t.Context()
	h, _ := setup(t, roster.Config{})
	phone := h.Online(ctx, alice+"/phone", 0)
	r := h.SendIQ(ctx, phone, "set", "<query xmlns='jabber:iq:roster'><item jid='nobody@example.net' subscription='remove'/></query>")
	if got := moduletest.ErrorCondition(r); got != "item-not-found" {
		t.Errorf("removing an absent contact: %q, want item-not-found", got)
	}
}

func TestVersionGrowsWithEveryChange(t *testing.T) {
	ctx := t.Context()
	h, _ := setup(t, roster.Config{})
	phone := h.Online(ctx, alice+"/phone", 0)
	phone.SetInterested()
	var vers []int
	for _, p := range []string{
		"<item jid='a@example.net'/>", "<item jid='a@example.net' name='A'/>", "<item jid='a@example.net' subscription='remove'/>",
	} {
		if r := h.SendIQ(ctx, phone, "set", "<query xmlns='jabber:iq:roster'>"+p+"</query>"); r.Type != "result" {
			t.Fatalf("%s: %s", p, r.Raw)
		}
		for _, push := range phone.Take() {
			n, err := strconv.Atoi(*decode(t, push).Query.Ver)
			if err != nil {
				t.Fatal(err)
			}
			vers = append(vers, n)
		}
	}
	if len(vers) != 3 || !(vers[0] < vers[1] && vers[1] < vers[2]) {
		t.Errorf("push versions %v, want three increasing versions", vers)
	}
	r := h.SendIQ(ctx, phone, "get", "<query xmlns='jabber:iq:roster' ver='"+strconv.Itoa(vers[0])+"'/>")
	if q := decode(t, r); q.Query == nil || *q.Query.Ver != strconv.Itoa(vers[2]) || len(q.Query.Items) != 0 {
		t.Errorf("get after the removal: %s, want the latest version and no items", r.Raw)
	}
}
