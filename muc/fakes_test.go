package muc

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// fakeRouter implements module.Router: it records every stanza the service routes, by recipient.
type fakeRouter struct {
	mu      sync.Mutex
	got     map[string][]*stanza.Stanza
	n       int
	onRoute func(*stanza.Stanza) // called before recording, without f.mu
}

func (f *fakeRouter) Route(_ context.Context, s *stanza.Stanza) {
	if f.onRoute != nil {
		f.onRoute(s)
	}
	f.mu.Lock()
	if f.got != nil {
		k := s.To.String()
		f.got[k] = append(f.got[k], s)
	}
	f.n++
	f.mu.Unlock()
}
func (f *fakeRouter) RouteFrom(ctx context.Context, _ module.Origin, s *stanza.Stanza) {
	f.Route(ctx, s)
}
func (f *fakeRouter) Deliver(ctx context.Context, _ module.Origin, to jid.JID, s *stanza.Stanza) {
	f.Route(ctx, s.WithTo(to))
}
func (f *fakeRouter) Lookup(jid.JID) module.Resources   { return module.Resources{} }
func (f *fakeRouter) Sessions(jid.JID) []module.Session { return nil }
func (f *fakeRouter) Session(jid.JID) module.Session    { return nil }
func (f *fakeRouter) IsLocal(j jid.JID) bool            { return j.Domainpart() == "localhost" }

// take returns and forgets what was routed to a JID.
func (f *fakeRouter) take(to string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.got[to] {
		out = append(out, string(s.Raw))
	}
	delete(f.got, to)
	return out
}

// memRooms is an in-memory storage.Rooms.
type memRooms struct {
	mu    sync.Mutex
	rooms map[string][]byte
	affs  map[string]map[string]storage.RoomAffiliation
}

func newMemRooms() *memRooms {
	return &memRooms{rooms: map[string][]byte{}, affs: map[string]map[string]storage.RoomAffiliation{}}
}

func (s *memRooms) PutRoom(_ context.Context, room string, config []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rooms[room] = append([]byte{}, config...)
	if s.affs[room] == nil {
		s.affs[room] = map[string]storage.RoomAffiliation{}
	}
	return nil
}

func (s *memRooms) Room(_ context.Context, room string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.rooms[room]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return c, nil
}

func (s *memRooms) DeleteRoom(_ context.Context, room string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rooms[room]; !ok {
		return storage.ErrNotFound
	}
	delete(s.rooms, room)
	delete(s.affs, room)
	return nil
}

func (s *memRooms) ListRooms(_ context.Context, after string, limit int) ([]storage.RoomRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []storage.RoomRecord
	for j, c := range s.rooms {
		if j > after {
			out = append(out, storage.RoomRecord{JID: j, Config: c})
		}
	}
	slices.SortFunc(out, func(a, b storage.RoomRecord) int { return strings.Compare(a.JID, b.JID) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *memRooms) SetAffiliation(_ context.Context, room string, a storage.RoomAffiliation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.affs[room]
	if !ok {
		return storage.ErrNotFound
	}
	if a.Affiliation == "" || a.Affiliation == storage.AffNone {
		delete(m, a.JID)
	} else {
		m[a.JID] = a
	}
	return nil
}

func (s *memRooms) Affiliations(_ context.Context, room string) ([]storage.RoomAffiliation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.affs[room]
	if !ok {
		return nil, storage.ErrNotFound
	}
	var out []storage.RoomAffiliation
	for _, a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b storage.RoomAffiliation) int { return strings.Compare(a.JID, b.JID) })
	return out, nil
}

// memArchive is an in-memory storage.Archive following the contract of storage/README.md.
type memArchive struct {
	mu    sync.Mutex
	items map[string][]storage.ArchiveItem
	off   bool // discard appends (benchmarks)
}

func newMemArchive() *memArchive { return &memArchive{items: map[string][]storage.ArchiveItem{}} }

func (a *memArchive) Append(_ context.Context, owner string, items ...storage.ArchiveItem) error {
	if a.off {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.items[owner] = append(a.items[owner], items...)
	return nil
}

func (a *memArchive) sel(owner string, q storage.ArchiveQuery) []storage.ArchiveItem {
	var out []storage.ArchiveItem
	for _, it := range a.items[owner] {
		if q.With != "" && it.With != q.With || !q.Start.IsZero() && it.Time.Before(q.Start) ||
			!q.End.IsZero() && it.Time.After(q.End) || len(q.IDs) > 0 && !slices.Contains(q.IDs, it.ID) {
			continue
		}
		out = append(out, it)
	}
	return out
}

func (a *memArchive) Query(_ context.Context, owner string, q storage.ArchiveQuery) ([]storage.ArchiveItem, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	all := a.items[owner]
	pos := func(id string) int {
		return slices.IndexFunc(all, func(it storage.ArchiveItem) bool { return it.ID == id })
	}
	lo, hi := -1, len(all)
	if q.AfterID != "" {
		if lo = pos(q.AfterID); lo < 0 {
			return nil, false, storage.ErrNotFound
		}
	}
	if q.BeforeID != "" {
		if hi = pos(q.BeforeID); hi < 0 {
			return nil, false, storage.ErrNotFound
		}
	}
	var s []storage.ArchiveItem
	for _, it := range a.sel(owner, q) {
		if p := pos(it.ID); p > lo && p < hi {
			s = append(s, it)
		}
	}
	if q.Limit > 0 && len(s) > q.Limit {
		if q.Last {
			return s[len(s)-q.Limit:], false, nil
		}
		return s[:q.Limit], false, nil
	}
	return s, true, nil
}

func (a *memArchive) Count(_ context.Context, owner string, q storage.ArchiveQuery) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.sel(owner, q)), nil
}

func (a *memArchive) Delete(context.Context, string, ...string) error { return nil }
func (a *memArchive) DeleteOwner(_ context.Context, owner string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.items, owner)
	return nil
}
func (a *memArchive) DeleteBefore(context.Context, time.Time) (int64, error) { return 0, nil }
func (a *memArchive) HasOrigin(context.Context, string, string, string) (bool, error) {
	return false, nil
}

// env is a MUC service on conference.localhost with a fake router and in-memory storage.
type env struct {
	t     *testing.T
	m     *Module
	r     *fakeRouter
	rooms *memRooms
	arch  *memArchive
}

func newEnv(t testing.TB, cfg Config) *env {
	return newEnvWith(t, cfg, newMemRooms(), newMemArchive())
}

func newEnvWith(t testing.TB, cfg Config, rooms *memRooms, arch *memArchive) *env {
	return newEnvArchive(t, cfg, rooms, arch, arch)
}

// newEnvArchive is newEnvWith with the archive the service uses (a wrapper around arch) given apart.
func newEnvArchive(t testing.TB, cfg Config, rooms *memRooms, arch *memArchive, a storage.Archive) *env {
	m := New(cfg, rooms, a)
	r := &fakeRouter{got: map[string][]*stanza.Stanza{}}
	reg := module.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := reg.Register([]module.Module{m}, r, jid.MustParse("localhost"), log); err != nil {
		t.Fatal(err)
	}
	e := &env{m: m, r: r, rooms: rooms, arch: arch}
	if tt, ok := t.(*testing.T); ok {
		e.t = tt
	}
	return e
}

// in hands the service a stanza written as XML, with from and to.
func (e *env) in(raw string) {
	e.t.Helper()
	// stanza.Parse refuses a self-closing top-level element (its size limit is one byte short); expand it.
	if strings.HasSuffix(raw, "/>") && strings.Count(raw, "<") == 1 {
		name := raw[1:strings.IndexAny(raw, " />")]
		raw = raw[:len(raw)-2] + "></" + name + ">"
	}
	s, err := stanza.Parse([]byte(raw))
	if err != nil {
		e.t.Fatalf("parsing %s: %v", raw, err)
	}
	e.m.HandleStanza(e.t.Context(), module.Origin{}, s)
}

// expect returns the first stanza routed to to that contains every substring, and drops everything routed to
// to up to and including it.
func (e *env) expect(to string, subs ...string) string {
	e.t.Helper()
	e.r.mu.Lock()
	defer e.r.mu.Unlock()
	got := e.r.got[to]
	for i, s := range got {
		ok := true
		for _, sub := range subs {
			if !strings.Contains(string(s.Raw), sub) {
				ok = false
				break
			}
		}
		if ok {
			e.r.got[to] = got[i+1:]
			return string(s.Raw)
		}
	}
	var all []string
	for _, s := range got {
		all = append(all, string(s.Raw))
	}
	e.t.Fatalf("%s: nothing with %q; got:\n%s", to, subs, strings.Join(all, "\n"))
	return ""
}

// none fails if anything routed to to contains sub.
func (e *env) none(to, sub string) {
	e.t.Helper()
	for _, s := range e.r.take(to) {
		if strings.Contains(s, sub) {
			e.t.Fatalf("%s: unexpected %s", to, s)
		}
	}
}

func (e *env) clear() {
	e.r.mu.Lock()
	e.r.got = map[string][]*stanza.Stanza{}
	e.r.mu.Unlock()
}

const (
	svc   = "conference.localhost"
	roomJ = "room@conference.localhost"
)

// join sends a MUC join presence.
func (e *env) join(full, nick string, extra ...string) {
	e.t.Helper()
	e.in("<presence from='" + full + "' to='" + roomJ + "/" + nick + "'><x xmlns='" + NS + "'>" +
		strings.Join(extra, "") + "</x></presence>")
}

// createRoom makes owner the owner of an unlocked room with the given config fields, then clears the routed
// stanzas.
func (e *env) createRoom(owner, nick string, fields map[string]string) {
	e.t.Helper()
	e.join(owner, nick)
	e.expect(owner, "status code='201'")
	b := "<iq type='set' id='cfg' from='" + owner + "' to='" + roomJ + "'><query xmlns='" + NSOwner +
		"'><x xmlns='jabber:x:data' type='submit'>"
	for k, v := range fields {
		b += "<field var='" + k + "'><value>" + v + "</value></field>"
	}
	e.in(b + "</x></query></iq>")
	e.expect(owner, "type='result'", "id='cfg'")
	e.clear()
}

func (f *fakeRouter) Notify(context.Context, module.SessionEvent, module.Session) {}
