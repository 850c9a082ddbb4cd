package conformance

import (
	"strings"
	"testing"
	"time"
)

// Issue 19 item 2. bob's phone has XEP-0198 resumption and loses its network: the session hibernates. alice's
// message reaches the hibernating session and the server acknowledges it to alice (<a h/>). Then the server
// is stopped with SIGTERM and started again on the same data directory. bob logs in fresh (no resumption: the
// session died with the process) and gets the message from offline storage, once, with a delay stamp. With
// archiving on the message was also in bob's archive before the fix, but a client that does not query MAM never
// saw it; with archiving off (for the server, or by bob's preferences) it was lost.
func TestDefectShutdownHandsHibernatedMessagesToOffline(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		never      bool // bob's archive preferences: archive nothing (XEP-0313 default='never')
	}{
		{"archive", "", false},
		{"server-archive-off", "archive:\n  retention: 0s\n", false},
		{"account-archive-off", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := Start(t, tc.yaml)
			srv.AddUser("alice", "alice-secret")
			srv.AddUser("bob", "bob-secret")
			bob := loginSM(t, srv, "bob", "bob-secret")
			bob.bindAndEnable() // and available presence
			if tc.never {
				bob.send(`<iq type='set' id='prefs'><prefs xmlns='urn:xmpp:mam:2' default='never'/></iq>`)
				bob.await(`<iq[^>]*(type='result'[^>]*id='prefs'|id='prefs'[^>]*type='result')`, 5*time.Second)
			}
			bob.send(`<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`)
			bob.await(`id='p'`, 5*time.Second) // the presence was handled before the cut
			cut(bob.conn)
			time.Sleep(300 * time.Millisecond) // the server notices and the session hibernates

			alice := loginSM(t, srv, "alice", "alice-secret")
			alice.bindAndEnable() // her presence is stanza 1
			alice.send(`<message to='bob@localhost' type='chat' id='s1'><body>before the restart</body></message>` +
				`<r xmlns='urn:xmpp:sm:3'/>`)
			alice.await(`<a xmlns='urn:xmpp:sm:3' h='2'/>`, 5*time.Second) // the server took responsibility

			srv.Restart() // SIGTERM, then the same data directory
			bobAgain := Dial(t, srv, "bob", "bob-secret", "desktop")
			bobAgain.Send(`<presence/>`)
			got := bobAgain.Expect(5*time.Second, "before the restart")
			if !strings.Contains(got, "urn:xmpp:delay") {
				t.Errorf("not from offline storage (no delay stamp): %s", got)
			}
			bobAgain.ExpectNone(time.Second, "before the restart")
		})
	}
}
