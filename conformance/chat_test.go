package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Two accounts subscribe to each other, see each other's presence and exchange messages both ways.
func TestSubscriptionPresenceAndChat(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "laptop")
	bob := Dial(t, srv, "bob", "bob-secret", "phone")

	for _, c := range []*Client{alice, bob} {
		c.Send(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
		c.Expect(5*time.Second, `id="r1"`, `type="result"`)
		c.Send(`<presence/>`)
		c.Expect(5*time.Second, "<presence", c.JID.String()) // own presence echoed (RFC 6121 4.2.2)
	}

	// alice asks; bob sees the request and a roster push on alice's side shows ask='subscribe'.
	alice.Send(`<presence to='bob@localhost' type='subscribe'/>`)
	alice.Expect(5*time.Second, `jabber:iq:roster`, `ask="subscribe"`, `bob@localhost`)
	bob.Expect(5*time.Second, `type="subscribe"`, `from="alice@localhost"`)
	// bob approves: alice's item becomes 'to' and she receives bob's presence.
	bob.Send(`<presence to='alice@localhost' type='subscribed'/>`)
	bob.Expect(5*time.Second, `jabber:iq:roster`, `subscription="from"`, `alice@localhost`)
	alice.Expect(5*time.Second, `jabber:iq:roster`, `subscription="to"`, `bob@localhost`)
	alice.Expect(5*time.Second, "<presence", `from="`+bob.JID.String()+`"`)
	// and back: bob subscribes to alice.
	bob.Send(`<presence to='alice@localhost' type='subscribe'/>`)
	alice.Expect(5*time.Second, `type="subscribe"`, `from="bob@localhost"`)
	alice.Send(`<presence to='bob@localhost' type='subscribed'/>`)
	alice.Expect(5*time.Second, `jabber:iq:roster`, `subscription="both"`)
	bob.Expect(5*time.Second, `jabber:iq:roster`, `subscription="both"`)
	bob.Expect(5*time.Second, "<presence", `from="`+alice.JID.String()+`"`)

	for i := 0; i < 3; i++ {
		alice.Send(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='a%d'><body>hello bob %d</body></message>`, i, i))
		got := bob.Expect(5*time.Second, fmt.Sprintf("hello bob %d", i))
		if !strings.Contains(got, `from="`+alice.JID.String()+`"`) {
			t.Fatalf("message not stamped with the sender's full JID: %s", got)
		}
		bob.Send(fmt.Sprintf(`<message to='%s' type='chat' id='b%d'><body>hi alice %d</body></message>`, alice.JID, i, i))
		alice.Expect(5*time.Second, fmt.Sprintf("hi alice %d", i), `from="`+bob.JID.String()+`"`)
	}

	// A forged from is a stream error for the forger only; bob keeps working.
	mallory := Dial(t, srv, "alice", "alice-secret", "")
	mallory.Send(`<message from='` + bob.JID.String() + `' to='bob@localhost'><body>forged</body></message>`)
	bob.ExpectNone(500*time.Millisecond, "forged")
	alice.Send(`<message to='bob@localhost' type='chat'><body>after forgery</body></message>`)
	bob.Expect(5*time.Second, "after forgery")

	// bob goes offline: alice sees unavailable.
	bob.S.Close()
	alice.Expect(5*time.Second, `type="unavailable"`, `from="`+bob.JID.String()+`"`)
}

// The roster survives a restart and roster versioning answers an up-to-date client with an empty result.
func TestRosterVersioningAndPersistence(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("carol", "carol-secret")
	c := Dial(t, srv, "carol", "carol-secret", "r")
	c.Send(`<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='dave@localhost' name='Dave'><group>Friends</group></item></query></iq>`)
	c.Expect(5*time.Second, `id="s1"`, `type="result"`)
	c.Send(`<iq type='get' id='g1'><query xmlns='jabber:iq:roster'/></iq>`)
	got := c.Expect(5*time.Second, `id="g1"`)
	if !strings.Contains(got, `name="Dave"`) || !strings.Contains(got, "Friends") {
		t.Fatalf("roster get: %s", got)
	}
	i := strings.Index(got, `ver="`)
	if i < 0 {
		t.Fatalf("no roster version in %s", got)
	}
	ver := got[i+5 : i+5+strings.IndexByte(got[i+5:], '"')]
	srv.Restart()
	c2 := Dial(t, srv, "carol", "carol-secret", "r2")
	c2.Send(fmt.Sprintf(`<iq type='get' id='g2'><query xmlns='jabber:iq:roster' ver='%s'/></iq>`, ver))
	got = c2.Expect(5*time.Second, `id="g2"`)
	if strings.Contains(got, "dave@localhost") || !strings.Contains(got, `type="result"`) {
		t.Fatalf("up-to-date roster version answered with %s, want an empty result", got)
	}
	c2.Send(`<iq type='get' id='g3'><query xmlns='jabber:iq:roster' ver='0'/></iq>`)
	if got := c2.Expect(5*time.Second, `id="g3"`); !strings.Contains(got, "dave@localhost") {
		t.Fatalf("stale roster version answered without the roster: %s", got)
	}
}
