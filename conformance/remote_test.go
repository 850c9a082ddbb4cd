package conformance

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 19 item 6. Without server-to-server, alice subscribes to a contact on another server. Before the fix
// the request vanished: no error, and the roster item stayed ask='subscribe' forever. Now the server answers
// with a presence error (remote-server-not-found) that the client can show, and the roster item is no longer
// pending: the roster push after the error and the roster itself show no ask.
func TestDefectRemoteSubscriptionBouncesAndIsNotPending(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "laptop")
	goOnline(alice)

	alice.Send(`<presence to='romeo@unreachable.example' type='subscribe' id='sub1'/>`)
	// RFC 6121 3.1.2: the item is created pending, then the bounce cancels the request.
	alice.Expect(5*time.Second, "jabber:iq:roster", `jid="romeo@unreachable.example"`, `ask="subscribe"`)
	push := alice.Expect(5*time.Second, "jabber:iq:roster", `jid="romeo@unreachable.example"`)
	if strings.Contains(push, "ask=") || !strings.Contains(push, `subscription="none"`) {
		t.Errorf("roster push after the bounce: %s, want subscription none without ask", push)
	}
	e := alice.Expect(5*time.Second, "<presence", `type="error"`)
	for _, want := range []string{`from="romeo@unreachable.example"`, `id="sub1"`, "remote-server-not-found", `type="cancel"`} {
		if !strings.Contains(e, want) {
			t.Errorf("error presence lacks %s: %s", want, e)
		}
	}

	alice.Send(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	r := alice.Expect(5*time.Second, `id="r1"`, `type="result"`)
	if !strings.Contains(r, `jid="romeo@unreachable.example"`) || strings.Contains(r, "ask=") {
		t.Errorf("roster after the bounce: %s, want romeo without ask", r)
	}

	// Still so after a restart (the cleared ask is stored), and nothing is redelivered.
	srv.Restart()
	alice = Dial(t, srv, "alice", "alice-secret", "laptop")
	alice.Send(`<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>`)
	if r := alice.Expect(5*time.Second, `id="r2"`, `type="result"`); strings.Contains(r, "ask=") {
		t.Errorf("roster after a restart: %s", r)
	}
}

// The same with slixmpp, a client nobody here wrote: it sees the subscription request fail with
// remote-server-not-found (its presence_error event), and the roster the server returns afterwards has the
// contact without a pending ask.
func TestSlixmppRemoteSubscriptionBounces(t *testing.T) {
	requireSlixmpp(t)
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	script, _ := filepath.Abs(filepath.Join("peers", "slix_remote_subscribe.py"))
	p := startPeer(t, "slixmpp", exec.Command(debianPython, script, "--jid", "alice@localhost", "--password", "alice-secret",
		"--port", port(t, srv.Addrs["c2s"]), "--ca", filepath.Join(srv.Dir, "tls", "localhost.crt"),
		"--contact", "romeo@unreachable.example", "--timeout", "20"))
	p.wait(30 * time.Second)
	out := p.Output()
	for _, want := range []string{"OK presence-error romeo@unreachable.example remote-server-not-found",
		"OK roster-item romeo@unreachable.example subscription=none ask=none", "DONE"} {
		if !strings.Contains(out, want) {
			t.Errorf("slixmpp did not print %q; stdout:\n%s", want, out)
		}
	}
}
