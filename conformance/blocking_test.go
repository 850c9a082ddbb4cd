package conformance

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// XEP-0191: alice blocks mallory. Mallory's messages never reach alice, her archive or her offline store, and
// mallory hears nothing back; mallory's IQs get service-unavailable; alice's message to mallory is refused
// with not-acceptable and the blocked condition; the change is pushed to alice's other resource that asked
// for the list; unblocking restores delivery; the list survives a restart.
func TestBlockingCommand(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("mallory", "mallory-secret")
	a1 := Dial(t, srv, "alice", "alice-secret", "a1")
	a2 := Dial(t, srv, "alice", "alice-secret", "a2")
	mallory := Dial(t, srv, "mallory", "mallory-secret", "m")
	for _, c := range []*Client{a1, a2, mallory} {
		c.Send(`<presence/>`)
	}

	a1.Send(`<iq type='get' id='disco' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if got := a1.Expect(5*time.Second, `id="disco"`); !strings.Contains(got, `var="urn:xmpp:blocking"`) {
		t.Fatalf("account disco#info lacks urn:xmpp:blocking: %s", got)
	}
	a2.Send(`<iq type='get' id='bl0'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)
	if got := a2.Expect(5*time.Second, `id="bl0"`); !strings.Contains(got, `type="result"`) || strings.Contains(got, "<item") {
		t.Fatalf("empty block list answered with %s", got)
	}
	a1.Send(`<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='mallory@localhost'/></block></iq>`)
	a1.Expect(5*time.Second, `id="b1"`, `type="result"`)
	a2.Expect(5*time.Second, `type="set"`, `urn:xmpp:blocking`, `<block`, `mallory@localhost`)

	mallory.Send(`<message to='alice@localhost' type='chat' id='s1'><body>spam to bare</body></message>`)
	mallory.Send(`<message to='alice@localhost/a1' type='chat' id='s2'><body>spam to full</body></message>`)
	mallory.Send(`<iq to='alice@localhost/a1' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>`)
	if got := mallory.Expect(5*time.Second, `id="v1"`); !strings.Contains(got, `type="error"`) || !strings.Contains(got, "service-unavailable") {
		t.Fatalf("iq to a user who blocked the sender answered with %s, want service-unavailable", got)
	}
	a1.Send(`<message to='mallory@localhost' type='chat' id='r1'><body>go away</body></message>`)
	got := a1.Expect(5*time.Second, `id="r1"`, `type="error"`)
	if !strings.Contains(got, "not-acceptable") || !strings.Contains(got, "urn:xmpp:blocking:errors") {
		t.Fatalf("message to a blocked JID bounced with %s, want not-acceptable and <blocked/>", got)
	}
	mallory.ExpectNone(time.Second, "<message")
	a1.ExpectNone(200*time.Millisecond, "spam")
	a2.ExpectNone(200*time.Millisecond, "spam")
	if ids, _ := mamIDs(t, a1, "q1", form("with", "mallory@localhost")); len(ids) != 0 {
		t.Fatalf("archive holds %d messages with the blocked JID, want 0", len(ids))
	}

	// The list survives a restart; a message while alice is offline is not stored for her.
	srv.Restart()
	mallory = Dial(t, srv, "mallory", "mallory-secret", "m")
	mallory.Send(`<presence/>`)
	mallory.Send(`<message to='alice@localhost' type='chat' id='s3'><body>spam while offline</body></message>`)
	mallory.ExpectNone(time.Second, "<message")
	a1 = Dial(t, srv, "alice", "alice-secret", "a1")
	a1.Send(`<iq type='get' id='bl1'><blocklist xmlns='urn:xmpp:blocking'/></iq>`)
	if got := a1.Expect(5*time.Second, `id="bl1"`); !strings.Contains(got, `jid="mallory@localhost"`) {
		t.Fatalf("block list after restart: %s", got)
	}
	a1.Send(`<presence/>`)
	a1.ExpectNone(time.Second, "spam")

	a1.Send(`<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'/></iq>`)
	// The push to the requesting resource itself is queued before the result.
	a1.Expect(5*time.Second, `type="set"`, `<unblock`)
	a1.Expect(5*time.Second, `id="u1"`, `type="result"`)
	mallory.Send(`<message to='alice@localhost' type='chat' id='s4'><body>hello again</body></message>`)
	a1.Expect(5*time.Second, "hello again")
	a1.Send(`<message to='mallory@localhost' type='chat' id='r2'><body>welcome back</body></message>`)
	mallory.Expect(5*time.Second, "welcome back")
}

// Debian's slixmpp (plugin xep_0191) as alice: it gets its block list, blocks mallory, sees mallory in the list,
// gets not-acceptable with the blocked condition when it messages mallory, and unblocks mallory; mallory's
// message while blocked never reaches it.
func TestBlockingSlixmpp(t *testing.T) {
	requireSlixmpp(t)
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("mallory", "mallory-secret")
	mallory := Dial(t, srv, "mallory", "mallory-secret", "m")
	mallory.Send(`<presence/>`)

	script, _ := filepath.Abs(filepath.Join("peers", "slix_blocking.py"))
	p := startPeer(t, "slixmpp", exec.Command(debianPython, script, "--jid", "alice@localhost", "--password", "alice-secret",
		"--port", port(t, srv.Addrs["c2s"]), "--ca", filepath.Join(srv.Dir, "tls", "localhost.crt"),
		"--peer", "mallory@localhost", "--pause", "1", "--timeout", "20"))
	p.waitLine(25*time.Second, "OK blocked mallory@localhost")
	mallory.Send(`<message to='alice@localhost' type='chat' id='s1'><body>spam while blocked</body></message>`)
	p.wait(30 * time.Second)
	mallory.ExpectNone(500*time.Millisecond, "to a blocked contact")
	out := p.Output()
	want := "OK blocklist -\nOK blocked mallory@localhost\nOK blocklist mallory@localhost\nOK refused not-acceptable yes\n" +
		"OK unblocked\nOK blocklist -\nDONE"
	if out != want {
		t.Errorf("slixmpp printed:\n%s\nwant:\n%s", out, want)
	}
}

// XEP-0191 section 3.3: when alice blocks mallory, with whom she has a mutual subscription, mallory sees alice
// go offline; from then on neither sees the other's presence; on unblocking, mallory gets alice's current
// presence, and her next one.
func TestBlockingHidesPresence(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("mallory", "mallory-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "a")
	mallory := Dial(t, srv, "mallory", "mallory-secret", "m")
	goOnline(alice)
	goOnline(mallory)
	subscribeApproved(alice, mallory)
	subscribeApproved(mallory, alice)
	alice.Send(`<presence><show>chat</show></presence>`)
	mallory.Expect(5*time.Second, "<presence", `from="`+alice.JID.String()+`"`, ">chat</show>")

	alice.Send(`<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='mallory@localhost'/></block></iq>`)
	alice.Expect(5*time.Second, `id="b1"`, `type="result"`)
	mallory.Expect(5*time.Second, "<presence", `from="`+alice.JID.String()+`"`, `type="unavailable"`)

	mallory.Send(`<presence><show>away</show></presence>`)
	alice.Send(`<presence><show>dnd</show></presence>`)
	mallory.ExpectNone(time.Second, ">dnd</show>")
	alice.ExpectNone(200*time.Millisecond, ">away</show>")

	alice.Send(`<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'><item jid='mallory@localhost'/></unblock></iq>`)
	alice.Expect(5*time.Second, `id="u1"`, `type="result"`)
	// XEP-0191 section 3.4: the unblocked contact gets alice's current presence at once.
	mallory.Expect(5*time.Second, "<presence", `from="`+alice.JID.String()+`"`, ">dnd</show>")
	alice.Send(`<presence><show>xa</show></presence>`)
	mallory.Expect(5*time.Second, "<presence", `from="`+alice.JID.String()+`"`, ">xa</show>")
}
