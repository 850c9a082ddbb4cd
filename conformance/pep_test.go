package conformance

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// XEP-0163 Personal Eventing Protocol, with XEP-0223 publish-options, as OMEMO clients (Conversations, Monal)
// use it. The clients are raw: each announces XEP-0115 capabilities and answers the server's disco#info
// query for them (the server asks once per verification string, from the account's bare JID), so that the
// test decides exactly which +notify features a client has.

const (
	nsPubSub      = "http://jabber.org/protocol/pubsub"
	nsPubSubOwner = "http://jabber.org/protocol/pubsub#owner"
	nsPubSubEvent = "http://jabber.org/protocol/pubsub#event"
	nodeDevices   = "urn:xmpp:omemo:2:devices"
	nodeBundles   = "urn:xmpp:omemo:2:bundles"
)

// pepBackends runs f once per storage driver the conformance run can reach: SQLite always, PostgreSQL when
// PARLEY_TEST_PG_DSN is set (each run in a schema of its own, dropped afterwards).
func pepBackends(t *testing.T, f func(t *testing.T, storageYAML string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, "") })
	dsn := os.Getenv("PARLEY_TEST_PG_DSN")
	if dsn == "" {
		if os.Getenv("PARLEY_REQUIRE_SERVICES") == "1" {
			t.Fatal("PARLEY_TEST_PG_DSN not set")
		}
		t.Log("PARLEY_TEST_PG_DSN not set: the PostgreSQL run is skipped")
		return
	}
	t.Run("postgres", func(t *testing.T) { f(t, pgStorageYAML(t, dsn)) })
}

// pgStorageYAML creates a schema for one server and returns the storage section that points Parley at it.
func pgStorageYAML(t *testing.T, dsn string) string {
	var rnd [6]byte
	rand.Read(rnd[:])
	schema := "parley_conf_" + hex.EncodeToString(rnd[:])
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to PARLEY_TEST_PG_DSN: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer admin.Close(ctx)
		admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	var withSchema string
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		withSchema = u.String()
	} else {
		withSchema = dsn + " search_path=" + schema
	}
	return "storage:\n  driver: postgres\n  postgres_dsn: \"" + withSchema + "\"\n"
}

// pepClient is a raw client that keeps every stanza it reads, answers the server's caps queries itself, and
// lets the test take stanzas by pattern in any order.
type pepClient struct {
	*smClient
	jid      string
	features []string
	got      []string
}

var (
	stanzaRe  = regexp.MustCompile(`(?s)^\s*<(message|iq|presence)\b[^>]*?(?:/>|>.*?</(?:message|iq|presence)>)`)
	capsQRe   = regexp.MustCompile(`^<iq [^>]*type='get'[^>]*>\s*<query xmlns='http://jabber.org/protocol/disco#info' node='[^']*#`)
	attrValRe = regexp.MustCompile(`(\w+)='([^']*)'`)
)

// clientCapsVer is the XEP-0115 verification string of a client with identity client/pc named "Test" and features.
func clientCapsVer(features []string) string {
	fs := append([]string(nil), features...)
	sort.Strings(fs)
	s := "client/pc//Test<"
	for _, f := range fs {
		s += f + "<"
	}
	sum := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// dialPEP logs user in, binds resource and sends initial presence with caps for notify (node names whose
// +notify the client announces), then waits for the server's caps query if one comes.
func dialPEP(t *testing.T, srv *Server, user, resource string, notify ...string) *pepClient {
	t.Helper()
	c := &pepClient{smClient: loginSM(t, srv, user, user+"-secret")}
	c.features = []string{"http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info"}
	for _, n := range notify {
		c.features = append(c.features, n+"+notify")
	}
	c.send(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + resource + `</resource></bind></iq>`)
	c.jid = regexp.MustCompile(`<jid>([^<]+)</jid>`).FindStringSubmatch(c.expect(`<jid>`, 5*time.Second))[1]
	c.iq("get", "", "roster", `<query xmlns='jabber:iq:roster'/>`) // an interested resource: it gets roster pushes
	return c
}

// online sends the initial presence with caps.
func (c *pepClient) online() {
	c.send(`<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://test.client' ver='` +
		clientCapsVer(c.features) + `'/></presence>`)
}

// read reads what the server sent within d into got, answering caps queries.
func (c *pepClient) read(d time.Duration) {
	c.t.Helper()
	b := make([]byte, 16384)
	c.conn.SetReadDeadline(time.Now().Add(d))
	n, err := c.conn.Read(b)
	c.buf += string(b[:n])
	for {
		m := stanzaRe.FindStringIndex(c.buf)
		if m == nil {
			break
		}
		st := strings.TrimSpace(c.buf[:m[1]])
		c.buf = c.buf[m[1]:]
		if capsQRe.MatchString(st) {
			attrs := map[string]string{}
			for _, a := range attrValRe.FindAllStringSubmatch(st[:strings.IndexByte(st, '>')], -1) {
				attrs[a[1]] = a[2]
			}
			q := `<iq type='result' id='` + attrs["id"] + `' to='` + attrs["from"] + `'><query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc' name='Test'/>`
			for _, f := range c.features {
				q += `<feature var='` + f + `'/>`
			}
			c.send(q + `</query></iq>`)
			continue
		}
		c.got = append(c.got, st)
	}
	if err != nil && !isTimeout(err) {
		c.t.Fatalf("reading: %v", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(interface{ Timeout() bool })
	return ok && ne.Timeout()
}

// expect returns (and removes) the first stanza received that matches re, waiting up to d.
func (c *pepClient) expect(re string, d time.Duration) string {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(d)
	for {
		for i, s := range c.got {
			if rx.MatchString(s) {
				c.got = append(c.got[:i], c.got[i+1:]...)
				return s
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: no stanza matching %s within %v; got:\n%s", c.jid, re, d, strings.Join(c.got, "\n"))
		}
		c.read(100 * time.Millisecond)
	}
}

// none fails if a stanza matching re arrived by the time a marker message from sender does: what the server
// routed to c before the marker is in c's stream before it.
func (c *pepClient) none(re string, sender *pepClient) {
	c.t.Helper()
	marker := "marker-" + hex.EncodeToString([]byte(time.Now().Format("150405.000000")))
	sender.send(`<message to='` + c.jid + `' type='chat'><body>` + marker + `</body></message>`)
	c.expect(marker, 5*time.Second)
	for _, s := range c.got {
		if regexp.MustCompile(re).MatchString(s) {
			c.t.Fatalf("%s got, unwanted:\n%s", c.jid, s)
		}
	}
}

// iq sends an iq and returns its answer.
func (c *pepClient) iq(typ, to, id, payload string) string {
	c.t.Helper()
	if to != "" {
		to = ` to='` + to + `'`
	}
	c.send(`<iq type='` + typ + `' id='` + id + `'` + to + `>` + payload + `</iq>`)
	return c.expect(`^<iq [^>]*id='`+id+`'`, 5*time.Second)
}

// pepBefriend makes a and b contacts with subscription both, by pre-approval (RFC 6121 3.4).
func pepBefriend(a, b *pepClient) {
	bare := func(j string) string { return strings.SplitN(j, "/", 2)[0] }
	// One step at a time, each confirmed by its roster push.
	b.send(`<presence to='` + bare(a.jid) + `' type='subscribed'/>`)
	b.expect(`approved='true'`, 5*time.Second)
	a.send(`<presence to='` + bare(b.jid) + `' type='subscribe'/>`)
	a.expect(`subscription='to'`, 5*time.Second)
	a.send(`<presence to='` + bare(b.jid) + `' type='subscribed'/>`)
	a.expect(`approved='true'`, 5*time.Second)
	b.send(`<presence to='` + bare(a.jid) + `' type='subscribe'/>`)
	a.expect(`subscription='both'`, 5*time.Second)
	b.expect(`subscription='both'`, 5*time.Second)
}

// settle reads what each client has been sent for a moment, so that the caps queries are answered before the
// test goes on.
func settle(cs ...*pepClient) {
	for range 2 {
		for _, c := range cs {
			c.read(150 * time.Millisecond)
		}
	}
}

func publish(node, id, payload, options string) string {
	return `<pubsub xmlns='` + nsPubSub + `'><publish node='` + node + `'><item id='` + id + `'>` + payload +
		`</item></publish>` + options + `</pubsub>`
}

func publishOptions(kv ...string) string {
	s := `<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>` +
		nsPubSub + `#publish-options</value></field>`
	for i := 0; i+1 < len(kv); i += 2 {
		s += `<field var='` + kv[i] + `'><value>` + kv[i+1] + `</value></field>`
	}
	return s + `</x></publish-options>`
}

const devList = `<devices xmlns='urn:xmpp:omemo:2'><device id='4711'/></devices>`

func pepServer(t *testing.T, storageYAML, extra string, users ...string) *Server {
	srv := Start(t, storageYAML+extra)
	for _, u := range users {
		srv.AddUser(u, u+"-secret")
	}
	return srv
}

// Publish-options (XEP-0223) as OMEMO clients send them: access_model=open on the device list and the
// bundles (max_items=max) is accepted and auto-creates the nodes; a publish whose options do not match the
// node gets precondition-not-met and changes nothing; disco#info on the account advertises modern PEP.
func TestPEPPublishOptions(t *testing.T) {
	pepBackends(t, func(t *testing.T, st string) {
		srv := pepServer(t, st, "", "alice")
		a := dialPEP(t, srv, "alice", "phone", nodeDevices)
		a.online()
		info := a.iq("get", "alice@localhost", "d1", `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
		for _, want := range []string{"category='pubsub' type='pep'", "#publish-options", "#item-ids", "#multi-items", "#config-node-max"} {
			if !strings.Contains(info, want) {
				t.Errorf("disco#info lacks %s:\n%s", want, info)
			}
		}
		open := publishOptions("pubsub#access_model", "open")
		if r := a.iq("set", "", "p1", publish(nodeDevices, "current", devList, open)); !strings.Contains(r, "type='result'") {
			t.Fatalf("device list publish: %s", r)
		}
		bundle := `<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>AAAA</spk><ik>BBBB</ik></bundle>`
		if r := a.iq("set", "", "p2", publish(nodeBundles, "4711", bundle, publishOptions("pubsub#access_model", "open", "pubsub#max_items", "max"))); !strings.Contains(r, "type='result'") {
			t.Fatalf("bundle publish: %s", r)
		}
		r := a.iq("set", "", "p3", publish(nodeDevices, "current", devList, publishOptions("pubsub#access_model", "presence")))
		if !strings.Contains(r, "type='error'") || !strings.Contains(r, "<conflict") || !strings.Contains(r, "precondition-not-met") {
			t.Fatalf("mismatching publish-options: %s", r)
		}
		items := a.iq("get", "alice@localhost", "i1", `<pubsub xmlns='`+nsPubSub+`'><items node='`+nodeBundles+`'/></pubsub>`)
		if !strings.Contains(items, bundle) {
			t.Fatalf("bundle not served byte for byte: %s", items)
		}
	})
}

// Access models: an outsider reads the open node and is refused the presence and roster nodes; a contact reads
// all three; only the owner publishes.
func TestPEPAccessModels(t *testing.T) {
	pepBackends(t, func(t *testing.T, st string) {
		srv := pepServer(t, st, "", "alice", "bob", "mallory")
		a := dialPEP(t, srv, "alice", "phone")
		b := dialPEP(t, srv, "bob", "phone")
		m := dialPEP(t, srv, "mallory", "pc")
		pepBefriend(a, b)
		for _, model := range []string{"open", "presence", "roster"} {
			r := a.iq("set", "", "p-"+model, publish("urn:test:"+model, "x", `<x xmlns='urn:test'>`+model+`</x>`,
				publishOptions("pubsub#access_model", model)))
			if !strings.Contains(r, "type='result'") {
				t.Fatalf("publish %s: %s", model, r)
			}
		}
		get := func(c *pepClient, model string) string {
			return c.iq("get", "alice@localhost", "g-"+model, `<pubsub xmlns='`+nsPubSub+`'><items node='urn:test:`+model+`'/></pubsub>`)
		}
		if r := get(m, "open"); !strings.Contains(r, ">open</x>") {
			t.Errorf("outsider, open node: %s", r)
		}
		if r := get(m, "presence"); !strings.Contains(r, "<not-authorized") || !strings.Contains(r, "presence-subscription-required") {
			t.Errorf("outsider, presence node: %s", r)
		}
		if r := get(m, "roster"); !strings.Contains(r, "<not-authorized") || !strings.Contains(r, "not-in-roster-group") {
			t.Errorf("outsider, roster node: %s", r)
		}
		for _, model := range []string{"open", "presence", "roster"} {
			if r := get(b, model); !strings.Contains(r, ">"+model+"</x>") {
				t.Errorf("contact, %s node: %s", model, r)
			}
		}
		if r := m.iq("set", "alice@localhost", "forge", publish("urn:test:open", "y", `<x xmlns='urn:test'/>`, "")); !strings.Contains(r, "<forbidden") {
			t.Errorf("outsider publish: %s", r)
		}
	})
}

// Notifications: a contact whose caps carry devices+notify gets the event, one whose caps lack it does not;
// a contact that comes online later gets the last item; max_items trimming and retract notify retractions;
// an explicit subscriber gets the last item on subscription.
func TestPEPNotifications(t *testing.T) {
	pepBackends(t, func(t *testing.T, st string) {
		srv := pepServer(t, st, "", "alice", "bob", "carol", "dave")
		a := dialPEP(t, srv, "alice", "phone", nodeDevices)
		b := dialPEP(t, srv, "bob", "phone", nodeDevices)
		c := dialPEP(t, srv, "carol", "pc", "http://jabber.org/protocol/nick")
		pepBefriend(a, b)
		pepBefriend(a, c)
		a.online()
		b.online()
		c.online()
		// Each has seen the others' presence (and answered the caps queries) once alice's is in.
		b.expect(`<presence [^>]*from='alice@localhost/phone'`, 5*time.Second)
		c.expect(`<presence [^>]*from='alice@localhost/phone'`, 5*time.Second)
		a.expect(`<presence [^>]*from='bob@localhost/phone'`, 5*time.Second)
		a.expect(`<presence [^>]*from='carol@localhost/pc'`, 5*time.Second)
		settle(a, b, c)

		two := publishOptions("pubsub#max_items", "2")
		for i, id := range []string{"d1", "d2", "d3"} {
			r := a.iq("set", "", "p"+id, publish(nodeDevices, id, `<devices xmlns='urn:xmpp:omemo:2'><device id='`+id+`'/></devices>`, two))
			if !strings.Contains(r, "type='result'") {
				t.Fatalf("publish %d: %s", i, r)
			}
		}
		for _, id := range []string{"d1", "d2", "d3"} {
			b.expect(`(?s)<message [^>]*from='alice@localhost'.*`+nsPubSubEvent+`.*<item id='`+id+`'><devices`, 5*time.Second)
		}
		b.expect(`(?s)<message [^>]*from='alice@localhost'.*<retract id='d1'/>`, 5*time.Second)
		a.expect(`<item id='d3'><devices`, 5*time.Second) // the owner's own resource, with +notify
		c.none(nsPubSubEvent, a)

		if r := a.iq("set", "", "r1", `<pubsub xmlns='`+nsPubSub+`'><retract node='`+nodeDevices+`' notify='true'><item id='d2'/></retract></pubsub>`); !strings.Contains(r, "type='result'") {
			t.Fatalf("retract: %s", r)
		}
		b.expect(`(?s)<message [^>]*from='alice@localhost'.*<retract id='d2'/>`, 5*time.Second)

		// Bob's second device comes online: it gets the last item (d3) with its delay.
		b2 := dialPEP(t, srv, "bob", "tablet", nodeDevices)
		b2.online()
		b2.expect(`(?s)<message [^>]*from='alice@localhost'.*<item id='d3'>.*urn:xmpp:delay`, 5*time.Second)

		// An explicit subscription to an open node, by someone outside the roster.
		if r := a.iq("set", "", "blog", publish("urn:test:blog", "b1", `<entry xmlns='urn:test:blog'>hello</entry>`,
			publishOptions("pubsub#access_model", "open"))); !strings.Contains(r, "type='result'") {
			t.Fatalf("blog publish: %s", r)
		}
		d := dialPEP(t, srv, "dave", "pc")
		d.online()
		r := d.iq("set", "alice@localhost", "sub", `<pubsub xmlns='`+nsPubSub+`'><subscribe node='urn:test:blog' jid='`+d.jid+`'/></pubsub>`)
		if !strings.Contains(r, "subscription='subscribed'") {
			t.Fatalf("subscribe: %s", r)
		}
		d.expect(`(?s)<message [^>]*from='alice@localhost'.*hello</entry>`, 5*time.Second)
	})
}

// A user's nodes persist across a restart; limits are enforced with XEP-0060's conditions.
func TestPEPPersistenceAndLimits(t *testing.T) {
	pepBackends(t, func(t *testing.T, st string) {
		srv := pepServer(t, st, "pep:\n  max_nodes: 2\n  max_item_size: 300\n", "alice")
		a := dialPEP(t, srv, "alice", "phone")
		if r := a.iq("set", "", "p1", publish(nodeDevices, "current", devList, publishOptions("pubsub#access_model", "open"))); !strings.Contains(r, "type='result'") {
			t.Fatalf("publish: %s", r)
		}
		big := `<x xmlns='urn:big'>` + strings.Repeat("a", 400) + `</x>`
		if r := a.iq("set", "", "p2", publish("urn:big", "1", big, "")); !strings.Contains(r, "<not-acceptable") || !strings.Contains(r, "payload-too-big") {
			t.Errorf("large item: %s", r)
		}
		if r := a.iq("set", "", "p3", publish("urn:second", "1", `<x xmlns='urn:x'/>`, "")); !strings.Contains(r, "type='result'") {
			t.Fatalf("second node: %s", r)
		}
		if r := a.iq("set", "", "p4", publish("urn:third", "1", `<x xmlns='urn:x'/>`, "")); !strings.Contains(r, "<not-allowed") || !strings.Contains(r, "max-nodes-exceeded") {
			t.Errorf("third node: %s", r)
		}
		srv.Restart()
		a = dialPEP(t, srv, "alice", "phone")
		items := a.iq("get", "", "i1", `<pubsub xmlns='`+nsPubSub+`'><items node='`+nodeDevices+`'/></pubsub>`)
		if !strings.Contains(items, devList) {
			t.Fatalf("after restart: %s", items)
		}
		conf := a.iq("get", "", "c1", `<pubsub xmlns='`+nsPubSubOwner+`'><configure node='`+nodeDevices+`'/></pubsub>`)
		if !regexp.MustCompile(`(?s)pubsub#access_model.*<value>open</value>`).MatchString(conf) {
			t.Fatalf("configuration after restart: %s", conf)
		}
	})
}

// XEP-0411 bookmarks conversion: bookmarks stored through XEP-0402 (PEP, with the publish-options XEP-0402
// asks for) are read through XEP-0048 (private XML, XEP-0049), and the other way round.
func TestBookmarksConversion(t *testing.T) {
	pepBackends(t, func(t *testing.T, st string) {
		srv := pepServer(t, st, "", "alice")
		modern := dialPEP(t, srv, "alice", "modern", "urn:xmpp:bookmarks:1")
		old := dialPEP(t, srv, "alice", "old")
		opts := publishOptions("pubsub#persist_items", "true", "pubsub#max_items", "max",
			"pubsub#send_last_published_item", "never", "pubsub#access_model", "whitelist")
		r := modern.iq("set", "", "b1", publish("urn:xmpp:bookmarks:1", "theplay@conference.localhost",
			`<conference xmlns='urn:xmpp:bookmarks:1' name='The Play' autojoin='true'><nick>JC</nick></conference>`, opts))
		if !strings.Contains(r, "type='result'") {
			t.Fatalf("0402 publish: %s", r)
		}
		got := old.iq("get", "", "g1", `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>`)
		if !strings.Contains(got, `<conference jid='theplay@conference.localhost' name='The Play' autojoin='true'><nick>JC</nick></conference>`) {
			t.Fatalf("0048 read of a 0402 bookmark: %s", got)
		}
		modern.online()
		settle(modern)
		r = old.iq("set", "", "s1", `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>`+
			`<conference jid='theplay@conference.localhost' name='The Play' autojoin='true'><nick>JC</nick></conference>`+
			`<conference jid='council@conference.localhost' name='Council'><nick>Puck</nick></conference></storage></query>`)
		if !strings.Contains(r, "type='result'") {
			t.Fatalf("0048 set: %s", r)
		}
		modern.expect(`(?s)<message [^>]*from='alice@localhost'.*<item id='council@conference.localhost'><conference xmlns='urn:xmpp:bookmarks:1' name='Council'><nick>Puck</nick>`, 5*time.Second)
		items := modern.iq("get", "", "i1", `<pubsub xmlns='`+nsPubSub+`'><items node='urn:xmpp:bookmarks:1'/></pubsub>`)
		if !strings.Contains(items, "theplay@conference.localhost") || !strings.Contains(items, "council@conference.localhost") {
			t.Fatalf("0402 read of 0048 bookmarks: %s", items)
		}
	})
}

// XEP-0398: an avatar set through a vCard (XEP-0054/XEP-0153 client) is the XEP-0084 avatar other clients
// fetch from PEP, and an avatar published through XEP-0084 is the photo of the vCard a vCard-only client reads.
func TestAvatarConversion(t *testing.T) {
	pepBackends(t, func(t *testing.T, st string) {
		srv := pepServer(t, st, "", "alice", "bob")
		a := dialPEP(t, srv, "alice", "pc")
		b := dialPEP(t, srv, "bob", "pc")
		png := base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\nfirst avatar"))
		r := a.iq("set", "", "v1", `<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>`+png+`</BINVAL></PHOTO></vCard>`)
		if !strings.Contains(r, "type='result'") {
			t.Fatalf("vCard set: %s", r)
		}
		meta := b.iq("get", "alice@localhost", "m1", `<pubsub xmlns='`+nsPubSub+`'><items node='urn:xmpp:avatar:metadata' max_items='1'/></pubsub>`)
		id := regexp.MustCompile(`<info [^>]*id='([0-9a-f]{40})'`).FindStringSubmatch(meta)
		if id == nil || !strings.Contains(meta, "type='image/png'") {
			t.Fatalf("XEP-0084 metadata of a vCard photo: %s", meta)
		}
		data := b.iq("get", "alice@localhost", "d1", `<pubsub xmlns='`+nsPubSub+`'><items node='urn:xmpp:avatar:data'><item id='`+id[1]+`'/></items></pubsub>`)
		if !strings.Contains(data, png) {
			t.Fatalf("XEP-0084 data: %s", data)
		}

		gif := base64.StdEncoding.EncodeToString([]byte("GIF89a second avatar"))
		sum := sha1.Sum([]byte("GIF89a second avatar"))
		id2 := hex.EncodeToString(sum[:])
		open := publishOptions("pubsub#access_model", "open")
		if r := a.iq("set", "", "p1", publish("urn:xmpp:avatar:data", id2, `<data xmlns='urn:xmpp:avatar:data'>`+gif+`</data>`, open)); !strings.Contains(r, "type='result'") {
			t.Fatalf("XEP-0084 data publish: %s", r)
		}
		if r := a.iq("set", "", "p2", publish("urn:xmpp:avatar:metadata", id2, `<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='20' id='`+id2+`' type='image/gif'/></metadata>`, open)); !strings.Contains(r, "type='result'") {
			t.Fatalf("XEP-0084 metadata publish: %s", r)
		}
		card := b.iq("get", "alice@localhost", "v2", `<vCard xmlns='vcard-temp'/>`)
		if !strings.Contains(card, "<FN>Alice</FN>") || !strings.Contains(card, "<TYPE>image/gif</TYPE><BINVAL>"+gif+"</BINVAL>") {
			t.Fatalf("vCard after a XEP-0084 publish: %s", card)
		}
	})
}

// OMEMO as the server sees it (XEP-0384, the legacy eu.siacs.conversations.axolotl namespace most clients use
// and urn:xmpp:omemo:2): device lists and bundles are published (access_model=open) and fetched by the
// contact, device list changes are notified, and an encrypted message reaches the recipient, its offline
// store and both archives byte for byte. The payloads are opaque stand-ins: no real Signal session here (that
// needs two real clients, issue 12 acceptance 2); what is checked is that the server never alters them.
func TestOMEMOServerSide(t *testing.T) {
	pepBackends(t, func(t *testing.T, st string) {
		const legacyDevices = "eu.siacs.conversations.axolotl.devicelist"
		srv := pepServer(t, st, "", "alice", "bob")
		a := dialPEP(t, srv, "alice", "phone", legacyDevices, nodeDevices)
		b := dialPEP(t, srv, "bob", "phone", legacyDevices, nodeDevices)
		pepBefriend(a, b)
		open := publishOptions("pubsub#access_model", "open")
		list := `<list xmlns='eu.siacs.conversations.axolotl'><device id='1001'/></list>`
		bundle := `<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic signedPreKeyId='1'>BQ==</signedPreKeyPublic>` +
			`<signedPreKeySignature>c2ln</signedPreKeySignature><identityKey>aWs=</identityKey><prekeys><preKeyPublic preKeyId='1'>cGs=</preKeyPublic></prekeys></bundle>`
		for _, p := range []string{
			publish(legacyDevices, "current", list, open),
			publish("eu.siacs.conversations.axolotl.bundles:1001", "current", bundle, open),
			publish(nodeDevices, "current", `<devices xmlns='urn:xmpp:omemo:2'><device id='1001'/></devices>`, open),
			publish(nodeBundles, "1001", `<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>QQ==</spk><ik>SUs=</ik></bundle>`,
				publishOptions("pubsub#access_model", "open", "pubsub#max_items", "max")),
		} {
			if r := a.iq("set", "", "pub", p); !strings.Contains(r, "type='result'") {
				t.Fatalf("publish: %s", r)
			}
		}
		// Bob comes online: the device lists come as last items; he fetches the bundle.
		b.online()
		b.expect(`(?s)<message [^>]*from='alice@localhost'.*`+regexp.QuoteMeta(list), 5*time.Second)
		b.expect(`(?s)<message [^>]*from='alice@localhost'.*urn:xmpp:omemo:2'><device id='1001'/>`, 5*time.Second)
		got := b.iq("get", "alice@localhost", "bundle", `<pubsub xmlns='`+nsPubSub+`'><items node='eu.siacs.conversations.axolotl.bundles:1001'/></pubsub>`)
		if !strings.Contains(got, bundle) {
			t.Fatalf("bundle fetch: %s", got)
		}
		// Alice adds a device: Bob is notified.
		list2 := `<list xmlns='eu.siacs.conversations.axolotl'><device id='1001'/><device id='1002'/></list>`
		if r := a.iq("set", "", "pub2", publish(legacyDevices, "current", list2, open)); !strings.Contains(r, "type='result'") {
			t.Fatalf("publish: %s", r)
		}
		b.expect(`(?s)<message [^>]*from='alice@localhost'.*`+regexp.QuoteMeta(list2), 5*time.Second)

		// An encrypted message to Alice while she is offline: offline storage, then delivery, unchanged.
		a.conn.Close()
		time.Sleep(200 * time.Millisecond)
		enc := `<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='2002'><key rid='1001' prekey='true'>S0VZ</key>` +
			`<iv>SVY=</iv></header><payload>Q0lQSEVSVEVYVA==</payload></encrypted>`
		b.send(`<message to='alice@localhost' type='chat' id='omemo1'>` + enc + `<encryption xmlns='urn:xmpp:eme:0' namespace='eu.siacs.conversations.axolotl'/>` +
			`<body>I sent you an OMEMO encrypted message</body><store xmlns='urn:xmpp:hints'/></message>`)
		time.Sleep(300 * time.Millisecond)
		a = dialPEP(t, srv, "alice", "phone", legacyDevices, nodeDevices)
		a.online()
		msg := a.expect(`<message [^>]*id='omemo1'`, 5*time.Second)
		if !strings.Contains(msg, enc) {
			t.Fatalf("offline delivery altered the encrypted element:\n%s\nwant it to contain\n%s", msg, enc)
		}
		a.send(`<iq type='set' id='mam'><query xmlns='urn:xmpp:mam:2' queryid='q1'/></iq>`)
		res := a.expect(`(?s)<message [^>]*>.*queryid=.q1.*omemo1`, 5*time.Second)
		if !strings.Contains(res, enc) {
			t.Fatalf("archive altered the encrypted element:\n%s", res)
		}
	})
}

// XEP-0153 with XEP-0398 (issue 12 acceptance 3): an avatar a XEP-0084 client publishes reaches a vCard-only
// contact as the photo hash in presence (the server re-broadcasts the presence) and as the vCard's PHOTO; an
// avatar a vCard-only client sets reaches a PEP contact as a metadata notification, and its presence carries
// the hash.
func TestAvatarXUpdate(t *testing.T) {
	pepBackends(t, func(t *testing.T, st string) {
		srv := pepServer(t, st, "", "alice", "bob")
		a := dialPEP(t, srv, "alice", "pc", "urn:xmpp:avatar:metadata") // a PEP client
		b := dialPEP(t, srv, "bob", "pc")                               // vCard-only
		pepBefriend(a, b)
		a.online()
		b.online()
		settle(a, b)

		img := []byte("\x89PNG\r\n\x1a\nalice's avatar")
		sum := sha1.Sum(img)
		id := hex.EncodeToString(sum[:])
		b64 := base64.StdEncoding.EncodeToString(img)
		open := publishOptions("pubsub#access_model", "open")
		if r := a.iq("set", "", "p1", publish("urn:xmpp:avatar:data", id, `<data xmlns='urn:xmpp:avatar:data'>`+b64+`</data>`, open)); !strings.Contains(r, "type='result'") {
			t.Fatalf("XEP-0084 data publish: %s", r)
		}
		if r := a.iq("set", "", "p2", publish("urn:xmpp:avatar:metadata", id, `<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='`+
			strconv.Itoa(len(img))+`' id='`+id+`' type='image/png'/></metadata>`, open)); !strings.Contains(r, "type='result'") {
			t.Fatalf("XEP-0084 metadata publish: %s", r)
		}
		b.expect(`(?s)^<presence [^>]*from='alice@localhost/pc'.*<x xmlns='vcard-temp:x:update'><photo>`+id+`</photo></x>`, 5*time.Second)
		card := b.iq("get", "alice@localhost", "v1", `<vCard xmlns='vcard-temp'/>`)
		m := regexp.MustCompile(`<PHOTO><TYPE>image/png</TYPE><BINVAL>([^<]+)</BINVAL></PHOTO>`).FindStringSubmatch(card)
		if m == nil {
			t.Fatalf("alice's vCard: %s", card)
		}
		got, err := base64.StdEncoding.DecodeString(m[1])
		if s := sha1.Sum(got); err != nil || hex.EncodeToString(s[:]) != id {
			t.Fatalf("alice's vCard photo does not hash to %s: %s", id, card)
		}

		img2 := []byte("GIF89a bob's avatar")
		sum2 := sha1.Sum(img2)
		id2 := hex.EncodeToString(sum2[:])
		if r := b.iq("set", "", "v2", `<vCard xmlns='vcard-temp'><FN>Bob</FN><PHOTO><TYPE>image/gif</TYPE><BINVAL>`+
			base64.StdEncoding.EncodeToString(img2)+`</BINVAL></PHOTO></vCard>`); !strings.Contains(r, "type='result'") {
			t.Fatalf("bob's vCard set: %s", r)
		}
		a.expect(`(?s)^<message [^>]*from='bob@localhost'.*urn:xmpp:avatar:metadata.*id='`+id2+`'`, 5*time.Second)
		a.expect(`(?s)^<presence [^>]*from='bob@localhost/pc'.*<x xmlns='vcard-temp:x:update'><photo>`+id2+`</photo></x>`, 5*time.Second)
		// Bob's next presence carries the hash too, though his client sends none.
		b.send(`<presence><show>away</show></presence>`)
		a.expect(`(?s)^<presence [^>]*from='bob@localhost/pc'.*<show>away</show>.*<photo>`+id2+`</photo>`, 5*time.Second)
	})
}
