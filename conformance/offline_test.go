package conformance

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Past offline.max_per_account the sender gets a clear error and nothing more is stored; what was stored is
// delivered.
func TestOfflineCapBouncesWithClearError(t *testing.T) {
	srv := Start(t, "offline:\n  max_per_account: 3\n")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "")
	for i := 0; i < 4; i++ {
		alice.Send(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='o%d'><body>queued %d</body></message>`, i, i))
	}
	got := alice.Expect(5*time.Second, `id="o3"`, `type="error"`)
	if !strings.Contains(got, "resource-constraint") || !strings.Contains(got, "offline storage is full") {
		t.Fatalf("fourth message bounced with %s, want resource-constraint and a text saying why", got)
	}
	alice.ExpectNone(500*time.Millisecond, `type="error"`)
	bob := Dial(t, srv, "bob", "bob-secret", "")
	bob.Send(`<presence/>`)
	for i := 0; i < 3; i++ {
		bob.Expect(5*time.Second, fmt.Sprintf(">queued %d</body>", i))
	}
	bob.ExpectNone(time.Second, "queued 3")
}
