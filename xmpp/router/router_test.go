package router

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// fakeSession records what the router queues for it.
type fakeSession struct {
	jid       jid.JID
	prio      int
	available bool
	presence  *stanza.Stanza
	mu        sync.Mutex
	got       []*stanza.Stanza
}

func (f *fakeSession) ID() string               { return f.jid.String() }
func (f *fakeSession) JID() jid.JID             { return f.jid }
func (f *fakeSession) Presence() *stanza.Stanza { return f.presence }
func (f *fakeSession) Priority() int            { return f.prio }
func (f *fakeSession) Available() bool          { return f.available }
func (f *fakeSession) SetPresence(p *stanza.Stanza, n int) {
	f.presence, f.available, f.prio = p, p != nil, n
}
func (f *fakeSession) Interested() bool { return false }
func (f *fakeSession) SetInterested()   {}
func (f *fakeSession) Describe() module.Resource {
	return module.Resource{JID: f.JID(), Available: f.Available(), Priority: f.Priority()}
}
func (f *fakeSession) SetCarbons(bool)      {}
func (f *fakeSession) SetCaps(string)       {}
func (f *fakeSession) Close(string, string) {}
func (f *fakeSession) Hibernating() bool    { return false }
func (f *fakeSession) Send(s *stanza.Stanza) error {
	f.mu.Lock()
	f.got = append(f.got, s)
	f.mu.Unlock()
	return nil
}
func (f *fakeSession) received() []*stanza.Stanza {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*stanza.Stanza(nil), f.got...)
}

type hookModule struct {
	undeliverable []*stanza.Stanza
}

func (*hookModule) Name() string { return "hooks" }
func (m *hookModule) Register(h *module.Host) error {
	h.OnMessage(module.Undeliverable, func(_ context.Context, d *module.Delivery) (module.Verdict, error) {
		m.undeliverable = append(m.undeliverable, d.Stanza)
		return module.Handled, nil
	})
	return h.HandleIQ(module.IQRoute{Target: module.Server, Type: "get", NS: "urn:xmpp:ping", Local: "ping"},
		func(context.Context, *module.IQ) ([]byte, error) { return nil, nil })
}

func newTestRouter(t *testing.T, mods ...module.Module) *Router {
	t.Helper()
	reg := module.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := New(jid.MustParse("example.net"), reg, nil, log)
	if err := reg.Register(mods, r, jid.MustParse("example.net"), log); err != nil {
		t.Fatal(err)
	}
	r.Start()
	return r
}

func session(r *Router, full string, prio int, available bool) *fakeSession {
	s := &fakeSession{jid: jid.MustParse(full), prio: prio, available: available}
	r.Bind(s)
	return s
}

func msg(from, to, typ, body string) *stanza.Stanza {
	return stanza.New(stanza.Message, typ, "m1", jid.MustParse(from), jid.MustParse(to), []byte("<body>"+body+"</body>"))
}

func TestBareJIDMessageGoesToHighestPriority(t *testing.T) {
	r := newTestRouter(t)
	low := session(r, "bob@example.net/low", 1, true)
	high := session(r, "bob@example.net/high", 5, true)
	high2 := session(r, "bob@example.net/high2", 5, true)
	neg := session(r, "bob@example.net/neg", -1, true)
	away := session(r, "bob@example.net/unavail", 10, false)
	r.Route(context.Background(), msg("alice@example.net/a", "bob@example.net", "chat", "hi"))
	if len(high.received()) != 1 || len(high2.received()) != 1 {
		t.Errorf("highest-priority sessions got %d and %d, want 1 each", len(high.received()), len(high2.received()))
	}
	for _, s := range []*fakeSession{low, neg, away} {
		if n := len(s.received()); n != 0 {
			t.Errorf("%s got %d stanzas, want 0", s.jid, n)
		}
	}
}

func TestFullJIDMessageToUnknownResourceFallsBackToBare(t *testing.T) {
	r := newTestRouter(t)
	b := session(r, "bob@example.net/phone", 0, true)
	r.Route(context.Background(), msg("alice@example.net/a", "bob@example.net/gone", "chat", "hi"))
	if len(b.received()) != 1 {
		t.Fatalf("chat to an unknown resource: got %d stanzas at the available one, want 1", len(b.received()))
	}
	r.Route(context.Background(), msg("alice@example.net/a", "bob@example.net/gone", "headline", "x"))
	if len(b.received()) != 1 {
		t.Fatal("headline to an unknown resource was delivered; RFC 6121 8.5.3.2.1 says ignore")
	}
}

func TestFullJIDMessageGoesOnlyToThatResource(t *testing.T) {
	r := newTestRouter(t)
	a := session(r, "bob@example.net/a", 5, true)
	b := session(r, "bob@example.net/b", 0, true)
	r.Route(context.Background(), msg("alice@example.net/x", "bob@example.net/b", "chat", "hi"))
	if len(a.received()) != 0 || len(b.received()) != 1 {
		t.Fatalf("got a=%d b=%d, want a=0 b=1", len(a.received()), len(b.received()))
	}
}

func TestNoAvailableSessionRunsUndeliverableStage(t *testing.T) {
	hooks := &hookModule{}
	r := newTestRouter(t, hooks)
	session(r, "bob@example.net/neg", -1, true)
	r.Route(context.Background(), msg("alice@example.net/a", "bob@example.net", "chat", "stored"))
	if len(hooks.undeliverable) != 1 {
		t.Fatalf("undeliverable stage ran %d times, want 1", len(hooks.undeliverable))
	}
}

func TestUndeliverableWithoutHandlerBouncesServiceUnavailable(t *testing.T) {
	r := newTestRouter(t)
	alice := session(r, "alice@example.net/a", 0, true)
	r.Route(context.Background(), msg("alice@example.net/a", "bob@example.net", "chat", "lost?"))
	got := alice.received()
	if len(got) != 1 || got[0].Type != "error" || !strings.Contains(string(got[0].Raw), "service-unavailable") {
		t.Fatalf("sender got %v, want one service-unavailable error", got)
	}
	// An error is never answered with an error.
	r.Route(context.Background(), msg("alice@example.net/a", "bob@example.net", "error", "x"))
	if len(alice.received()) != 1 {
		t.Fatal("an error message was bounced")
	}
}

func TestIQToServerWithoutHandlerIsServiceUnavailable(t *testing.T) {
	r := newTestRouter(t, &hookModule{})
	alice := session(r, "alice@example.net/a", 0, true)
	iq := stanza.New(stanza.IQ, "get", "q1", alice.jid, jid.MustParse("example.net"), []byte("<query xmlns='urn:unknown'/>"))
	r.RouteFrom(context.Background(), originOf(alice), iq)
	ping := stanza.New(stanza.IQ, "get", "q2", alice.jid, jid.MustParse("example.net"), []byte("<ping xmlns='urn:xmpp:ping'/>"))
	r.RouteFrom(context.Background(), originOf(alice), ping)
	got := alice.received()
	if len(got) != 2 {
		t.Fatalf("got %d replies, want 2", len(got))
	}
	if got[0].Type != "error" || got[0].ID != "q1" || !strings.Contains(string(got[0].Raw), "service-unavailable") {
		t.Errorf("unknown iq answered with %s", got[0].Raw)
	}
	if got[1].Type != "result" || got[1].ID != "q2" {
		t.Errorf("ping answered with %s", got[1].Raw)
	}
}

func TestIQResultToBareJIDIsDropped(t *testing.T) {
	r := newTestRouter(t)
	b := session(r, "bob@example.net/b", 0, true)
	r.Route(context.Background(), stanza.New(stanza.IQ, "result", "x", jid.MustParse("alice@example.net/a"), jid.MustParse("bob@example.net"), nil))
	if len(b.received()) != 0 {
		t.Fatal("iq result to a bare JID was delivered")
	}
}

func TestBindReplacesSameFullJID(t *testing.T) {
	r := newTestRouter(t)
	old := session(r, "bob@example.net/x", 0, true)
	nw := &fakeSession{jid: jid.MustParse("bob@example.net/x")}
	if got := r.Bind(nw); got != old {
		t.Fatalf("Bind returned %v, want the old session", got)
	}
	if r.Stats.Sessions.Load() != 1 {
		t.Fatalf("sessions = %d, want 1", r.Stats.Sessions.Load())
	}
	r.Unbind(old) // the replaced session ending must not remove the new one
	if r.Session(jid.MustParse("bob@example.net/x")) != nw {
		t.Fatal("unbinding the replaced session removed the new one")
	}
}

func TestGroupchatToAccountIsRefused(t *testing.T) {
	r := newTestRouter(t)
	alice := session(r, "alice@example.net/a", 0, true)
	b := session(r, "bob@example.net/b", 0, true)
	r.RouteFrom(context.Background(), originOf(alice), msg("alice@example.net/a", "bob@example.net", "groupchat", "x"))
	if len(b.received()) != 0 {
		t.Fatal("groupchat to a bare account JID was delivered")
	}
	if got := alice.received(); len(got) != 1 || got[0].Type != "error" {
		t.Fatalf("sender got %v, want an error", got)
	}
}

type recordingService struct {
	got     []*stanza.Stanza
	senders []module.Session
}

func (s *recordingService) HandleStanza(_ context.Context, o module.Origin, st *stanza.Stanza) {
	s.got = append(s.got, st)
	s.senders = append(s.senders, o.Session)
}

// originOf is the origin c2s gives the stanzas of a bound session.
func originOf(s module.Session) module.Origin {
	return module.Origin{Kind: module.OriginSession, Session: s}
}

type serviceModule struct{ svc *recordingService }

func (*serviceModule) Name() string { return "svc" }
func (m *serviceModule) Register(h *module.Host) error {
	return h.Service(jid.MustParse("conference.example.net"), "Rooms", m.svc)
}

func TestServiceDomainGetsItsStanzas(t *testing.T) {
	svc := &recordingService{}
	r := newTestRouter(t, &serviceModule{svc})
	alice := session(r, "alice@example.net/a", 0, true)
	r.RouteFrom(context.Background(), originOf(alice), msg("alice@example.net/a", "room@conference.example.net", "groupchat", "hi"))
	iq := stanza.New(stanza.IQ, "get", "d", alice.jid, jid.MustParse("conference.example.net"), []byte("<query xmlns='http://jabber.org/protocol/disco#info'/>"))
	r.RouteFrom(context.Background(), originOf(alice), iq)
	if len(svc.got) != 2 || svc.senders[0] != alice {
		t.Fatalf("service got %d stanzas (senders %v), want 2 from alice", len(svc.got), svc.senders)
	}
	// Stanzas to the server's own domain are not the service's.
	r.RouteFrom(context.Background(), originOf(alice), stanza.New(stanza.IQ, "get", "p", alice.jid, jid.MustParse("example.net"), []byte("<ping xmlns='urn:xmpp:ping'/>")))
	if len(svc.got) != 2 {
		t.Fatal("a stanza for the server domain reached the service")
	}
}
