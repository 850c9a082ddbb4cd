package push

import (
	"context"
	"encoding/xml"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage/sqlite"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

const (
	bob      = "bob@example.net"
	bobPhone = "bob@example.net/phone"
	alice    = "alice@example.net/laptop"
	appJID   = "push.example.org"
	enableA  = `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='node-a'><x xmlns='jabber:x:data' type='submit'>` +
		`<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
		`<field var='secret'><value>s3cr&amp;t</value></field></x></enable>`
)

// notif is a routed notification as an app server would read it.
type notif struct {
	raw     string
	Type    string `xml:"type,attr"`
	ID      string `xml:"id,attr"`
	From    string `xml:"from,attr"`
	To      string `xml:"to,attr"`
	Publish struct {
		Node   string     `xml:"node,attr"`
		Fields []fieldXML `xml:"item>notification>x>field"`
	} `xml:"pubsub>publish"`
	Options []fieldXML `xml:"pubsub>publish-options>x>field"`
}

// fieldXML is a data form field as an app server decodes it (independently of the form package).
type fieldXML struct {
	Var    string   `xml:"var,attr"`
	Type   string   `xml:"type,attr"`
	Values []string `xml:"value"`
}

func (n notif) field(name string) (string, bool) {
	for _, f := range n.Publish.Fields {
		if f.Var == name {
			return strings.Join(f.Values, "\n"), true
		}
	}
	return "", false
}

func (n notif) option(name string) string {
	for _, f := range n.Options {
		if f.Var == name {
			return strings.Join(f.Values, "\n")
		}
	}
	return ""
}

// notifications decodes what was routed since the last call; each must be a well-formed publish.
func (h *harness) notifications() []notif {
	h.t.Helper()
	var out []notif
	for _, s := range h.router.take() {
		n := notif{raw: string(s.Raw)}
		if err := xml.Unmarshal(s.Raw, &n); err != nil {
			h.t.Fatalf("routed stanza is not well-formed: %v\n%s", err, s.Raw)
		}
		for _, want := range []string{"<pubsub xmlns='http://jabber.org/protocol/pubsub'>", "<notification xmlns='urn:xmpp:push:0'>",
			"<x xmlns='jabber:x:data' type='submit'>"} {
			if !strings.Contains(n.raw, want) {
				h.t.Fatalf("notification lacks %s:\n%s", want, n.raw)
			}
		}
		if v, _ := n.field("FORM_TYPE"); v != "urn:xmpp:push:summary" {
			h.t.Fatalf("summary FORM_TYPE = %q:\n%s", v, n.raw)
		}
		out = append(out, n)
	}
	return out
}

func (h *harness) expectOne() notif {
	h.t.Helper()
	ns := h.notifications()
	if len(ns) != 1 {
		h.t.Fatalf("got %d notifications, want 1: %v", len(ns), ns)
	}
	return ns[0]
}

func (h *harness) expectNone() {
	h.t.Helper()
	if ns := h.notifications(); len(ns) != 0 {
		h.t.Fatalf("got %d notifications, want none: %s", len(ns), ns[0].raw)
	}
}

func chat(body string) *stanza.Stanza {
	return msg(alice, bob, "chat", "<body>"+body+"</body>")
}

func TestEnableThenOfflineMessagePublishes(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.mustIQ(bobPhone, enableA)
	h.stage(module.Undeliverable, bob, chat("wherefore art thou"))
	n := h.expectOne()
	if n.Type != "set" || n.From != bob || n.To != appJID || n.Publish.Node != "node-a" || !strings.HasPrefix(n.ID, "push-") {
		t.Errorf("envelope: type %q from %q to %q node %q id %q", n.Type, n.From, n.To, n.Publish.Node, n.ID)
	}
	if c, _ := n.field("message-count"); c != "1" {
		t.Errorf("message-count = %q, want 1", c)
	}
	if s, _ := n.field("last-message-sender"); s != "alice@example.net" {
		t.Errorf("last-message-sender = %q, want the bare JID", s)
	}
	if _, ok := n.field("last-message-body"); ok || strings.Contains(n.raw, "wherefore") {
		t.Errorf("the body is sent by default:\n%s", n.raw)
	}
	if got := n.option("secret"); got != "s3cr&t" {
		t.Errorf("publish option secret = %q, want s3cr&t", got)
	}
	if got := n.option("FORM_TYPE"); got != formPublishOptions {
		t.Errorf("publish-options FORM_TYPE = %q", got)
	}
	if h.m.Published.Load() != 1 || h.m.Enabled.Load() != 1 {
		t.Errorf("counters: published %d enabled %d", h.m.Published.Load(), h.m.Enabled.Load())
	}
}

func TestNoRegistrationNoNotification(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.stage(module.Undeliverable, bob, chat("hi"))
	h.expectNone()
}

func TestDiscoFeatureOnAccount(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	found := false
	for _, f := range h.reg.Features(module.Account) {
		found = found || f == NS
	}
	if !found {
		t.Fatalf("account features %v lack %s", h.reg.Features(module.Account), NS)
	}
}

func TestIncludeBodyAndSender(t *testing.T) {
	no := false
	h := newHarness(t, Config{IncludeBody: true, IncludeSender: &no}, nil)
	h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n'/>`)
	h.stage(module.Undeliverable, bob, chat("a &lt;b&gt; &amp; 'c'"))
	n := h.expectOne()
	if b, _ := n.field("last-message-body"); b != "a <b> & 'c'" {
		t.Errorf("last-message-body = %q", b)
	}
	if _, ok := n.field("last-message-sender"); ok {
		t.Errorf("sender sent with include_sender false:\n%s", n.raw)
	}
	if strings.Contains(n.raw, "publish-options") {
		t.Errorf("publish-options without a form in the enable request:\n%s", n.raw)
	}
	long := strings.Repeat("é", 1000)
	h.clock.Advance(time.Minute)
	h.stage(module.Undeliverable, bob, chat(long))
	b, _ := h.expectOne().field("last-message-body")
	if len(b) > maxBody || !strings.HasPrefix(long, b) || len(b) < maxBody-1 {
		t.Errorf("long body cut to %d bytes, not at a rune boundary below %d", len(b), maxBody)
	}
}

func TestWhichMessagesWakeADevice(t *testing.T) {
	omemo := `<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><key rid='2'>a2V5</key><iv>aXY=</iv></header>`
	for _, tc := range []struct {
		name        string
		typ, inner  string
		undelivered bool // Undeliverable stage; else a hibernating target in Inbound
		want        bool
	}{
		{"chat body", "chat", "<body>hi</body>", true, true},
		{"normal body", "", "<body>hi</body>", true, true},
		{"body in jabber:client", "normal", "<body xmlns='jabber:client'>hi</body>", true, true},
		{"empty body", "chat", "<body> </body>", true, false},
		{"body of another namespace", "chat", "<body xmlns='urn:example'>hi</body>", true, false},
		{"chat state", "chat", "<composing xmlns='http://jabber.org/protocol/chatstates'/>", true, false},
		{"receipt", "chat", "<received xmlns='urn:xmpp:receipts' id='x'/>", true, false},
		{"marker", "chat", "<displayed xmlns='urn:xmpp:chat-markers:0' id='x'/>", true, false},
		{"omemo message", "chat", omemo + "<payload>Y2lwaGVy</payload></encrypted>", true, true},
		{"omemo key transport", "chat", omemo + "</encrypted>", true, false},
		{"openpgp", "chat", "<openpgp xmlns='urn:xmpp:openpgp:0'>Y2lwaGVy</openpgp>", true, true},
		{"legacy pgp", "chat", "<x xmlns='jabber:x:encrypted'>Y2lwaGVy</x>", true, true},
		{"groupchat", "groupchat", "<body>hi</body>", false, false},
		{"headline", "headline", "<body>hi</body>", true, false},
		{"error", "error", "<body>hi</body>", true, false},
		{"carbon of a received message", "chat", "<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>" +
			"<message xmlns='jabber:client' type='chat'><body>hi</body></message></forwarded></received>", false, false},
		{"no-store offline", "chat", "<body>otr</body><no-store xmlns='urn:xmpp:hints'/>", true, false},
		{"no-store to a hibernating session", "chat", "<body>otr</body><no-store xmlns='urn:xmpp:hints'/>", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{}, nil)
			h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n'/>`)
			s := msg(alice, bob, tc.typ, tc.inner)
			if tc.undelivered {
				h.stage(module.Undeliverable, bob, s)
			} else {
				h.stage(module.Inbound, bob, s, &fakeSession{jid: jid.MustParse(bobPhone), hibernating: true, available: true})
			}
			if got := len(h.notifications()); got != map[bool]int{true: 1, false: 0}[tc.want] {
				t.Fatalf("%d notifications, want push=%v", got, tc.want)
			}
		})
	}
}

func TestHibernatingTargetTriggersNotification(t *testing.T) {
	h := newHarness(t, Config{MinInterval: -1}, nil)
	h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n'/>`)
	phone := &fakeSession{jid: jid.MustParse(bobPhone), available: true}
	desk := &fakeSession{jid: jid.MustParse(bob + "/desk"), available: true}
	h.router.bind(phone)
	h.router.bind(desk)

	h.stage(module.Inbound, bob, chat("both connected"), phone, desk)
	h.expectNone()

	phone.hibernating = true
	h.stage(module.Inbound, bob, chat("phone asleep"), phone, desk)
	if c, _ := h.expectOne().field("message-count"); c != "1" {
		t.Errorf("message-count = %s, want 1", c)
	}
	h.stage(module.Inbound, bob, msg(alice, bobPhone, "chat", "<body>to the phone only</body>"), phone)
	if c, _ := h.expectOne().field("message-count"); c != "2" {
		t.Errorf("message-count = %s, want 2", c)
	}
	// Only the desktop takes it: the registration of the phone is not told (XEP-0357 leaves this to the
	// server; a phone that is offline rather than hibernating learns of it from the archive).
	h.stage(module.Inbound, bob, msg(alice, bob+"/desk", "chat", "<body>desk only</body>"), desk)
	h.expectNone()
}

func TestConnectedDeviceIsNotNotified(t *testing.T) {
	h := newHarness(t, Config{MinInterval: -1}, nil)
	h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='phone'/>`)
	h.mustIQ(bob+"/tablet", `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='tablet'/>`)
	// The phone is bound but sent no presence: the message goes to offline storage, and the phone, connected,
	// needs no wake-up; the tablet does.
	h.router.bind(&fakeSession{jid: jid.MustParse(bobPhone)})
	h.stage(module.Undeliverable, bob, chat("hi"))
	if n := h.expectOne(); n.Publish.Node != "tablet" {
		t.Fatalf("notified node %q, want tablet", n.Publish.Node)
	}
}

func TestDisable(t *testing.T) {
	h := newHarness(t, Config{MinInterval: -1}, nil)
	for _, e := range []string{"jid='push.example.org' node='a'", "jid='push.example.org' node='b'", "jid='other.example.org' node='c'"} {
		h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' `+e+`/>`)
		h.clock.Advance(time.Second) // registrations are announced to oldest first
	}
	nodes := func() string {
		h.stage(module.Undeliverable, bob, chat("hi"))
		var got []string
		for _, n := range h.notifications() {
			got = append(got, n.To+"#"+n.Publish.Node)
		}
		return strings.Join(got, " ")
	}
	if got := nodes(); got != "push.example.org#a push.example.org#b other.example.org#c" {
		t.Fatalf("notified %q", got)
	}
	h.mustIQ(bobPhone, `<disable xmlns='urn:xmpp:push:0' jid='push.example.org' node='a'/>`)
	if got := nodes(); got != "push.example.org#b other.example.org#c" {
		t.Fatalf("after disabling one node: notified %q", got)
	}
	h.mustIQ(bobPhone, `<disable xmlns='urn:xmpp:push:0' jid='push.example.org' node='a'/>`) // again: fine
	h.mustIQ(bobPhone, `<disable xmlns='urn:xmpp:push:0' jid='other.example.org'/>`)         // every node
	if got := nodes(); got != "push.example.org#b" {
		t.Fatalf("after disabling a JID: notified %q", got)
	}
	if h.m.Disabled.Load() != 2 {
		t.Errorf("Disabled = %d, want 2", h.m.Disabled.Load())
	}
}

func TestEnableRejects(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	for _, tc := range []struct {
		name, to, inner, cond string
	}{
		{"another account", "carol@example.net", `<enable xmlns='urn:xmpp:push:0' jid='p.example' node='n'/>`, "forbidden"},
		{"no jid", "", `<enable xmlns='urn:xmpp:push:0' node='n'/>`, "bad-request"},
		{"bad jid", "", `<enable xmlns='urn:xmpp:push:0' jid='a@b@c' node='n'/>`, "jid-malformed"},
		{"no node", "", `<enable xmlns='urn:xmpp:push:0' jid='p.example'/>`, "bad-request"},
		{"long node", "", `<enable xmlns='urn:xmpp:push:0' jid='p.example' node='` + strings.Repeat("n", 1024) + `'/>`, "not-acceptable"},
		{"other form", "", `<enable xmlns='urn:xmpp:push:0' jid='p.example' node='n'><x xmlns='jabber:x:data'>` +
			`<field var='FORM_TYPE'><value>urn:example</value></field></x></enable>`, "bad-request"},
		{"two forms", "", `<enable xmlns='urn:xmpp:push:0' jid='p.example' node='n'><x xmlns='jabber:x:data'/>` +
			`<x xmlns='jabber:x:data'/></enable>`, "bad-request"},
		{"huge form", "", `<enable xmlns='urn:xmpp:push:0' jid='p.example' node='n'><x xmlns='jabber:x:data'>` +
			`<field var='a'><value>` + strings.Repeat("v", 5000) + `</value></field></x></enable>`, "not-acceptable"},
		{"form over the parser's limits", "", `<enable xmlns='urn:xmpp:push:0' jid='p.example' node='n'><x xmlns='jabber:x:data'>` +
			strings.Repeat(`<field var='a'/>`, 300) + `</x></enable>`, "not-acceptable"},
		{"disable without jid", "", `<disable xmlns='urn:xmpp:push:0'/>`, "bad-request"},
		{"disable for another account", "carol@example.net", `<disable xmlns='urn:xmpp:push:0' jid='p.example'/>`, "forbidden"},
	} {
		err := h.iqTo(bobPhone, tc.to, tc.inner)
		var se *stanza.Error
		if !errors.As(err, &se) || se.Condition != tc.cond {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.cond)
		}
	}
	h.stage(module.Undeliverable, bob, chat("hi"))
	h.expectNone()
	// Addressed to the own bare JID explicitly is the same as no to.
	if err := h.iqTo(bobPhone, bob, `<enable xmlns='urn:xmpp:push:0' jid='p.example' node='n'/>`); err != nil {
		t.Fatal(err)
	}
}

func TestEnableAgainReplacesOptions(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.mustIQ(bobPhone, enableA)
	h.mustIQ(bobPhone, strings.Replace(enableA, "s3cr&amp;t", "fresh", 1))
	h.stage(module.Undeliverable, bob, chat("hi"))
	if got := h.expectOne().option("secret"); got != "fresh" {
		t.Fatalf("secret = %q, want the last enable's", got)
	}
}

// A publish-options form whose prefix is declared on the enable element is re-serialized with its own xmlns.
func TestPublishOptionsWithPrefixedForm(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' xmlns:d='jabber:x:data' jid='push.example.org' node='n'>`+
		`<d:x type='submit'><d:field var='token'><d:value>t0k</d:value></d:field></d:x></enable>`)
	h.stage(module.Undeliverable, bob, chat("hi"))
	if got := h.expectOne().option("token"); got != "t0k" {
		t.Fatalf("token = %q", got)
	}
}

func TestMaxRegistrationsReplacesOldest(t *testing.T) {
	h := newHarness(t, Config{MaxRegistrations: 2, MinInterval: -1}, nil)
	for _, node := range []string{"1", "2", "3"} {
		h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='`+node+`'/>`)
		h.clock.Advance(time.Second)
	}
	// Enabling an existing one again does not evict anything.
	h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='2'/>`)
	h.stage(module.Undeliverable, bob, chat("hi"))
	var got []string
	for _, n := range h.notifications() {
		got = append(got, n.Publish.Node)
	}
	if strings.Join(got, ",") != "3,2" {
		t.Fatalf("notified nodes %v, want 3 and 2 (oldest first)", got)
	}
}

func TestThrottleCoalescesAndNeverDropsTheFirst(t *testing.T) {
	h := newHarness(t, Config{}, nil) // MinInterval defaults to 10s
	h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n'/>`)
	h.stage(module.Undeliverable, bob, chat("one"))
	if c, _ := h.expectOne().field("message-count"); c != "1" {
		t.Fatalf("first count %s", c)
	}
	h.clock.Advance(time.Second)
	h.stage(module.Undeliverable, bob, chat("two"))
	h.clock.Advance(time.Second)
	h.stage(module.Undeliverable, bob, msg("carol@example.net/x", bob, "chat", "<body>three</body>"))
	h.expectNone()
	h.clock.Advance(7 * time.Second)
	h.expectNone()
	h.clock.Advance(time.Second) // 10s after the first
	n := h.expectOne()
	if c, _ := n.field("message-count"); c != "3" {
		t.Errorf("coalesced count %s, want 3", c)
	}
	if s, _ := n.field("last-message-sender"); s != "carol@example.net" {
		t.Errorf("coalesced sender %s, want the last one", s)
	}
	if h.m.Coalesced.Load() != 2 {
		t.Errorf("Coalesced = %d, want 2", h.m.Coalesced.Load())
	}
	// Quiet for an interval: the next one goes at once.
	h.clock.Advance(10 * time.Second)
	h.stage(module.Undeliverable, bob, chat("four"))
	if c, _ := h.expectOne().field("message-count"); c != "4" {
		t.Errorf("count after a quiet period %s, want 4", c)
	}
}

func TestCoalescedNotificationDroppedWhenUserIsBack(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n'/>`)
	h.stage(module.Undeliverable, bob, chat("one"))
	h.expectOne()
	h.clock.Advance(time.Second)
	h.stage(module.Undeliverable, bob, chat("two"))
	// bob answers from a session: he has read it.
	h.stage(module.Outbound, bob, msg(bobPhone, "alice@example.net", "chat", "<body>yes</body>"))
	h.clock.Advance(10 * time.Second)
	h.expectNone()
	h.stage(module.Undeliverable, bob, chat("three"))
	if c, _ := h.expectOne().field("message-count"); c != "1" {
		t.Errorf("count after the user was back %s, want 1", c)
	}
}

func TestCoalescedNotificationSkippedWhenDeviceConnected(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n'/>`)
	h.stage(module.Undeliverable, bob, chat("one"))
	h.expectOne()
	h.stage(module.Undeliverable, bob, chat("two"))
	h.router.bind(&fakeSession{jid: jid.MustParse(bobPhone)}) // woke up, bound, no presence yet
	h.clock.Advance(10 * time.Second)
	h.expectNone()
}

func TestDisableStopsCoalescedNotification(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n'/>`)
	h.stage(module.Undeliverable, bob, chat("one"))
	h.expectOne()
	h.stage(module.Undeliverable, bob, chat("two"))
	h.mustIQ(bobPhone, `<disable xmlns='urn:xmpp:push:0' jid='push.example.org'/>`)
	h.clock.Advance(time.Minute)
	h.expectNone()
}

func TestCountStartsOverWhenASessionBecomesAvailable(t *testing.T) {
	h := newHarness(t, Config{MinInterval: -1}, nil)
	h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n'/>`)
	for i, want := range []string{"1", "2"} {
		h.stage(module.Undeliverable, bob, chat("m"))
		if c, _ := h.expectOne().field("message-count"); c != want {
			t.Fatalf("message %d: count %s, want %s", i, c, want)
		}
	}
	for _, fn := range h.reg.SessionHooks(module.Available) {
		fn(context.Background(), &fakeSession{jid: jid.MustParse(bob + "/desk"), available: true})
	}
	h.stage(module.Undeliverable, bob, chat("m"))
	if c, _ := h.expectOne().field("message-count"); c != "1" {
		t.Fatalf("count after Available %s, want 1", c)
	}
	// A message delivered to a connected session counts as read too.
	h.stage(module.Undeliverable, bob, chat("m"))
	h.notifications()
	h.stage(module.Inbound, bob, chat("m"), &fakeSession{jid: jid.MustParse(bob + "/desk"), available: true})
	h.stage(module.Undeliverable, bob, chat("m"))
	if c, _ := h.expectOne().field("message-count"); c != "1" {
		t.Fatalf("count after a live delivery %s, want 1", c)
	}
}

func TestAppServerErrorDisablesRegistration(t *testing.T) {
	h := newHarness(t, Config{MinInterval: -1}, nil)
	h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n'/>`)
	publish := func() notif {
		h.stage(module.Undeliverable, bob, chat("hi"))
		return h.expectOne()
	}
	answer := func(n notif, from, typ, inner string) bool {
		s := stanza.New(stanza.IQ, typ, n.ID, jid.MustParse(from), jid.MustParse(bob), []byte(inner))
		return h.m.HandleResponse(context.Background(), s)
	}
	cancel := "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"

	n := publish()
	if !answer(n, appJID, "result", "") {
		t.Fatal("result not taken")
	}
	if answer(n, appJID, "error", cancel) {
		t.Fatal("a second answer to one id was taken")
	}
	n = publish()
	if answer(n, "mallory@example.org", "error", cancel) {
		t.Fatal("an error from another JID was taken")
	}
	if !answer(n, appJID, "error", "<error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>") {
		t.Fatal("temporary error not taken")
	}
	n = publish() // still enabled after a temporary error
	if !answer(n, appJID, "error", cancel) {
		t.Fatal("error not taken")
	}
	if h.m.Failed.Load() != 1 {
		t.Errorf("Failed = %d, want 1", h.m.Failed.Load())
	}
	h.stage(module.Undeliverable, bob, chat("hi"))
	h.expectNone()
	if answer(notif{ID: "push-unknown"}, appJID, "error", cancel) {
		t.Error("an answer to an unknown id was taken")
	}
}

func TestErrorDoesNotDisableARegistrationEnabledSince(t *testing.T) {
	h := newHarness(t, Config{MinInterval: -1}, nil)
	h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n'/>`)
	h.stage(module.Undeliverable, bob, chat("hi"))
	n := h.expectOne()
	h.clock.Advance(time.Second)
	h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n'/>`)
	s := stanza.New(stanza.IQ, "error", n.ID, jid.MustParse(appJID), jid.MustParse(bob),
		[]byte("<error type='cancel'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"))
	h.m.HandleResponse(context.Background(), s)
	h.stage(module.Undeliverable, bob, chat("hi"))
	h.expectOne()
}

func TestSweepForgetsUnansweredAndQuietState(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.mustIQ(bobPhone, `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='n'/>`)
	h.stage(module.Undeliverable, bob, chat("hi"))
	h.expectOne()
	h.clock.Advance(responseTimeout + time.Second)
	h.m.sweep(h.clock.Now())
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if len(h.m.pending) != 0 || len(h.m.throttle) != 0 {
		t.Fatalf("after sweep: %d pending, %d throttled accounts", len(h.m.pending), len(h.m.throttle))
	}
}

// Registrations are in the store, so a new module (a restarted server) publishes to them.
func TestRegistrationsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	h := newHarness(t, Config{}, store)
	h.mustIQ(bobPhone, enableA)
	h2 := newHarness(t, Config{}, store)
	h2.stage(module.Undeliverable, bob, chat("hi"))
	if n := h2.expectOne(); n.Publish.Node != "node-a" || n.option("secret") != "s3cr&t" {
		t.Fatalf("after restart: %s", n.raw)
	}
}

func TestConfig(t *testing.T) {
	if err := (Config{MaxRegistrations: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "push.max_registrations") {
		t.Errorf("negative max_registrations: %v", err)
	}
	if err := (Config{MinInterval: -time.Second}).Validate(); err != nil {
		t.Errorf("negative min_interval (throttling off) rejected: %v", err)
	}
	m := New(Config{}, newMemKV())
	if m.cfg.IncludeBody || !*m.cfg.IncludeSender || m.cfg.MinInterval != 10*time.Second || m.cfg.MaxRegistrations != 10 {
		t.Errorf("defaults: %+v", m.cfg)
	}
}

func TestEachChild(t *testing.T) {
	var got []string
	eachChild([]byte(`text<a xmlns='x'><b/></a><!-- c --><c/><d>t</d>`), func(local, ns string, raw []byte) {
		got = append(got, local+"{"+ns+"}"+string(raw))
	})
	if strings.Join(got, " ") != "a{x}<a xmlns='x'><b/></a> c{}<c/> d{}<d>t</d>" {
		t.Fatalf("children: %q", got)
	}
}
