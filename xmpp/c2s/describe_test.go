package c2s

import (
	"net"
	"sync"
	"testing"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/router"
)

// watchingDirectory is a Local directory that records the descriptions a cluster directory would republish.
type watchingDirectory struct {
	*router.Local
	mu   sync.Mutex
	seen []module.Resource
}

func (d *watchingDirectory) Update(s module.Session) {
	d.mu.Lock()
	d.seen = append(d.seen, s.Describe())
	d.mu.Unlock()
}

func (d *watchingDirectory) last() module.Resource {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[len(d.seen)-1]
}

// TestSessionDescriptionReachesDirectory checks that a session's description (module.Resource) follows its
// state, and that every change is reported to the router's directory, which a cluster directory needs to
// republish it.
func TestSessionDescriptionReachesDirectory(t *testing.T) {
	srv := benchServer(t)
	dir := &watchingDirectory{Local: router.NewLocal()}
	srv.router.SetDirectory(dir)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := benchConn(srv, a, "alice@example.net/desk")
	s := c.sess
	if d := dir.last(); !d.Available || !d.JID.Equal(s.jid) || d.Node != "" {
		t.Fatalf("after presence: %+v, want alice/desk available on this node", d)
	}
	s.SetCarbons(true)
	if !dir.last().Carbons {
		t.Error("carbons enabled, description says not")
	}
	s.SetCaps("Np8FkG9MoSxk3rQYsYw0eEkgtqA=")
	if dir.last().Caps != "Np8FkG9MoSxk3rQYsYw0eEkgtqA=" {
		t.Errorf("caps = %q", dir.last().Caps)
	}
	s.setActive(false)
	if !dir.last().Inactive {
		t.Error("CSI inactive, description says active")
	}
	s.SetPresence(nil, 0)
	if d, now := dir.last(), s.Describe(); d.Available || !d.Carbons || !d.Inactive || d.Available != now.Available {
		t.Errorf("after unavailable: %+v, want unavailable and the rest kept (Describe: %+v)", d, now)
	}
	if got := srv.router.Lookup(s.jid.Bare()).Local; len(got) != 1 || got[0] != module.Session(s) {
		t.Errorf("Lookup through the directory = %v, want the session", got)
	}
}
