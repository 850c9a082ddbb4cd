package mam_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/mam"
	"parley.im/parley/xmpp/mamcodec"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/stanza"
)

type env struct {
	h     *moduletest.Host
	mam   storage.Archive
	kv    storage.KV
	m     *mam.Module
	phone *moduletest.Session
}

func setup(t *testing.T, cfg mam.Config) env {
	t.Helper()
	st := moduletest.Store(t)
	e := env{mam: st.Archive("mam"), kv: st}
	e.m = mam.New(cfg, e.mam, st)
	e.h = moduletest.New(t, e.m)
	e.phone = e.h.Online(t.Context(), "alice@example.net/phone", 0)
	return e
}

func (e env) items(t *testing.T, owner string) []storage.ArchiveItem {
	t.Helper()
	items, _, err := e.mam.Query(t.Context(), owner, storage.ArchiveQuery{})
	if err != nil {
		t.Fatal(err)
	}
	return items
}

type stanzaID struct {
	By string `xml:"by,attr"`
	ID string `xml:"id,attr"`
}

type delivered struct {
	Body string     `xml:"body"`
	IDs  []stanzaID `xml:"urn:xmpp:sid:0 stanza-id"`
}

func TestInboundMessageIsStampedAndArchived(t *testing.T) {
	ctx := t.Context()
	e := setup(t, mam.Config{})
	e.h.Router.Route(ctx, moduletest.Message("bob@other.org/x", "alice@example.net/phone", "chat", "<body>hi</body>"))

	got := e.phone.Received()
	if len(got) != 1 {
		t.Fatalf("alice got %d stanzas, want the message", len(got))
	}
	var m delivered
	moduletest.Decode(t, got[0], &m)
	if len(m.IDs) != 1 || m.IDs[0].By != "alice@example.net" || m.IDs[0].ID == "" {
		t.Fatalf("delivered %s, want one stanza-id by alice's archive", got[0].Raw)
	}
	items := e.items(t, "alice@example.net")
	if len(items) != 1 || items[0].ID != m.IDs[0].ID || items[0].With != "bob@other.org" {
		t.Fatalf("archive holds %+v, want the message under its stanza-id, with bob", items)
	}
	st, err := stanza.Parse(items[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	var a delivered
	moduletest.Decode(t, st, &a)
	if a.Body != "hi" || len(a.IDs) != 1 {
		t.Errorf("archived %s, want the message as delivered", items[0].Data)
	}
}

func TestForgedStanzaIDIsReplaced(t *testing.T) {
	ctx := t.Context()
	e := setup(t, mam.Config{})
	e.h.Router.Route(ctx, moduletest.Message("bob@other.org/x", "alice@example.net/phone", "chat",
		"<body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='alice@example.net' id='forged'/><stanza-id xmlns='urn:xmpp:sid:0' by='other.org' id='theirs'/>"))
	var m delivered
	moduletest.Decode(t, e.phone.Received()[0], &m)
	var ours []string
	for _, id := range m.IDs {
		if id.By == "alice@example.net" {
			ours = append(ours, id.ID)
		}
	}
	if len(ours) != 1 || ours[0] == "forged" {
		t.Errorf("stanza-ids by alice's archive: %q, want one the archive made (XEP-0359 section 4)", ours)
	}
	if !slices.Contains(m.IDs, stanzaID{By: "other.org", ID: "theirs"}) {
		t.Errorf("another entity's stanza-id was removed: %+v", m.IDs)
	}
}

func TestSentMessageIsArchivedForTheSender(t *testing.T) {
	ctx := t.Context()
	e := setup(t, mam.Config{})
	e.h.SendMessage(ctx, e.phone, moduletest.Message("alice@example.net/phone", "bob@other.org", "chat", "<body>out</body>"))
	items := e.items(t, "alice@example.net")
	if len(items) != 1 || items[0].With != "bob@other.org" {
		t.Fatalf("sender's archive: %+v, want the sent message with bob", items)
	}
	if left := e.h.Router.Left(); len(left) != 1 || moduletest.Child(left[0], mam.NSSid, "stanza-id") != nil {
		t.Errorf("what left: %v, want the message without a stanza-id of the sender's archive", left)
	}
}

func TestMessagesThatAreNotArchived(t *testing.T) {
	ctx := t.Context()
	e := setup(t, mam.Config{})
	for _, c := range []struct{ name, typ, inner string }{
		{"chat state only", "chat", "<composing xmlns='http://jabber.org/protocol/chatstates'/>"},
		{"no-store hint", "chat", "<body>x</body><no-store xmlns='urn:xmpp:hints'/>"},
		{"no-permanent-store hint", "chat", "<body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/>"},
		{"headline", "headline", "<body>x</body>"},
	} {
		m := moduletest.Message("bob@other.org/x", "alice@example.net/phone", c.typ, c.inner)
		res := e.h.Inbound(ctx, m, e.phone)
		if res.Stanza != m {
			t.Errorf("%s: the message was changed: %s", c.name, res.Stanza.Raw)
		}
		e.h.Outbound(ctx, e.phone, moduletest.Message("alice@example.net/phone", "bob@other.org", c.typ, c.inner))
	}
	if items := e.items(t, "alice@example.net"); len(items) != 0 {
		t.Errorf("archived %d messages, want none", len(items))
	}
}

func TestUndeliverableMessageIsArchived(t *testing.T) {
	ctx := t.Context()
	e := setup(t, mam.Config{})
	res := e.h.Undeliverable(ctx, moduletest.Message("bob@other.org/x", "carol@example.net", "chat", "<body>later</body>"))
	if res.Verdict != module.Continue {
		t.Errorf("undeliverable: %+v, want the archive to let offline storage have it", res)
	}
	if items := e.items(t, "carol@example.net"); len(items) != 1 {
		t.Errorf("carol's archive has %d items, want 1", len(items))
	}
}

type result struct {
	QueryID   string `xml:"queryid,attr"`
	ID        string `xml:"id,attr"`
	Forwarded struct {
		Delay struct {
			Stamp string `xml:"stamp,attr"`
		} `xml:"urn:xmpp:delay delay"`
		Message struct {
			Body string `xml:"body"`
		} `xml:"jabber:client message"`
	} `xml:"urn:xmpp:forward:0 forwarded"`
}

type fin struct {
	Fin *struct {
		Complete bool `xml:"complete,attr"`
		Set      struct {
			First string `xml:"first"`
			Last  string `xml:"last"`
			Count int    `xml:"count"`
		} `xml:"http://jabber.org/protocol/rsm set"`
	} `xml:"urn:xmpp:mam:2 fin"`
}

// query runs a MAM query and returns the bodies of the results, their ids and the fin.
func (e env) query(t *testing.T, inner string) (bodies, ids []string, f fin) {
	t.Helper()
	reply := e.h.SendIQ(t.Context(), e.phone, "set", "<query xmlns='urn:xmpp:mam:2' queryid='q1'>"+inner+"</query>")
	if reply.Type != "result" {
		t.Fatalf("query %s: %s", inner, reply.Raw)
	}
	moduletest.Decode(t, reply, &f)
	if f.Fin == nil {
		t.Fatalf("query %s: no fin in %s", inner, reply.Raw)
	}
	for _, s := range e.phone.Take() {
		var m struct {
			From   string `xml:"from,attr"`
			Result result `xml:"urn:xmpp:mam:2 result"`
		}
		moduletest.Decode(t, s, &m)
		if m.From != "alice@example.net" || m.Result.QueryID != "q1" || m.Result.Forwarded.Delay.Stamp == "" {
			t.Errorf("result message %s, want from the archive, with queryid and delay", s.Raw)
		}
		bodies = append(bodies, m.Result.Forwarded.Message.Body)
		ids = append(ids, m.Result.ID)
	}
	return bodies, ids, f
}

func TestQueryPagesWithRSM(t *testing.T) {
	ctx := t.Context()
	e := setup(t, mam.Config{})
	for i := range 5 {
		e.h.Inbound(ctx, moduletest.Message("bob@other.org/x", "alice@example.net/phone", "chat", "<body>"+strconv.Itoa(i)+"</body>"), e.phone)
	}
	e.h.Inbound(ctx, moduletest.Message("carol@other.org/x", "alice@example.net/phone", "chat", "<body>carol</body>"), e.phone)
	rsm := func(s string) string { return "<set xmlns='http://jabber.org/protocol/rsm'>" + s + "</set>" }

	var all []string
	after := ""
	for page := 0; ; page++ {
		set := "<max>2</max>"
		if after != "" {
			set += "<after>" + after + "</after>"
		}
		bodies, ids, f := e.query(t, rsm(set))
		all = append(all, bodies...)
		if f.Fin.Set.Count != 6 {
			t.Errorf("page %d: count %d, want 6", page, f.Fin.Set.Count)
		}
		if len(ids) > 0 && (f.Fin.Set.First != ids[0] || f.Fin.Set.Last != ids[len(ids)-1]) {
			t.Errorf("page %d: first/last %s/%s, results %v", page, f.Fin.Set.First, f.Fin.Set.Last, ids)
		}
		if f.Fin.Complete {
			break
		}
		if page > 5 {
			t.Fatal("paging does not end")
		}
		after = f.Fin.Set.Last
	}
	if want := []string{"0", "1", "2", "3", "4", "carol"}; !slices.Equal(all, want) {
		t.Errorf("paged through %q, want %q", all, want)
	}

	// <before/> pages from the end.
	bodies, _, f := e.query(t, rsm("<max>2</max><before/>"))
	if !slices.Equal(bodies, []string{"4", "carol"}) || f.Fin.Complete {
		t.Errorf("last page: %q complete=%v, want [4 carol], incomplete", bodies, f.Fin.Complete)
	}

	// The with filter.
	form := "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>" +
		"<field var='with'><value>carol@other.org</value></field></x>"
	if bodies, _, f := e.query(t, form); !slices.Equal(bodies, []string{"carol"}) || !f.Fin.Complete {
		t.Errorf("with carol: %q, want [carol]", bodies)
	}

	// An id the archive does not hold.
	reply := e.h.SendIQ(ctx, e.phone, "set", "<query xmlns='urn:xmpp:mam:2'>"+rsm("<after>nope</after>")+"</query>")
	if got := moduletest.ErrorCondition(reply); got != "item-not-found" {
		t.Errorf("after an unknown id: %q, want item-not-found", got)
	}
	if n := len(e.phone.Take()); n != 0 {
		t.Errorf("a failed query sent %d results", n)
	}
}

func TestQueryIsForTheOwnArchiveOnly(t *testing.T) {
	ctx := t.Context()
	e := setup(t, mam.Config{})
	e.h.Inbound(ctx, moduletest.Message("alice@example.net/phone", "bob@example.net/pc", "chat", "<body>secret</body>"))
	reply := e.h.SendIQTo(ctx, e.phone, "bob@example.net", "set", "<query xmlns='urn:xmpp:mam:2'/>")
	if got := moduletest.ErrorCondition(reply); got != "forbidden" {
		t.Errorf("querying bob's archive: %q, want forbidden", got)
	}
	if n := len(e.phone.Received()); n != 0 {
		t.Errorf("got %d results from another account's archive", n)
	}
}

func TestPrefs(t *testing.T) {
	ctx := t.Context()
	e := setup(t, mam.Config{})
	type prefs struct {
		Prefs *struct {
			Default string   `xml:"default,attr"`
			Always  []string `xml:"always>jid"`
			Never   []string `xml:"never>jid"`
		} `xml:"urn:xmpp:mam:2 prefs"`
	}
	var p prefs
	moduletest.Decode(t, e.h.SendIQ(ctx, e.phone, "get", "<prefs xmlns='urn:xmpp:mam:2'/>"), &p)
	if p.Prefs == nil || p.Prefs.Default != "always" {
		t.Fatalf("default prefs: %+v, want always", p.Prefs)
	}

	// Archived before the change (and the preferences read and cached); the change applies at once.
	e.h.Inbound(ctx, moduletest.Message("carol@other.org/x", "alice@example.net/phone", "chat", "<body>before</body>"), e.phone)
	reply := e.h.SendIQ(ctx, e.phone, "set", "<prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>bob@other.org</jid></always><never/></prefs>")
	if reply.Type != "result" {
		t.Fatalf("set prefs: %s", reply.Raw)
	}
	p = prefs{}
	moduletest.Decode(t, e.h.SendIQ(ctx, e.phone, "get", "<prefs xmlns='urn:xmpp:mam:2'/>"), &p)
	if p.Prefs == nil || p.Prefs.Default != "never" || !slices.Equal(p.Prefs.Always, []string{"bob@other.org"}) {
		t.Fatalf("stored prefs: %+v", p.Prefs)
	}

	e.h.Inbound(ctx, moduletest.Message("bob@other.org/x", "alice@example.net/phone", "chat", "<body>kept</body>"), e.phone)
	res := e.h.Inbound(ctx, moduletest.Message("carol@other.org/x", "alice@example.net/phone", "chat", "<body>not kept</body>"), e.phone)
	e.h.Outbound(ctx, e.phone, moduletest.Message("alice@example.net/phone", "carol@other.org", "chat", "<body>not kept</body>"))
	items := e.items(t, "alice@example.net")
	if len(items) != 2 || items[0].With != "carol@other.org" || items[1].With != "bob@other.org" {
		t.Errorf("archived %+v, want carol's message from before the change and bob's", items)
	}
	if moduletest.Child(res.Stanza, mam.NSSid, "stanza-id") != nil {
		t.Error("a message the prefs keep out of the archive got a stanza-id")
	}

	if got := moduletest.ErrorCondition(e.h.SendIQ(ctx, e.phone, "set", "<prefs xmlns='urn:xmpp:mam:2' default='sometimes'/>")); got != "bad-request" {
		t.Errorf("invalid default: %q, want bad-request", got)
	}
}

func TestRetriedMessageIsArchivedOnce(t *testing.T) {
	ctx := t.Context()
	e := setup(t, mam.Config{})
	m := moduletest.Message("alice@example.net/phone", "bob@other.org", "chat", "<body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='o-1'/>")
	if res := e.h.Outbound(ctx, e.phone, m); res.Verdict != module.Continue {
		t.Fatalf("first attempt: %+v", res)
	}
	if res := e.h.Outbound(ctx, e.phone, m); res.Verdict != module.Handled {
		t.Errorf("retry: %+v, want it handled (dropped as a duplicate)", res)
	}
	if n := len(e.items(t, "alice@example.net")); n != 1 {
		t.Errorf("archived %d copies, want 1", n)
	}
	if e.m.Duplicates.Load() != 1 {
		t.Errorf("duplicates counter %d, want 1", e.m.Duplicates.Load())
	}
}

func TestRetryOfDeliveredLocalMessageIsDropped(t *testing.T) {
	ctx := t.Context()
	e := setup(t, mam.Config{})
	// The recipient's copy is there, from a first attempt that was delivered but whose acknowledgement was
	// lost; the sender's in-memory window does not know it (another node, or a restart). Bob is online, so
	// the first attempt reached him.
	e.h.Online(ctx, "bob@example.net/pc", 0)
	if err := e.mam.Append(ctx, "bob@example.net", storage.ArchiveItem{ID: "b1", With: "alice@example.net",
		Time: time.Now().UTC().Truncate(time.Microsecond), OriginID: "o-2", Data: []byte("<message/>")}); err != nil {
		t.Fatal(err)
	}
	m := moduletest.Message("alice@example.net/phone", "bob@example.net", "chat", "<body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='o-2'/>")
	if res := e.h.Outbound(ctx, e.phone, m); res.Verdict != module.Handled {
		t.Errorf("retry of a delivered message: %+v, want it handled", res)
	}
	if n := len(e.items(t, "alice@example.net")); n != 0 {
		t.Errorf("sender archived %d copies of a duplicate", n)
	}
}

func TestMetadata(t *testing.T) {
	ctx := t.Context()
	e := setup(t, mam.Config{})
	for _, b := range []string{"first", "middle", "last"} {
		e.h.Inbound(ctx, moduletest.Message("bob@other.org/x", "alice@example.net/phone", "chat", "<body>"+b+"</body>"), e.phone)
	}
	items := e.items(t, "alice@example.net")
	var md struct {
		M *struct {
			Start struct {
				ID string `xml:"id,attr"`
			} `xml:"start"`
			End struct {
				ID string `xml:"id,attr"`
			} `xml:"end"`
		} `xml:"urn:xmpp:mam:2 metadata"`
	}
	moduletest.Decode(t, e.h.SendIQ(ctx, e.phone, "get", "<metadata xmlns='urn:xmpp:mam:2'/>"), &md)
	if md.M == nil || md.M.Start.ID != items[0].ID || md.M.End.ID != items[2].ID {
		t.Errorf("metadata %+v, want start %s end %s", md.M, items[0].ID, items[2].ID)
	}
}

func TestDisabledArchiveRegistersNothing(t *testing.T) {
	ctx := t.Context()
	off := time.Duration(0)
	e := setup(t, mam.Config{Retention: &off})
	if fs := e.h.Registry.Features(module.Account); len(fs) != 0 {
		t.Errorf("features %v with archiving off", fs)
	}
	e.h.Router.Route(ctx, moduletest.Message("bob@other.org/x", "alice@example.net/phone", "chat", "<body>hi</body>"))
	if n := len(e.items(t, "alice@example.net")); n != 0 {
		t.Errorf("archived %d messages with archiving off", n)
	}
	if got := moduletest.ErrorCondition(e.h.SendIQ(ctx, e.phone, "set", "<query xmlns='urn:xmpp:mam:2'/>")); got != "service-unavailable" {
		t.Errorf("query with archiving off: %q, want service-unavailable", got)
	}
}

func TestFeatures(t *testing.T) {
	e := setup(t, mam.Config{})
	fs := e.h.Registry.Features(module.Account)
	for _, f := range []string{mamcodec.NS, mamcodec.NSExtended, mam.NSSid} {
		if !slices.Contains(fs, f) {
			t.Errorf("account features %v lack %s", fs, f)
		}
	}
}
