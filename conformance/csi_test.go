package conformance

import (
	"strings"
	"testing"
	"time"
)

// While bob's client is inactive (XEP-0352) presence updates and chat states wait; a message with a body is
// delivered at once, after what was held, in order; becoming active flushes the rest.
func TestCSIHoldsWhatCanWait(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := loginSM(t, srv, "bob", "bob-secret")
	bobJID, _ := bob.bindAndEnableNoPresence()
	bob.send(`<presence/>`)
	bob.await(`<presence[^>]*/?>`, 5*time.Second)
	alice := Dial(t, srv, "alice", "alice-secret", "")
	alice.Send(`<presence/>`)

	bob.send(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	time.Sleep(200 * time.Millisecond)
	alice.Send(`<message to='` + bobJID + `' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	alice.Send(`<presence to='` + bobJID + `'><show>away</show></presence>`)
	alice.Send(`<presence to='` + bobJID + `'><show>dnd</show></presence>`)
	// Nothing arrives while inactive.
	bob.conn.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
	b := make([]byte, 4096)
	if n, _ := bob.conn.Read(b); n > 0 && !strings.Contains(string(b[:n]), "<r ") {
		t.Fatalf("inactive client got %q", b[:n])
	}
	alice.Send(`<message to='` + bobJID + `' type='chat'><body>urgent</body></message>`)
	got := bob.await(`(?s)(.*<body>urgent</body>)`, 5*time.Second)[1]
	comp, dnd, away := strings.Index(got, "composing"), strings.Index(got, "<show>dnd</show>"), strings.Index(got, "<show>away</show>")
	if comp < 0 || dnd < 0 {
		t.Fatalf("held stanzas were not flushed before the message: %s", got)
	}
	if away >= 0 {
		t.Fatalf("superseded presence was delivered: %s", got)
	}
	bob.send(`<active xmlns='urn:xmpp:csi:0'/>`)
	alice.Send(`<message to='` + bobJID + `' type='chat'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	bob.await(`paused`, 5*time.Second)
}
