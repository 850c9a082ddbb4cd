package push

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// memKV is an in-memory storage.KV.
type memKV struct {
	mu sync.Mutex
	m  map[string]map[string][]byte
}

func newMemKV() *memKV { return &memKV{m: make(map[string]map[string][]byte)} }

func (kv *memKV) Value(_ context.Context, owner, key string) ([]byte, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	v, ok := kv.m[owner][key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

func (kv *memKV) PutValue(_ context.Context, owner, key string, value []byte) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if kv.m[owner] == nil {
		kv.m[owner] = make(map[string][]byte)
	}
	kv.m[owner][key] = append([]byte(nil), value...)
	return nil
}

func (kv *memKV) DeleteValue(_ context.Context, owner, key string) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	delete(kv.m[owner], key)
	return nil
}

func (kv *memKV) Keys(_ context.Context, owner, prefix string) ([]string, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	var out []string
	for k := range kv.m[owner] {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

// fakeSession is a bound session that is connected or hibernating.
type fakeSession struct {
	jid         jid.JID
	hibernating bool
	available   bool
}

func (f *fakeSession) ID() string                      { return f.jid.String() }
func (f *fakeSession) JID() jid.JID                    { return f.jid }
func (f *fakeSession) Send(*stanza.Stanza) error       { return nil }
func (f *fakeSession) Presence() *stanza.Stanza        { return nil }
func (f *fakeSession) Priority() int                   { return 0 }
func (f *fakeSession) Available() bool                 { return f.available }
func (f *fakeSession) SetPresence(*stanza.Stanza, int) {}
func (f *fakeSession) Interested() bool                { return false }
func (f *fakeSession) SetInterested()                  {}
func (f *fakeSession) Close(string, string)            {}
func (f *fakeSession) Hibernating() bool               { return f.hibernating }
func (f *fakeSession) Describe() module.Resource {
	return module.Resource{JID: f.JID(), Available: f.Available(), Priority: f.Priority()}
}
func (f *fakeSession) SetCarbons(bool) {}
func (f *fakeSession) SetCaps(string)  {}

// fakeRouter records what the module routes and knows the sessions a test gives it.
type fakeRouter struct {
	mu       sync.Mutex
	routed   []*stanza.Stanza
	sessions map[string][]module.Session
}

func (r *fakeRouter) Route(_ context.Context, s *stanza.Stanza) {
	r.mu.Lock()
	r.routed = append(r.routed, s)
	r.mu.Unlock()
}

func (r *fakeRouter) Sessions(bare jid.JID) []module.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions[bare.String()]
}

func (r *fakeRouter) RouteFrom(ctx context.Context, _ module.Origin, s *stanza.Stanza) {
	r.Route(ctx, s)
}
func (r *fakeRouter) Deliver(ctx context.Context, _ module.Origin, to jid.JID, s *stanza.Stanza) {
	r.Route(ctx, s.WithTo(to))
}
func (r *fakeRouter) Lookup(bare jid.JID) module.Resources {
	return module.Resources{Local: r.Sessions(bare)}
}

func (r *fakeRouter) Session(full jid.JID) module.Session {
	for _, s := range r.Sessions(full.Bare()) {
		if s.JID().Equal(full) {
			return s
		}
	}
	return nil
}

func (r *fakeRouter) IsLocal(j jid.JID) bool                                      { return j.Domainpart() == "example.net" }
func (r *fakeRouter) Notify(context.Context, module.SessionEvent, module.Session) {}

func (r *fakeRouter) bind(s *fakeSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sessions == nil {
		r.sessions = make(map[string][]module.Session)
	}
	b := s.jid.Bare().String()
	r.sessions[b] = append(r.sessions[b], s)
}

// take returns what was routed since the last call.
func (r *fakeRouter) take() []*stanza.Stanza {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.routed
	r.routed = nil
	return out
}

// fakeClock is a clock the test moves; timers fire in Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
	fired   bool
}

func (t *fakeTimer) Stop() bool {
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves the clock and runs the timers that came due, in order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.stopped && !t.fired && !t.at.After(c.now) {
			t.fired = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// harness is one push module registered into a registry with fakes around it.
type harness struct {
	t      *testing.T
	m      *Module
	reg    *module.Registry
	router *fakeRouter
	clock  *fakeClock
	kv     storage.KV
}

func newHarness(t *testing.T, cfg Config, kv storage.KV) *harness {
	t.Helper()
	if kv == nil {
		kv = newMemKV()
	}
	h := &harness{t: t, m: New(cfg, kv), reg: module.NewRegistry(), router: &fakeRouter{},
		clock: &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, kv: kv}
	h.m.clock = h.clock
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := h.reg.Register([]module.Module{h.m}, h.router, jid.MustParse("example.net"), log); err != nil {
		t.Fatal(err)
	}
	return h
}

// iq sends an IQ set from a full JID to its own account and returns the handler's error.
func (h *harness) iq(from, inner string) error {
	h.t.Helper()
	return h.iqTo(from, "", inner)
}

func (h *harness) iqTo(from, to, inner string) error {
	h.t.Helper()
	var toJID jid.JID
	if to != "" {
		toJID = jid.MustParse(to)
	}
	s := stanza.New(stanza.IQ, "set", "i1", jid.MustParse(from), toJID, []byte(inner))
	local, ns, payload, ok := stanza.FirstChild(s.Payload())
	if !ok {
		h.t.Fatalf("no payload in %s", inner)
	}
	fn := h.reg.IQHandler(module.Account, "set", ns, local)
	if fn == nil {
		h.t.Fatalf("no handler for {%s}%s", ns, local)
	}
	_, err := fn(context.Background(), &module.IQ{Stanza: s, Local: local, NS: ns, Payload: payload})
	return err
}

func (h *harness) mustIQ(from, inner string) {
	h.t.Helper()
	if err := h.iq(from, inner); err != nil {
		h.t.Fatalf("%s: %v", inner, err)
	}
}

// stage runs the hooks of a stage for a message to owner and fails if one does not continue.
func (h *harness) stage(st module.Stage, owner string, s *stanza.Stanza, targets ...module.Session) {
	h.t.Helper()
	d := &module.Delivery{Stanza: s, Owner: jid.MustParse(owner), Targets: targets}
	for _, fn := range h.reg.MessageHooks(st) {
		v, err := fn(context.Background(), d)
		if err != nil || v != module.Continue {
			h.t.Fatalf("%s hook: verdict %v, err %v; push must always continue", st, v, err)
		}
	}
}

func msg(from, to, typ, inner string) *stanza.Stanza {
	return stanza.New(stanza.Message, typ, "m1", jid.MustParse(from), jid.MustParse(to), []byte(inner))
}
