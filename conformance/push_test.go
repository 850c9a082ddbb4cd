package conformance

import (
	"encoding/xml"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// XEP-0357 Push Notifications. The "app server" (XMPP Push Service) here is a local account's session: the jid
// in <enable/> may be any JID, and a local full JID is routed to that session. It is a raw client, so that it can
// bind the fixed resource "app" (mellium's client binds a resource of the server's choosing), keep it across a
// server restart, and answer each publish with a result as a pubsub service accepting it would.

const appServerJID = "pushsvc@localhost/app"

type appServer struct{ *smClient }

func dialAppServer(t *testing.T, srv *Server) *appServer {
	t.Helper()
	c := loginSM(t, srv, "pushsvc", "pushsvc-secret")
	c.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>app</resource></bind></iq>`)
	c.await(`<jid>`+regexp.QuoteMeta(appServerJID)+`</jid>`, 5*time.Second)
	return &appServer{c}
}

var attrRe = regexp.MustCompile(`(\w+)='([^']*)'`)

// expectPublish waits for an IQ set, answers it with an empty result and returns it.
func (a *appServer) expectPublish(d time.Duration) string {
	a.t.Helper()
	raw := a.await(`(?s)<iq [^>]*type='set'[^>]*>.*?</iq>`, d)[0]
	attrs := map[string]string{}
	for _, m := range attrRe.FindAllStringSubmatch(raw[:strings.IndexByte(raw, '>')], -1) {
		attrs[m[1]] = m[2]
	}
	a.send(`<iq type='result' id='` + attrs["id"] + `' to='` + attrs["from"] + `'/>`)
	return raw
}

// rejectPublish waits for an IQ set and answers it with an item-not-found error, as a push service does for a
// node that no longer exists.
func (a *appServer) rejectPublish(d time.Duration) string {
	a.t.Helper()
	raw := a.await(`(?s)<iq [^>]*type='set'[^>]*>.*?</iq>`, d)[0]
	attrs := map[string]string{}
	for _, m := range attrRe.FindAllStringSubmatch(raw[:strings.IndexByte(raw, '>')], -1) {
		attrs[m[1]] = m[2]
	}
	a.send(`<iq type='error' id='` + attrs["id"] + `' to='` + attrs["from"] + `'><error type='cancel'>` +
		`<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
	return raw
}

// expectNoPublish fails if a publish arrives within d.
func (a *appServer) expectNoPublish(d time.Duration) {
	a.t.Helper()
	deadline := time.Now().Add(d)
	b := make([]byte, 8192)
	for time.Now().Before(deadline) {
		a.conn.SetReadDeadline(deadline)
		n, err := a.conn.Read(b)
		a.buf += string(b[:n])
		if strings.Contains(a.buf, "<pubsub") {
			a.t.Fatalf("unexpected publish:\n%s", a.buf)
		}
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				break
			}
			a.t.Fatal(err)
		}
	}
	a.conn.SetReadDeadline(time.Time{})
}

// pushNotification is a publish as the app server reads it.
type pushNotification struct {
	From    string `xml:"from,attr"`
	Publish struct {
		Node   string `xml:"node,attr"`
		Fields []struct {
			Var    string   `xml:"var,attr"`
			Values []string `xml:"value"`
		} `xml:"item>notification>x>field"`
	} `xml:"pubsub>publish"`
	Options []struct {
		Var    string   `xml:"var,attr"`
		Values []string `xml:"value"`
	} `xml:"pubsub>publish-options>x>field"`
}

func parseNotification(t *testing.T, raw string) (n pushNotification, fields, options map[string]string) {
	t.Helper()
	if err := xml.Unmarshal([]byte(raw), &n); err != nil {
		t.Fatalf("notification: %v\n%s", err, raw)
	}
	fields, options = make(map[string]string), make(map[string]string)
	for _, f := range n.Publish.Fields {
		fields[f.Var] = strings.Join(f.Values, "\n")
	}
	for _, f := range n.Options {
		options[f.Var] = strings.Join(f.Values, "\n")
	}
	return n, fields, options
}

const enableBobPhone = `<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' jid='` + appServerJID + `' node='bob-phone'>` +
	`<x xmlns='jabber:x:data' type='submit'>` +
	`<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
	`<field var='secret'><value>hunter2</value></field></x></enable></iq>`

// bob enables push and goes offline; alice's message is announced to the app server with a count and the
// sender, without the body; a chat state is not announced; the registration survives a restart; after bob
// disables it nothing is announced.
func TestPushNotificationForOfflineAccount(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	srv.AddUser("pushsvc", "pushsvc-secret")
	app := dialAppServer(t, srv)

	bob := Dial(t, srv, "bob", "bob-secret", "phone")
	bob.Send(`<iq type='get' id='d1' to='bob@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	bob.Expect(5*time.Second, `id="d1"`, `type="result"`, `var="urn:xmpp:push:0"`)
	bob.Send(enableBobPhone)
	bob.Expect(5*time.Second, `id="e1"`, `type="result"`)
	bob.S.Close()
	time.Sleep(300 * time.Millisecond) // the server ends bob's session

	alice := Dial(t, srv, "alice", "alice-secret", "laptop")
	alice.Send(`<message to='bob@localhost' type='chat' id='m1'><body>the eagle lands at noon</body></message>`)
	got := app.expectPublish(5 * time.Second)
	n, fields, options := parseNotification(t, got)
	if n.From != "bob@localhost" || n.Publish.Node != "bob-phone" {
		t.Errorf("notification from %q to node %q, want the user's bare JID and bob-phone", n.From, n.Publish.Node)
	}
	if fields["FORM_TYPE"] != "urn:xmpp:push:summary" || fields["message-count"] != "1" || fields["last-message-sender"] != "alice@localhost" {
		t.Errorf("summary form %v", fields)
	}
	if strings.Contains(got, "eagle") {
		t.Errorf("the body reached the app server by default:\n%s", got)
	}
	if options["secret"] != "hunter2" {
		t.Errorf("publish-options %v, want the enable form's secret", options)
	}

	// A chat state alone wakes nobody.
	alice.Send(`<message to='bob@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	app.expectNoPublish(time.Second)

	// The registration is stored: after a restart it still works.
	srv.Restart()
	app = dialAppServer(t, srv)
	alice = Dial(t, srv, "alice", "alice-secret", "laptop")
	alice.Send(`<message to='bob@localhost' type='chat' id='m2'><body>after restart</body></message>`)
	if _, fields, _ := parseNotification(t, app.expectPublish(5*time.Second)); fields["last-message-sender"] != "alice@localhost" {
		t.Errorf("after restart: summary %v", fields)
	}

	// bob disables it: no more notifications.
	bob = Dial(t, srv, "bob", "bob-secret", "phone")
	bob.Send(`<iq type='set' id='x1'><disable xmlns='urn:xmpp:push:0' jid='` + appServerJID + `' node='bob-phone'/></iq>`)
	bob.Expect(5*time.Second, `id="x1"`, `type="result"`)
	bob.S.Close()
	time.Sleep(300 * time.Millisecond)
	alice.Send(`<message to='bob@localhost' type='chat' id='m3'><body>anyone?</body></message>`)
	app.expectNoPublish(1500 * time.Millisecond)
}

// With push.include_body the body goes to the app server.
func TestPushNotificationIncludesBodyWhenConfigured(t *testing.T) {
	srv := Start(t, "push:\n  include_body: true\n")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	srv.AddUser("pushsvc", "pushsvc-secret")
	app := dialAppServer(t, srv)
	bob := Dial(t, srv, "bob", "bob-secret", "phone")
	bob.Send(enableBobPhone)
	bob.Expect(5*time.Second, `id="e1"`, `type="result"`)
	bob.S.Close()
	time.Sleep(300 * time.Millisecond)

	alice := Dial(t, srv, "alice", "alice-secret", "laptop")
	alice.Send(`<message to='bob@localhost' type='chat'><body>fish &amp; chips</body></message>`)
	_, fields, _ := parseNotification(t, app.expectPublish(5*time.Second))
	if fields["last-message-body"] != "fish & chips" {
		t.Errorf("last-message-body = %q, want the body", fields["last-message-body"])
	}
}

// bob's phone has XEP-0198 resumption and push enabled. While it is connected, messages reach it and nothing
// is published; once its TCP connection is cut the session hibernates, and the next message is announced.
func TestPushNotificationForHibernatingSession(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	srv.AddUser("pushsvc", "pushsvc-secret")
	app := dialAppServer(t, srv)

	bob := loginSM(t, srv, "bob", "bob-secret")
	bobJID, _ := bob.bindAndEnable()
	bob.send(`<iq type='set' id='pe'><enable xmlns='urn:xmpp:push:0' jid='` + appServerJID + `' node='sm-node'/></iq>`)
	bob.await(`<iq[^>]*(type='result'[^>]*id='pe'|id='pe'[^>]*type='result')`, 5*time.Second)

	alice := Dial(t, srv, "alice", "alice-secret", "laptop")
	alice.Send(`<message to='` + bobJID + `' type='chat'><body>are you there</body></message>`)
	bob.await(`<body>are you there</body>`, 5*time.Second)
	app.expectNoPublish(time.Second)

	cut(bob.conn)
	time.Sleep(300 * time.Millisecond) // the server notices and the session hibernates

	alice.Send(`<message to='bob@localhost' type='chat'><body>wake up</body></message>`)
	got := app.expectPublish(5 * time.Second)
	n, fields, _ := parseNotification(t, got)
	if n.From != "bob@localhost" || n.Publish.Node != "sm-node" || fields["message-count"] != "1" || fields["last-message-sender"] != "alice@localhost" {
		t.Errorf("notification from %q with %v", n.From, fields)
	}
	if strings.Contains(got, "wake up") {
		t.Errorf("the body reached the app server by default:\n%s", got)
	}
}

// The app server answers a notification with an error: the registration is disabled (XEP-0357 section 7.1) and
// the next message is not announced. Throttling is off, so that a notification would come at once.
func TestPushRegistrationDisabledByAppServerError(t *testing.T) {
	srv := Start(t, "push:\n  min_interval: -1s\n")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	srv.AddUser("pushsvc", "pushsvc-secret")
	app := dialAppServer(t, srv)
	bob := Dial(t, srv, "bob", "bob-secret", "phone")
	bob.Send(enableBobPhone)
	bob.Expect(5*time.Second, `id="e1"`, `type="result"`)
	bob.S.Close()
	time.Sleep(300 * time.Millisecond)

	alice := Dial(t, srv, "alice", "alice-secret", "laptop")
	alice.Send(`<message to='bob@localhost' type='chat'><body>one</body></message>`)
	app.rejectPublish(5 * time.Second)
	time.Sleep(200 * time.Millisecond) // the server takes the error
	alice.Send(`<message to='bob@localhost' type='chat'><body>two</body></message>`)
	app.expectNoPublish(1500 * time.Millisecond)
}
