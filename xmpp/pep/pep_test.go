package pep_test

import (
	"fmt"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/disco"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/pep"
	"parley.im/parley/xmpp/presence"
	"parley.im/parley/xmpp/pubsub"
	"parley.im/parley/xmpp/stanza"
)

const (
	alice   = "alice@example.net"
	bob     = "bob@example.net"
	carol   = "carol@example.net"
	romeo   = "romeo@remote.example"
	devices = pubsub.NodeOMEMODevices
	nick    = "http://jabber.org/protocol/nick"
)

// env is a host with the presence and PEP modules over one store.
type env struct {
	t     *testing.T
	h     *moduletest.Host
	store storage.Store
	pep   *pep.Module
}

func newEnv(t *testing.T, cfg pep.Config) *env {
	store := moduletest.Store(t)
	m := pep.New(cfg, store, store)
	return &env{t: t, h: moduletest.New(t, presence.New(store, store), m), store: store, pep: m}
}

// contacts makes a and b contacts with subscription both.
func (e *env) contacts(a, b string) {
	e.t.Helper()
	for _, p := range [][2]string{{a, b}, {b, a}} {
		if _, err := e.store.PutRosterItem(e.t.Context(), p[0], storage.RosterItem{JID: p[1], Subscription: storage.SubBoth,
			Groups: []string{"friends"}}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// capsFor returns a XEP-0115 <c/> element for a client with features, and its verification string.
func capsFor(features ...string) (string, string) {
	features = append(features, disco.NSInfo, disco.NSCaps)
	ver := disco.CapsVer([]module.Identity{{Category: "client", Type: "phone", Name: "Test"}}, features)
	return "<c xmlns='" + disco.NSCaps + "' hash='sha-1' node='https://client.test' ver='" + ver + "'/>", ver
}

// discoResult is the disco#info result a client with features sends.
func discoResult(features ...string) string {
	features = append(features, disco.NSInfo, disco.NSCaps)
	var b strings.Builder
	b.WriteString("<query xmlns='" + disco.NSInfo + "'><identity category='client' type='phone' name='Test'/>")
	for _, f := range features {
		fmt.Fprintf(&b, "<feature var='%s'/>", f)
	}
	b.WriteString("</query>")
	return b.String()
}

// online brings full online with initial presence announcing features, and answers the capabilities query
// the PEP module sends it, if any. It returns the session, with what it received so far taken.
func (e *env) online(full string, features ...string) *moduletest.Session {
	e.t.Helper()
	ctx := e.t.Context()
	s := e.h.Connect(ctx, full)
	c, _ := capsFor(features...)
	if err := e.h.SendPresence(ctx, s, "", "", c); err != nil {
		e.t.Fatal(err)
	}
	e.answerCaps(s, features...)
	return s
}

// answerCaps answers every disco#info query s received, with features; it returns how many there were.
func (e *env) answerCaps(s *moduletest.Session, features ...string) int {
	e.t.Helper()
	n := 0
	for _, st := range moduletest.Only(s.Take(), stanza.IQ, "get") {
		if !strings.Contains(string(st.Raw), disco.NSInfo) {
			continue
		}
		n++
		e.h.Router.Route(e.t.Context(), stanza.New(stanza.IQ, "result", st.ID, s.JID(), st.From,
			[]byte(discoResult(features...))))
	}
	return n
}

func (e *env) iq(s *moduletest.Session, to, typ, payload string) *stanza.Stanza {
	e.t.Helper()
	return e.h.SendIQTo(e.t.Context(), s, to, typ, payload)
}

func publishXML(node, id, payload, options string) string {
	item := "<item>"
	if id != "" {
		item = "<item id='" + id + "'>"
	}
	return "<pubsub xmlns='" + pubsub.NS + "'><publish node='" + node + "'>" + item + payload + "</item></publish>" +
		options + "</pubsub>"
}

func optionsXML(fields map[string]string) string {
	b := "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" +
		pubsub.NSPublishOptions + "</value></field>"
	for k, v := range fields {
		b += "<field var='" + k + "'><value>" + v + "</value></field>"
	}
	return b + "</x></publish-options>"
}

const deviceList = "<devices xmlns='urn:xmpp:omemo:2'><device id='12345'/></devices>"

// events returns the pubsub events among stanzas, as their raw bytes.
func events(ss []*stanza.Stanza) []string {
	var out []string
	for _, s := range moduletest.Only(ss, stanza.Message, "headline") {
		if strings.Contains(string(s.Raw), pubsub.NSEvent) {
			out = append(out, string(s.Raw))
		}
	}
	return out
}

func wantCondition(t *testing.T, s *stanza.Stanza, cond, app string) {
	t.Helper()
	if s == nil || s.Type != "error" || moduletest.ErrorCondition(s) != cond || (app != "" && !strings.Contains(string(s.Raw), "<"+app)) {
		t.Fatalf("want %s/%s error, got %v", cond, app, s)
	}
}

func TestDiscoIdentityAndFeatures(t *testing.T) {
	e := newEnv(t, pep.Config{})
	ids := e.h.Registry.Identities(module.Account)
	found := false
	for _, id := range ids {
		found = found || (id.Category == "pubsub" && id.Type == "pep")
	}
	if !found {
		t.Errorf("account identities %v lack pubsub/pep", ids)
	}
	have := strings.Join(e.h.Registry.Features(module.Account), " ")
	for _, f := range []string{"#publish", "#publish-options", "#item-ids", "#multi-items", "#config-node-max",
		"#access-open", "#access-presence", "#access-roster", "#access-whitelist", "#auto-create",
		"#filtered-notifications", "#last-published", "#retract-items", "#purge-nodes", "#delete-nodes", "#subscribe"} {
		if !strings.Contains(have+" ", pubsub.NS+f+" ") {
			t.Errorf("feature %s not advertised", f)
		}
	}
}

// The owner publishes; its resource that asks for +notify gets the event, and so does a contact's resource
// that does, but not a contact whose caps lack node+notify.
func TestPublishNotifiesByNotifyFilter(t *testing.T) {
	e := newEnv(t, pep.Config{})
	e.contacts(alice, bob)
	e.contacts(alice, carol)
	phone := e.online(alice+"/phone", devices+"+notify")
	bobPhone := e.online(bob+"/phone", devices+"+notify")
	carolPC := e.online(carol+"/pc", nick+"+notify") // wants nick, not devices
	phone.Take()
	bobPhone.Take()
	carolPC.Take()

	res := e.iq(phone, "", "set", publishXML(devices, "current", deviceList, optionsXML(map[string]string{pubsub.FieldAccessModel: "open"})))
	if res == nil || res.Type != "result" || !strings.Contains(string(res.Raw), "id='current'") {
		t.Fatalf("publish: %v", res)
	}
	for name, s := range map[string]*moduletest.Session{"owner": phone, "bob": bobPhone} {
		ev := events(s.Take())
		if len(ev) != 1 || !strings.Contains(ev[0], deviceList) || !strings.Contains(ev[0], "from='"+alice+"'") {
			t.Errorf("%s got %q, want one event with the device list from alice's bare JID", name, ev)
		}
	}
	if ev := events(carolPC.Take()); len(ev) != 0 {
		t.Errorf("carol, without devices+notify, got %q", ev)
	}
}

// A contact that becomes available gets the last item of each node it wants (XEP-0163 4.3.4), after its caps
// were learnt with one disco#info query; a second resource with the same caps needs no query.
func TestLastItemOnPresence(t *testing.T) {
	e := newEnv(t, pep.Config{})
	e.contacts(alice, bob)
	phone := e.online(alice + "/phone")
	if res := e.iq(phone, "", "set", publishXML(devices, "current", deviceList, "")); res.Type != "result" {
		t.Fatalf("publish: %s", res.Raw)
	}
	if res := e.iq(phone, "", "set", publishXML(nick, "n", "<nick xmlns='"+nick+"'>Alice</nick>", "")); res.Type != "result" {
		t.Fatalf("publish: %s", res.Raw)
	}
	bobPhone := e.online(bob+"/phone", devices+"+notify")
	ev := events(bobPhone.Take())
	if len(ev) != 1 || !strings.Contains(ev[0], deviceList) || !strings.Contains(ev[0], "urn:xmpp:delay") {
		t.Fatalf("bob got %q, want the last device list (with its delay) and not the nick", ev)
	}
	// Same caps on another device: answered from the cache, no query.
	ctx := t.Context()
	tablet := e.h.Connect(ctx, bob+"/tablet")
	c, _ := capsFor(devices + "+notify")
	if err := e.h.SendPresence(ctx, tablet, "", "", c); err != nil {
		t.Fatal(err)
	}
	got := tablet.Take()
	if n := e.answerCaps(tablet, devices+"+notify"); n != 0 {
		t.Errorf("%d caps queries for a known ver", n)
	}
	if ev := events(got); len(ev) != 1 {
		t.Errorf("tablet got %q", ev)
	}
	// A status change does not resend.
	if err := e.h.SendPresence(ctx, tablet, "", "", "<show>away</show>"+c); err != nil {
		t.Fatal(err)
	}
	if ev := events(tablet.Take()); len(ev) != 0 {
		t.Errorf("status change resent %q", ev)
	}
}

// A disco#info answer whose features do not hash to the announced ver is not believed: no +notify.
func TestCapsHashMismatchIgnored(t *testing.T) {
	e := newEnv(t, pep.Config{})
	e.contacts(alice, bob)
	phone := e.online(alice + "/phone")
	if res := e.iq(phone, "", "set", publishXML(devices, "current", deviceList, "")); res.Type != "result" {
		t.Fatalf("publish: %s", res.Raw)
	}
	ctx := t.Context()
	liar := e.h.Connect(ctx, bob+"/liar")
	c, _ := capsFor("urn:other")
	if err := e.h.SendPresence(ctx, liar, "", "", c); err != nil {
		t.Fatal(err)
	}
	if n := e.answerCaps(liar, devices+"+notify"); n != 1 {
		t.Fatalf("%d caps queries, want 1", n)
	}
	if ev := events(liar.Take()); len(ev) != 0 {
		t.Fatalf("unverified caps got %q", ev)
	}
	e.iq(phone, "", "set", publishXML(devices, "next", deviceList, ""))
	if ev := events(liar.Take()); len(ev) != 0 {
		t.Fatalf("unverified caps got %q", ev)
	}
}

func TestPublishOptionsPreconditions(t *testing.T) {
	e := newEnv(t, pep.Config{})
	phone := e.online(alice + "/phone")
	open := optionsXML(map[string]string{pubsub.FieldAccessModel: "open", pubsub.FieldMaxItems: "max"})
	if res := e.iq(phone, "", "set", publishXML(pubsub.NodeOMEMOBundles, "1", "<bundle xmlns='urn:xmpp:omemo:2'/>", open)); res.Type != "result" {
		t.Fatalf("first publish: %s", res.Raw)
	}
	if res := e.iq(phone, "", "set", publishXML(pubsub.NodeOMEMOBundles, "2", "<bundle xmlns='urn:xmpp:omemo:2'/>", open)); res.Type != "result" {
		t.Fatalf("matching options: %s", res.Raw)
	}
	res := e.iq(phone, "", "set", publishXML(pubsub.NodeOMEMOBundles, "3", "<bundle xmlns='urn:xmpp:omemo:2'/>",
		optionsXML(map[string]string{pubsub.FieldAccessModel: "presence"})))
	wantCondition(t, res, "conflict", "precondition-not-met")
	items, err := e.store.Items(t.Context(), alice, pubsub.NodeOMEMOBundles, storage.PubSubItemQuery{})
	if err != nil || len(items) != 2 {
		t.Fatalf("items %v, %v; want the two accepted bundles", items, err)
	}
}

// Access models: an outsider is refused presence, roster and whitelist nodes and reads the open one; a
// contact reads presence and roster nodes; whitelist needs an affiliation.
func TestAccessModels(t *testing.T) {
	e := newEnv(t, pep.Config{})
	e.contacts(alice, bob)
	phone := e.online(alice + "/phone")
	for _, model := range []string{"open", "presence", "roster", "whitelist"} {
		res := e.iq(phone, "", "set", publishXML("node/"+model, "i", "<x xmlns='urn:x'/>",
			optionsXML(map[string]string{pubsub.FieldAccessModel: model})))
		if res.Type != "result" {
			t.Fatalf("publish %s: %s", model, res.Raw)
		}
	}
	outsider := e.h.Online(t.Context(), "mallory@example.net/x", 0)
	contact := e.h.Online(t.Context(), bob+"/x", 0)
	get := func(s *moduletest.Session, node string) *stanza.Stanza {
		return e.iq(s, alice, "get", "<pubsub xmlns='"+pubsub.NS+"'><items node='"+node+"'/></pubsub>")
	}
	if res := get(outsider, "node/open"); res.Type != "result" || !strings.Contains(string(res.Raw), "<x xmlns='urn:x'/>") {
		t.Errorf("outsider, open node: %s", res.Raw)
	}
	wantCondition(t, get(outsider, "node/presence"), "not-authorized", "presence-subscription-required")
	wantCondition(t, get(outsider, "node/roster"), "not-authorized", "not-in-roster-group")
	wantCondition(t, get(outsider, "node/whitelist"), "not-allowed", "closed-node")
	for _, n := range []string{"node/open", "node/presence", "node/roster"} {
		if res := get(contact, n); res.Type != "result" {
			t.Errorf("contact, %s: %s", n, res.Raw)
		}
	}
	wantCondition(t, get(contact, "node/whitelist"), "not-allowed", "closed-node")
	if err := e.store.SetNodeAffiliation(t.Context(), alice, "node/whitelist", storage.PubSubAffiliation{JID: bob, Affiliation: storage.AffMember}); err != nil {
		t.Fatal(err)
	}
	if res := get(contact, "node/whitelist"); res.Type != "result" {
		t.Errorf("member, whitelist: %s", res.Raw)
	}
	// Roster groups: a contact outside the allowed groups is refused.
	form := "<pubsub xmlns='" + pubsub.NSOwner + "'><configure node='node/roster'><x xmlns='jabber:x:data' type='submit'>" +
		"<field var='FORM_TYPE' type='hidden'><value>" + pubsub.NSNodeConfig + "</value></field>" +
		"<field var='pubsub#roster_groups_allowed'><value>family</value></field></x></configure></pubsub>"
	if res := e.iq(phone, "", "set", form); res.Type != "result" {
		t.Fatalf("configure: %s", res.Raw)
	}
	wantCondition(t, get(contact, "node/roster"), "not-authorized", "not-in-roster-group")
	// Only the owner publishes.
	wantCondition(t, e.iq(contact, alice, "set", publishXML("node/open", "z", "<x xmlns='urn:x'/>", "")), "forbidden", "")
}

// max_items trimming sends retractions of the trimmed ids; retract notifies; items by id and max_items.
func TestTrimRetractAndItems(t *testing.T) {
	e := newEnv(t, pep.Config{})
	phone := e.online(alice+"/phone", "urn:n+notify")
	three := optionsXML(map[string]string{pubsub.FieldMaxItems: "3"})
	for i := range 4 {
		res := e.iq(phone, "", "set", publishXML("urn:n", fmt.Sprint("i", i), fmt.Sprintf("<n xmlns='urn:n'>%d</n>", i), three))
		if res.Type != "result" {
			t.Fatalf("publish %d: %s", i, res.Raw)
		}
	}
	ev := events(phone.Take())
	if len(ev) != 5 || !strings.Contains(ev[4], "<retract id='i0'/>") {
		t.Fatalf("events %q: want 4 items and a retraction of i0", ev)
	}
	res := e.iq(phone, "", "get", "<pubsub xmlns='"+pubsub.NS+"'><items node='urn:n' max_items='2'/></pubsub>")
	if s := string(res.Raw); !strings.Contains(s, "i2") || !strings.Contains(s, "i3") || strings.Contains(s, "i1") {
		t.Errorf("max_items=2: %s", s)
	}
	res = e.iq(phone, "", "get", "<pubsub xmlns='"+pubsub.NS+"'><items node='urn:n'><item id='i1'/></items></pubsub>")
	if s := string(res.Raw); !strings.Contains(s, "i1") || strings.Contains(s, "i2") {
		t.Errorf("by id: %s", s)
	}
	res = e.iq(phone, "", "set", "<pubsub xmlns='"+pubsub.NS+"'><retract node='urn:n' notify='true'><item id='i1'/></retract></pubsub>")
	if res.Type != "result" {
		t.Fatalf("retract: %s", res.Raw)
	}
	if ev := events(phone.Take()); len(ev) != 1 || !strings.Contains(ev[0], "<retract id='i1'/>") {
		t.Errorf("retract events %q", ev)
	}
	wantCondition(t, e.iq(phone, "", "set", "<pubsub xmlns='"+pubsub.NS+"'><retract node='urn:n'><item id='i1'/></retract></pubsub>"),
		"item-not-found", "")
	// Purge and delete.
	if res := e.iq(phone, "", "set", "<pubsub xmlns='"+pubsub.NSOwner+"'><purge node='urn:n'/></pubsub>"); res.Type != "result" {
		t.Fatalf("purge: %s", res.Raw)
	}
	if ev := events(phone.Take()); len(ev) != 1 || !strings.Contains(ev[0], "<purge node='urn:n'/>") {
		t.Errorf("purge events %q", ev)
	}
	if res := e.iq(phone, "", "set", "<pubsub xmlns='"+pubsub.NSOwner+"'><delete node='urn:n'/></pubsub>"); res.Type != "result" {
		t.Fatalf("delete: %s", res.Raw)
	}
	if ev := events(phone.Take()); len(ev) != 1 || !strings.Contains(ev[0], "<delete node='urn:n'/>") {
		t.Errorf("delete events %q", ev)
	}
	wantCondition(t, e.iq(phone, "", "get", "<pubsub xmlns='"+pubsub.NS+"'><items node='urn:n'/></pubsub>"), "item-not-found", "")
}

// An explicit subscriber gets the last item on subscription, then notifications, also from another server.
func TestSubscribeLastItemAndRemote(t *testing.T) {
	e := newEnv(t, pep.Config{})
	phone := e.online(alice + "/phone")
	if res := e.iq(phone, "", "set", publishXML("urn:blog", "p1", "<entry xmlns='urn:blog'>one</entry>",
		optionsXML(map[string]string{pubsub.FieldAccessModel: "open"}))); res.Type != "result" {
		t.Fatalf("publish: %s", res.Raw)
	}
	ctx := t.Context()
	dave := e.h.Online(ctx, "dave@example.net/pc", 0)
	if res := e.iq(dave, alice, "set", "<pubsub xmlns='"+pubsub.NS+"'><subscribe node='urn:blog' jid='dave@example.net/pc'/></pubsub>"); res != nil {
		t.Fatalf("subscribe answered through the router, got %s", res.Raw)
	}
	got := dave.Take()
	if len(got) != 2 || got[0].Type != "result" || !strings.Contains(string(got[0].Raw), "subscription='subscribed'") ||
		!strings.Contains(string(got[1].Raw), "one</entry>") {
		t.Fatalf("dave got %v, want the result and then the last item", got)
	}
	wantCondition(t, e.iq(dave, alice, "set", "<pubsub xmlns='"+pubsub.NS+"'><subscribe node='urn:blog' jid='eve@example.net'/></pubsub>"),
		"bad-request", "invalid-jid")
	wantCondition(t, e.iq(dave, alice, "set", "<pubsub xmlns='"+pubsub.NS+"'><subscribe node='urn:none' jid='dave@example.net/pc'/></pubsub>"),
		"item-not-found", "")

	// A contact on another server, online with +notify: its presence came from there, so does the caps
	// answer; the notification leaves through the router.
	e.contacts(alice, romeo)
	c, ver := capsFor("urn:blog+notify")
	e.h.Router.Deliver(ctx, module.Origin{Kind: module.OriginRemoteServer, Peer: "remote.example"}, jid.MustParse(alice),
		stanza.New(stanza.Presence, "", "", jid.MustParse(romeo+"/r"), jid.JID{}, []byte(c)))
	var q *stanza.Stanza
	for _, s := range e.h.Router.TakeLeft() {
		if s.Kind == stanza.IQ && strings.Contains(string(s.Raw), "#"+ver) {
			q = s
		}
	}
	if q == nil {
		t.Fatal("no caps query left for the remote contact")
	}
	e.h.Router.Route(ctx, stanza.New(stanza.IQ, "result", q.ID, jid.MustParse(romeo+"/r"), jid.MustParse(alice),
		[]byte(discoResult("urn:blog+notify"))))
	if left := e.h.Router.TakeLeft(); len(events(left)) != 1 {
		t.Fatalf("remote contact's last item: left %v", left)
	}
	// The node keeps one item (max_items 1): publishing p2 trims p1, and notify_retract says so.
	e.iq(phone, "", "set", publishXML("urn:blog", "p2", "<entry xmlns='urn:blog'>two</entry>", ""))
	if ev := events(dave.Take()); len(ev) != 2 || !strings.Contains(ev[0], "two</entry>") || !strings.Contains(ev[1], "<retract id='p1'/>") {
		t.Errorf("subscriber got %q", ev)
	}
	if ev := events(e.h.Router.TakeLeft()); len(ev) != 2 || !strings.Contains(ev[0], "to='"+romeo+"/r'") {
		t.Errorf("remote contact got %q", ev)
	}
	// Unsubscribed, dave hears no more; a second unsubscribe is not-subscribed.
	if res := e.iq(dave, alice, "set", "<pubsub xmlns='"+pubsub.NS+"'><unsubscribe node='urn:blog' jid='dave@example.net/pc'/></pubsub>"); res.Type != "result" {
		t.Fatalf("unsubscribe: %s", res.Raw)
	}
	wantCondition(t, e.iq(dave, alice, "set", "<pubsub xmlns='"+pubsub.NS+"'><unsubscribe node='urn:blog' jid='dave@example.net/pc'/></pubsub>"),
		"unexpected-request", "not-subscribed")
	e.iq(phone, "", "set", publishXML("urn:blog", "p3", "<entry xmlns='urn:blog'>three</entry>", ""))
	if ev := events(dave.Take()); len(ev) != 0 {
		t.Errorf("unsubscribed got %q", ev)
	}
	if ev := events(e.h.Router.TakeLeft()); len(ev) != 2 {
		t.Errorf("remote contact got %q", ev)
	}
	// Unavailable: the remote resource is forgotten.
	e.h.Router.Deliver(ctx, module.Origin{Kind: module.OriginRemoteServer}, jid.MustParse(alice),
		stanza.New(stanza.Presence, "unavailable", "", jid.MustParse(romeo+"/r"), jid.JID{}, nil))
	e.iq(phone, "", "set", publishXML("urn:blog", "p4", "<entry xmlns='urn:blog'>four</entry>", ""))
	if ev := events(e.h.Router.TakeLeft()); len(ev) != 0 {
		t.Errorf("offline remote contact got %q", ev)
	}
}

func TestLimits(t *testing.T) {
	e := newEnv(t, pep.Config{MaxNodes: 2, MaxItems: 2, MaxItemSize: 100})
	phone := e.online(alice + "/phone")
	big := "<x xmlns='urn:x'>" + strings.Repeat("a", 200) + "</x>"
	wantCondition(t, e.iq(phone, "", "set", publishXML("n1", "", big, "")), "not-acceptable", "payload-too-big")
	if _, err := e.store.Node(t.Context(), alice, "n1"); err == nil {
		t.Error("a refused first item left a node behind")
	}
	for _, n := range []string{"n1", "n2"} {
		if res := e.iq(phone, "", "set", publishXML(n, "", "<x xmlns='urn:x'/>", "")); res.Type != "result" {
			t.Fatalf("publish %s: %s", n, res.Raw)
		}
	}
	wantCondition(t, e.iq(phone, "", "set", publishXML("n3", "", "<x xmlns='urn:x'/>", "")), "not-allowed", "max-nodes-exceeded")
	maxOpt := optionsXML(map[string]string{pubsub.FieldMaxItems: "max"})
	if res := e.iq(phone, "", "set", "<pubsub xmlns='"+pubsub.NSOwner+"'><delete node='n2'/></pubsub>"); res.Type != "result" {
		t.Fatal(res.Raw)
	}
	for i := range 2 {
		if res := e.iq(phone, "", "set", publishXML("b", fmt.Sprint(i), "<x xmlns='urn:x'/>", maxOpt)); res.Type != "result" {
			t.Fatalf("publish %d: %s", i, res.Raw)
		}
	}
	wantCondition(t, e.iq(phone, "", "set", publishXML("b", "2", "<x xmlns='urn:x'/>", maxOpt)), "not-allowed", "max-items-exceeded")
	// Configure get shows the form; above-limit max_items is refused.
	res := e.iq(phone, "", "get", "<pubsub xmlns='"+pubsub.NSOwner+"'><configure node='b'/></pubsub>")
	if res.Type != "result" || !strings.Contains(string(res.Raw), "pubsub#max_items") {
		t.Fatalf("configure get: %s", res.Raw)
	}
	wantCondition(t, e.iq(phone, "", "set", publishXML("c", "", "<x xmlns='urn:x'/>", optionsXML(map[string]string{pubsub.FieldMaxItems: "5"}))),
		"conflict", "precondition-not-met")
}

func TestConfigValidate(t *testing.T) {
	if err := (pep.Config{}).Validate(); err != nil {
		t.Error(err)
	}
	for _, c := range []pep.Config{{MaxNodes: -1}, {MaxItems: -1}, {MaxItemSize: -1}} {
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "pep.") {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
