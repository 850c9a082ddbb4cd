package presence

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/storage/sqlite"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// fakeSession is a bound, available session that requested the roster; it records what it is sent.
type fakeSession struct {
	jid jid.JID
	mu  sync.Mutex
	got []*stanza.Stanza
}

func (f *fakeSession) ID() string                      { return f.jid.String() }
func (f *fakeSession) JID() jid.JID                    { return f.jid }
func (f *fakeSession) Presence() *stanza.Stanza        { return nil }
func (f *fakeSession) Priority() int                   { return 0 }
func (f *fakeSession) Available() bool                 { return true }
func (f *fakeSession) SetPresence(*stanza.Stanza, int) {}
func (f *fakeSession) Interested() bool                { return true }
func (f *fakeSession) SetInterested()                  {}
func (f *fakeSession) Close(string, string)            {}
func (f *fakeSession) Hibernating() bool               { return false }
func (f *fakeSession) SetCarbons(bool)                 {}
func (f *fakeSession) SetCaps(string)                  {}
func (f *fakeSession) Describe() module.Resource {
	return module.Resource{JID: f.jid, Available: true}
}
func (f *fakeSession) Send(s *stanza.Stanza) error {
	f.mu.Lock()
	f.got = append(f.got, s)
	f.mu.Unlock()
	return nil
}

func (f *fakeSession) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.got {
		out = append(out, string(s.Raw))
	}
	f.got = nil
	return out
}

// fakeRouter knows one session and does what the router does with presence for a domain it cannot reach
// (no s2s): a subscription request is bounced with remote-server-not-found to the sender's bare JID, which the
// presence handler's Inbound takes.
type fakeRouter struct {
	m    *Module
	sess *fakeSession
}

func (r *fakeRouter) Route(ctx context.Context, s *stanza.Stanza) {
	r.Deliver(ctx, module.Origin{}, s.To, s)
}

func (r *fakeRouter) RouteFrom(ctx context.Context, o module.Origin, s *stanza.Stanza) {
	r.Deliver(ctx, o, s.To, s)
}

func (r *fakeRouter) Deliver(ctx context.Context, _ module.Origin, to jid.JID, s *stanza.Stanza) {
	if !s.To.Equal(to) {
		s = s.WithTo(to)
	}
	if s.Kind == stanza.Presence && !r.IsLocal(s.To) && s.Type == "subscribe" {
		e := stanza.ErrorReply(s, jid.JID{}, stanza.ErrRemoteServerNotFnd)
		r.m.Inbound(ctx, module.Origin{}, e.To, e)
	}
}

func (r *fakeRouter) Lookup(bare jid.JID) module.Resources {
	return module.Resources{Local: r.Sessions(bare)}
}

func (r *fakeRouter) Sessions(bare jid.JID) []module.Session {
	if bare.Equal(r.sess.jid.Bare()) {
		return []module.Session{r.sess}
	}
	return nil
}

func (r *fakeRouter) Session(full jid.JID) module.Session {
	if full.Equal(r.sess.jid) {
		return r.sess
	}
	return nil
}

func (r *fakeRouter) IsLocal(j jid.JID) bool                                      { return j.Domainpart() == "example.net" }
func (r *fakeRouter) Notify(context.Context, module.SessionEvent, module.Session) {}

func newTestModule(t *testing.T) (*Module, *fakeSession, storage.Roster) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	m := New(store, store)
	r := &fakeRouter{m: m, sess: &fakeSession{jid: jid.MustParse("alice@example.net/laptop")}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := module.NewRegistry().Register([]module.Module{m}, r, jid.MustParse("example.net"), log); err != nil {
		t.Fatal(err)
	}
	return m, r.sess, store
}

// Issue 19 item 6: a subscription request to a domain that cannot be reached is bounced; the roster item must
// not stay ask='subscribe', and the user's client gets the error and a roster push without the ask.
func TestDefectRemoteSubscriptionDoesNotStayPending(t *testing.T) {
	m, alice, rost := newTestModule(t)
	ctx := context.Background()
	romeo := "romeo@unreachable.example"
	if err := m.Outbound(ctx, module.Origin{Kind: module.OriginSession, Session: alice}, stanza.New(stanza.Presence, "subscribe", "s1", alice.jid, jid.MustParse(romeo), nil)); err != nil {
		t.Fatal(err)
	}
	it, err := rost.RosterItem(ctx, "alice@example.net", romeo)
	if err != nil {
		t.Fatalf("roster item: %v", err)
	}
	if it.AskOut || it.Subscription != storage.SubNone {
		t.Fatalf("after the bounce the item is %+v, want subscription none without ask", it)
	}
	got := alice.take()
	var pushes, errs []string
	for _, s := range got {
		switch {
		case strings.HasPrefix(s, "<iq") && strings.Contains(s, "jabber:iq:roster"):
			pushes = append(pushes, s)
		case strings.HasPrefix(s, "<presence") && strings.Contains(s, "type='error'"):
			errs = append(errs, s)
		}
	}
	if len(pushes) != 2 || !strings.Contains(pushes[0], "ask='subscribe'") || strings.Contains(pushes[1], "ask=") {
		t.Errorf("roster pushes %q, want one with the ask and then one without", pushes)
	}
	if len(errs) != 1 || !strings.Contains(errs[0], "remote-server-not-found") || !strings.Contains(errs[0], "from='"+romeo+"'") {
		t.Errorf("error presence delivered: %q", errs)
	}
}

// A presence error from a contact with no pending request changes nothing and is dropped, as before.
func TestPresenceErrorWithoutPendingRequestIsDropped(t *testing.T) {
	m, alice, rost := newTestModule(t)
	ctx := context.Background()
	if _, err := rost.PutRosterItem(ctx, "alice@example.net", storage.RosterItem{JID: "bob@example.net", Subscription: storage.SubBoth}); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"bob@example.net", "carol@example.net"} {
		e := stanza.ErrorReply(stanza.New(stanza.Presence, "", "p", jid.MustParse("alice@example.net"), jid.MustParse(from), nil),
			jid.JID{}, stanza.ErrServiceUnavailable)
		if err := m.Inbound(ctx, module.Origin{}, e.To, e); err != nil {
			t.Fatal(err)
		}
	}
	if got := alice.take(); len(got) != 0 {
		t.Fatalf("delivered %q", got)
	}
	if it, _ := rost.RosterItem(ctx, "alice@example.net", "bob@example.net"); it.Subscription != storage.SubBoth {
		t.Fatalf("item changed: %+v", it)
	}
}
