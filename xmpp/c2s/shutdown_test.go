package c2s

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/router"
	"parley.im/parley/xmpp/stanza"
)

// stageRecorder is a module that records the messages reaching the Inbound and Undeliverable stages; it
// takes what is undeliverable, as offline storage does.
type stageRecorder struct {
	mu                   sync.Mutex
	inbound, undelivered []string
}

func (*stageRecorder) Name() string { return "recorder" }

func (m *stageRecorder) Register(h *module.Host) error {
	h.OnMessage(module.Inbound, func(_ context.Context, d *module.Delivery) (module.Verdict, error) {
		m.mu.Lock()
		m.inbound = append(m.inbound, d.Stanza.ID)
		m.mu.Unlock()
		return module.Continue, nil
	})
	h.OnMessage(module.Undeliverable, func(_ context.Context, d *module.Delivery) (module.Verdict, error) {
		m.mu.Lock()
		m.undelivered = append(m.undelivered, d.Stanza.ID)
		m.mu.Unlock()
		return module.Handled, nil
	})
	return nil
}

var _ module.Module = (*stageRecorder)(nil)

// hibernatingSession binds an available session of full with resumable stream management and no connection,
// as a session is after its client's connection broke.
func hibernatingSession(srv *Server, full string) *session {
	s := &session{srv: srv, id: full, jid: jid.MustParse(full)}
	s.sm.enabled, s.sm.resumable, s.sm.id = true, true, randomID(16)
	srv.keepResumable(s.sm.id, s)
	srv.router.Bind(s)
	s.SetPresence(stanza.New(stanza.Presence, "", "", s.jid, jid.JID{}, nil), 0)
	s.sm.timer = time.AfterFunc(time.Hour, s.terminate)
	return s
}

// Issue 19 item 2: at shutdown, messages that wait unacknowledged in a hibernating session (acknowledged to
// their senders) must reach the Undeliverable stage (offline storage) before the store closes, once each; a
// message of one hibernating resource must not be handed to another resource of the account that is ending too.
func TestDefectShutdownHandsHibernatedMessagesToOffline(t *testing.T) {
	srv, r, rec := newRecordingServer(t)
	phone := hibernatingSession(srv, "bob@example.net/phone")
	tablet := hibernatingSession(srv, "bob@example.net/tablet")
	from := jid.MustParse("alice@example.net/laptop")
	for i, s := range []*session{phone, tablet, phone} {
		id := []string{"m1", "m2", "m3"}[i]
		if err := s.Send(stanza.New(stanza.Message, "chat", id, from, s.jid, []byte("<body>hi</body>"))); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	got := map[string]int{}
	for _, id := range rec.undelivered {
		got[id]++
	}
	for _, id := range []string{"m1", "m2", "m3"} {
		if got[id] != 1 {
			t.Errorf("message %s reached offline storage %d times at shutdown, want once (undeliverable: %v)", id, got[id], rec.undelivered)
		}
	}
	if len(rec.inbound) != 0 {
		t.Errorf("messages went to another ending session instead of offline storage: %v", rec.inbound)
	}
	if phone.Hibernating() || tablet.Hibernating() {
		t.Error("sessions still hibernating after shutdown")
	}
	if n := len(r.Sessions(jid.MustParse("bob@example.net"))); n != 0 {
		t.Errorf("%d sessions still bound after shutdown", n)
	}
}

// A WebSocket connection that arrives during shutdown (the HTTP listeners close after Shutdown) is refused, so
// that no session starts after the hibernating ones were handed to offline storage.
func TestServeConnRefusedDuringShutdown(t *testing.T) {
	srv := benchServer(t)
	srv.Shutdown(context.Background())
	a, b := net.Pipe()
	defer b.Close()
	go srv.ServeConn(a, "192.0.2.1", true)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(b)
	if !strings.Contains(string(got), "<system-shutdown") {
		t.Fatalf("got %q, want a system-shutdown stream error", got)
	}
}

// newRecordingServer is a c2s server over a real router with a stageRecorder registered.
func newRecordingServer(t *testing.T) (*Server, *router.Router, *stageRecorder) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	domain := jid.MustParse("example.net")
	reg := module.NewRegistry()
	r := router.New(domain, reg, nil, log)
	rec := &stageRecorder{}
	if err := reg.Register([]module.Module{rec}, r, domain, log); err != nil {
		t.Fatal(err)
	}
	r.Start()
	srv, err := New(Config{AllowPlaintext: true}, domain, nil, nil, r, reg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	return srv, r, rec
}

// A message the router hands to a session that is ending (it picked the session just before it was unbound)
// was refused and lost. It is routed again, like the session's unacknowledged messages: during the end (kept
// until the unacknowledged ones went), and after it (routed at once); carbon copies and errors are not.
func TestDefectMessageToEndingSessionIsNotLost(t *testing.T) {
	srv, _, rec := newRecordingServer(t)
	from := jid.MustParse("alice@example.net/laptop")
	phone := hibernatingSession(srv, "bob@example.net/phone")
	msg := func(id string, payload string) *stanza.Stanza {
		return stanza.New(stanza.Message, "chat", id, from, phone.jid, []byte(payload))
	}
	if err := phone.Send(msg("unacked", "<body>1</body>")); err != nil {
		t.Fatal(err)
	}
	unacked, ok := phone.markEnded()
	if !ok {
		t.Fatal("markEnded: the session had ended already")
	}
	// The window between the end and the unbind: the router may still deliver to the session.
	if err := phone.Send(msg("late", "<body>2</body>")); err != nil {
		t.Fatalf("a message during the end was refused: %v", err)
	}
	if err := phone.Send(msg("carbon", "<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'/></received>")); err == nil {
		t.Error("a carbon copy for the ending session was taken to be routed again")
	}
	phone.finish(unacked)
	if err := phone.Send(msg("after", "<body>3</body>")); err != nil {
		t.Fatalf("a message after the end was refused: %v", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if got, want := strings.Join(rec.undelivered, " "), "unacked late after"; got != want {
		t.Errorf("reached offline storage: %q, want %q", got, want)
	}
}
