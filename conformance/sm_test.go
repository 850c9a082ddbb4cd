package conformance

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// smClient is a raw client that speaks XEP-0198 by hand, so the test controls exactly what is acknowledged.
type smClient struct {
	t    *testing.T
	conn net.Conn
	buf  string
}

func (c *smClient) send(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// await reads until re matches the unread input and returns the match; the input up to the match is consumed.
func (c *smClient) await(re string, d time.Duration) []string {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(d)
	b := make([]byte, 8192)
	for {
		if m := rx.FindStringSubmatchIndex(c.buf); m != nil {
			out := make([]string, len(m)/2)
			for i := range out {
				if m[2*i] >= 0 {
					out[i] = c.buf[m[2*i]:m[2*i+1]]
				}
			}
			c.buf = c.buf[m[1]:]
			return out
		}
		c.conn.SetReadDeadline(deadline)
		n, err := c.conn.Read(b)
		c.buf += string(b[:n])
		if err != nil {
			c.t.Fatalf("waiting for %s: %v; unread input:\n%s", re, err, c.buf)
		}
	}
}

// loginSM logs in over TLS with PLAIN and returns the client before bind or resume.
func loginSM(t *testing.T, srv *Server, user, password string) *smClient {
	t.Helper()
	c := rawTLS(t, srv)
	sc := &smClient{t: t, conn: c}
	sc.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + plainB64(user, password) + `</auth>`)
	sc.await(`<success[^>]*>`, 5*time.Second)
	sc.send(streamHeader)
	feats := sc.await(`<stream:features>(.*?)</stream:features>`, 5*time.Second)
	if !strings.Contains(feats[1], "urn:xmpp:sm:3") {
		t.Fatalf("no stream management feature in %s", feats[1])
	}
	return sc
}

func (c *smClient) bindAndEnable() (full, smID string) {
	c.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
	full = c.await(`<jid>([^<]+)</jid>`, 5*time.Second)[1]
	c.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
	smID = c.await(`<enabled xmlns='urn:xmpp:sm:3' id='([^']+)' resume='true'`, 5*time.Second)[1]
	c.send(`<presence/>`)
	return full, smID
}

// The recipient's TCP connection is cut without a stream close; it resumes and receives every message once.
func TestResumeAfterConnectionDropDeliversEverythingOnce(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := loginSM(t, srv, "bob", "bob-secret")
	bobJID, smID := bob.bindAndEnable()
	alice := Dial(t, srv, "alice", "alice-secret", "")

	const n = 30
	for i := 0; i < 10; i++ {
		alice.Send(fmt.Sprintf(`<message to='%s' type='chat' id='m%d'><body>msg %d</body></message>`, bobJID, i, i))
	}
	for i := 0; i < 10; i++ {
		bob.await(fmt.Sprintf(`<body>msg %d</body>`, i), 5*time.Second)
	}
	// bob acknowledges the first 5 only (the presence echo counts too: stanza 1 is his own presence).
	bob.send(`<a xmlns='urn:xmpp:sm:3' h='6'/>`)
	time.Sleep(100 * time.Millisecond)
	cut(bob.conn) // cut: no </stream:stream>, no TLS close_notify

	for i := 10; i < n; i++ {
		alice.Send(fmt.Sprintf(`<message to='%s' type='chat' id='m%d'><body>msg %d</body></message>`, bobJID, i, i))
	}
	time.Sleep(300 * time.Millisecond)

	bob2 := loginSM(t, srv, "bob", "bob-secret")
	bob2.send(fmt.Sprintf(`<resume xmlns='urn:xmpp:sm:3' previd='%s' h='6'/>`, smID))
	bob2.await(`<resumed xmlns='urn:xmpp:sm:3' previd='[^']+' h='\d+'/>`, 5*time.Second)
	// Messages 5..29 arrive, in order, each once; 0..4 (acknowledged) do not come again.
	got := bob2.await(`(?s)(.*<body>msg 29</body>)`, 10*time.Second)[1]
	for i := 0; i < n; i++ {
		c := strings.Count(got, fmt.Sprintf("<body>msg %d</body>", i))
		want := 1
		if i < 5 {
			want = 0
		}
		if c != want {
			t.Errorf("msg %d delivered %d times after resumption, want %d", i, c, want)
		}
	}
	last := -1
	for _, m := range regexp.MustCompile(`<body>msg (\d+)</body>`).FindAllStringSubmatch(got, -1) {
		var k int
		fmt.Sscan(m[1], &k)
		if k <= last {
			t.Errorf("out of order: msg %d after msg %d", k, last)
		}
		last = k
	}
	// The resumed session keeps working both ways.
	bob2.send(`<message to='` + alice.JID.String() + `' type='chat'><body>back</body></message>`)
	alice.Expect(5*time.Second, "back")
}

// A session that is not resumed in time is ended, and what it never acknowledged goes to offline storage.
func TestUnresumedSessionSendsUnackedToOffline(t *testing.T) {
	srv := Start(t, "c2s:\n  resume_timeout: 1s\n")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := loginSM(t, srv, "bob", "bob-secret")
	bobJID, _ := bob.bindAndEnable()
	alice := Dial(t, srv, "alice", "alice-secret", "")
	for i := 0; i < 3; i++ {
		alice.Send(fmt.Sprintf(`<message to='%s' type='chat' id='u%d'><body>unacked %d</body></message>`, bobJID, i, i))
	}
	bob.await(`<body>unacked 2</body>`, 5*time.Second)
	cut(bob.conn)
	time.Sleep(2 * time.Second) // past resume_timeout

	bobAgain := Dial(t, srv, "bob", "bob-secret", "")
	bobAgain.Send(`<presence/>`)
	for i := 0; i < 3; i++ {
		got := bobAgain.Expect(5*time.Second, fmt.Sprintf("unacked %d", i))
		if !strings.Contains(got, "urn:xmpp:delay") {
			t.Errorf("offline copy has no delay stamp: %s", got)
		}
	}
	bobAgain.ExpectNone(500*time.Millisecond, "unacked")
}

// <r/> is answered with the number of stanzas handled, and a too-high <a/> is a stream error.
func TestAckCounting(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("bob", "bob-secret")
	bob := loginSM(t, srv, "bob", "bob-secret")
	bob.bindAndEnable() // presence counts as 1 handled
	bob.send(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq><r xmlns='urn:xmpp:sm:3'/>`)
	if h := bob.await(`<a xmlns='urn:xmpp:sm:3' h='(\d+)'/>`, 5*time.Second)[1]; h != "2" {
		t.Fatalf("h = %s, want 2", h)
	}
	bob.send(`<a xmlns='urn:xmpp:sm:3' h='1000'/>`)
	bob.await(`<handled-count-too-high`, 5*time.Second)
}

func (c *smClient) bindAndEnableNoPresence() (full, smID string) {
	c.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
	full = c.await(`<jid>([^<]+)</jid>`, 5*time.Second)[1]
	c.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
	smID = c.await(`<enabled xmlns='urn:xmpp:sm:3' id='([^']+)' resume='true'`, 5*time.Second)[1]
	return full, smID
}

// XEP-0198 counts inbound stanzas from <enable/> on: what the client sent before (here its presence and an IQ,
// as Converse.js does) is not in h, or the client sees a handled count higher than what it sent.
func TestAckCountStartsAtEnable(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("bob", "bob-secret")
	bob := loginSM(t, srv, "bob", "bob-secret")
	bob.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
	bob.await(`<jid>([^<]+)</jid>`, 5*time.Second)
	bob.send(`<presence/><iq type='get' id='p0'><ping xmlns='urn:xmpp:ping'/></iq>`)
	bob.await(`id='p0'`, 5*time.Second)
	bob.send(`<enable xmlns='urn:xmpp:sm:3'/>`)
	bob.await(`<enabled xmlns='urn:xmpp:sm:3'`, 5*time.Second)
	bob.send(`<r xmlns='urn:xmpp:sm:3'/>`)
	if h := bob.await(`<a xmlns='urn:xmpp:sm:3' h='(\d+)'/>`, 5*time.Second)[1]; h != "0" {
		t.Fatalf("h = %s right after enable, want 0 (stanzas before <enable/> are not counted)", h)
	}
	bob.send(`<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq><r xmlns='urn:xmpp:sm:3'/>`)
	if h := bob.await(`<a xmlns='urn:xmpp:sm:3' h='(\d+)'/>`, 5*time.Second)[1]; h != "1" {
		t.Fatalf("h = %s after one stanza, want 1", h)
	}
}

// Regression test (issue 19, item 1): the unacknowledged messages of a session that dropped and was never
// resumed were archived a second time, under new stanza-ids, when they were routed again to offline storage.
// The recipient's archive holds each message once, under the stanza-id it was delivered with.
func TestDefectArchivedOnceAfterUnresumedSM(t *testing.T) {
	srv := Start(t, "c2s:\n  resume_timeout: 1s\n")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := loginSM(t, srv, "bob", "bob-secret")
	bobJID, _ := bob.bindAndEnable()
	alice := Dial(t, srv, "alice", "alice-secret", "")
	const n = 3
	var live []string
	for i := 0; i < n; i++ {
		alice.Send(fmt.Sprintf(`<message to='%s' type='chat' id='a%d'><body>archived once %d</body></message>`, bobJID, i, i))
	}
	for i := 0; i < n; i++ {
		m := bob.await(fmt.Sprintf(`<body>archived once %d</body><stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='([^']+)'/>`, i), 5*time.Second)
		live = append(live, m[1])
	}
	cut(bob.conn)               // nothing acknowledged
	time.Sleep(2 * time.Second) // past resume_timeout: the session ends and its unacked messages go offline

	bobAgain := Dial(t, srv, "bob", "bob-secret", "")
	bobAgain.Send(`<presence/>`)
	for i := 0; i < n; i++ {
		bobAgain.Expect(5*time.Second, fmt.Sprintf("archived once %d", i))
	}
	ids, _ := mamIDs(t, bobAgain, "q1", "")
	if strings.Join(ids, " ") != strings.Join(live, " ") {
		t.Errorf("bob's archive holds %q, want each message once under the stanza-id it was delivered with %q", ids, live)
	}
}
