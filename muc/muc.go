// Package muc implements XEP-0045: Multi-User Chat, as a service on its own domain (conference.<domain> by
// default): rooms that are created and configured by their owners (instant and reserved rooms, the
// muc#roomconfig form), affiliations and roles with their moderation (kick, ban, voice, member lists),
// mediated invitations, history on join, private messages between occupants, nickname changes and several
// devices of one user under one nick.
//
// With it come the protocols that make rooms work as groups in today's clients: XEP-0359 stanza ids stamped
// by the room on every archived message, XEP-0313 Message Archive Management on the room's archive (codec in
// xmpp/mamcodec), XEP-0410 MUC self-ping, and the XEP-0249 feature for direct invitations. Persistent rooms and
// their affiliations are kept in storage.Rooms; room messages in the "muc" storage.Archive.
//
// Lock order (see docs/LOCKS.md): room.persistMu, then room.mu, then Module.mu; nothing is routed while any
// of them is held. A message to a room is checked and the occupant list copied under room.mu, then archived
// and fanned out with no lock held, so a slow occupant (whose session only queues) cannot stall the room.
package muc

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// Stats are the service's counters, for the metrics endpoint.
type Stats struct {
	Rooms      atomic.Int64  // rooms in memory
	Occupants  atomic.Int64  // occupants (nicks) in all rooms
	Messages   atomic.Uint64 // groupchat messages accepted
	Deliveries atomic.Uint64 // groupchat messages queued to occupants' sessions
}

// Module is the MUC service.
type Module struct {
	cfg     Config
	rooms   storage.Rooms
	archive storage.Archive
	async   bool // archive queues appends (storage.AsyncAppender): commits report from the committer
	router  module.Router
	log     *slog.Logger
	service jid.JID
	server  string // the server's domain
	admins  map[string]bool

	mu       sync.Mutex
	live     map[string]*room          // by room localpart
	sessions map[string]map[*room]bool // real full JID -> rooms it is in, for session end
	pending  map[string]pendingIQ      // forwarded IQs by the id the service gave them
	lastExp  atomic.Int64              // unix seconds of the last archive expiry

	now func() time.Time

	Stats Stats
}

// New returns the MUC service. rooms keeps persistent rooms, archive (store.Archive("muc")) room messages.
func New(cfg Config, rooms storage.Rooms, archive storage.Archive) *Module {
	if cfg.Archive != nil && !*cfg.Archive {
		archive = nil // every use of m.archive checks for nil
	}
	m := &Module{cfg: cfg, rooms: rooms, archive: archive, admins: make(map[string]bool),
		live: make(map[string]*room), sessions: make(map[string]map[*room]bool),
		pending: make(map[string]pendingIQ), now: time.Now, log: slog.Default()}
	_, m.async = archive.(storage.AsyncAppender)
	for _, a := range cfg.Admins {
		if j, err := jid.Parse(a); err == nil {
			m.admins[j.Bare().String()] = true
		}
	}
	return m
}

// Name implements module.Module.
func (*Module) Name() string { return "muc" }

// Register implements module.Module: the service domain, listed in the server's disco#items, and the
// session-end hook that takes a closed session out of every room it was in.
func (m *Module) Register(h *module.Host) error {
	m.cfg.setDefaults(h.Domain().Domainpart())
	if err := m.cfg.Validate(); err != nil {
		return err
	}
	svc, err := jid.Parse(m.cfg.Domain)
	if err != nil {
		return fmt.Errorf("muc.domain: %w", err)
	}
	m.service, m.server, m.router, m.log = svc, h.Domain().Domainpart(), h.Router(), h.Log()
	// A session that ends without unavailable presence (a dropped connection before initial presence) must
	// not stay in rooms as a ghost; presence handles the usual case, this hook the rest.
	h.OnSession(module.Closed, m.sessionClosed)
	return h.Service(svc, "Chatrooms", m)
}

// ServiceJID returns the service's domain JID (valid after Register).
func (m *Module) ServiceJID() jid.JID { return m.service }

// HandleStanza implements module.ServiceHandler.
func (m *Module) HandleStanza(ctx context.Context, o module.Origin, s *stanza.Stanza) {
	m.maybeExpire()
	switch {
	case s.To.Localpart() == "":
		m.serviceStanza(ctx, s)
	case s.Kind == stanza.Presence:
		m.presence(ctx, s)
	case s.Kind == stanza.Message:
		if s.To.Resourcepart() == "" {
			m.roomMessage(ctx, o.Emitted(), s)
		} else {
			m.privateMessage(ctx, s)
		}
	case s.Kind == stanza.IQ:
		if s.To.Resourcepart() == "" {
			m.roomIQ(ctx, s)
		} else {
			m.occupantIQ(ctx, s)
		}
	}
}

// send routes stanzas in order. It is never called with a lock held.
func (m *Module) send(ctx context.Context, out []*stanza.Stanza) {
	for _, s := range out {
		m.router.Route(ctx, s)
	}
}

// fail answers s with a stanza error, unless s is an error itself.
func (m *Module) fail(ctx context.Context, s *stanza.Stanza, e *stanza.Error) {
	if s.Type == "error" || (s.Kind == stanza.IQ && s.Type == "result") {
		return
	}
	m.router.Route(ctx, stanza.ErrorReply(s, s.To, e))
}

func newID() string { return rand.Text() }

// canCreate reports whether a user may create rooms (Config.Create).
func (m *Module) canCreate(from jid.JID) bool {
	switch m.cfg.Create {
	case "anyone":
		return true
	case "admins":
		return m.admins[from.Bare().String()]
	}
	return from.Domainpart() == m.server
}

// lookup returns the room named by j, from memory or from storage; nil if it does not exist.
func (m *Module) lookup(ctx context.Context, j jid.JID) (*room, error) {
	name := j.Localpart()
	m.mu.Lock()
	r := m.live[name]
	m.mu.Unlock()
	if r != nil {
		return r, nil
	}
	bare := j.Bare()
	b, err := m.rooms.Room(ctx, bare.String())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("muc: %w", err)
	}
	var cfg roomConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("muc: room %s: %w", bare, err)
	}
	affs, err := m.rooms.Affiliations(ctx, bare.String())
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("muc: %w", err)
	}
	r = newRoom(bare, cfg)
	r.stored = true
	for _, a := range affs {
		r.affs[a.JID] = a
	}
	// History on join survives a restart: the newest archived messages fill the in-memory history.
	if n := cfg.HistoryLength; n > 0 && m.archive != nil {
		items, _, err := m.archive.Query(ctx, r.str, storage.ArchiveQuery{Last: true, Limit: n})
		if err != nil {
			m.log.Warn("loading room history", "room", r.str, "err", err)
		}
		for _, it := range items {
			from, err := jid.Parse(it.With)
			if err != nil {
				continue
			}
			r.pushHistory(fromStored(it.Data, from), it.Time)
		}
	}
	return m.install(r), nil
}

// install puts a room in the live table unless another goroutine did first, and returns the one in the table.
func (m *Module) install(r *room) *room {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur := m.live[r.name]; cur != nil {
		return cur
	}
	m.live[r.name] = r
	m.Stats.Rooms.Add(1)
	return r
}

// drop removes a destroyed room from the live table.
func (m *Module) drop(r *room) {
	m.mu.Lock()
	if m.live[r.name] == r {
		delete(m.live, r.name)
		m.Stats.Rooms.Add(-1)
	}
	for full, rs := range m.sessions {
		if rs[r] {
			delete(rs, r)
			if len(rs) == 0 {
				delete(m.sessions, full)
			}
		}
	}
	m.mu.Unlock()
}

// track records that a real full JID is (in) or is no longer (out) in a room.
func (m *Module) track(full string, r *room, in bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.sessions[full]
	if in {
		if rs == nil {
			rs = make(map[*room]bool)
			m.sessions[full] = rs
		}
		rs[r] = true
		return
	}
	if rs != nil {
		delete(rs, r)
		if len(rs) == 0 {
			delete(m.sessions, full)
		}
	}
}

// sessionClosed takes an ended session out of every room it is still in.
func (m *Module) sessionClosed(ctx context.Context, s module.Session) {
	full := s.JID().String()
	m.mu.Lock()
	var rs []*room
	for r := range m.sessions[full] {
		rs = append(rs, r)
	}
	m.mu.Unlock()
	for _, r := range rs {
		m.leave(ctx, r, s.JID(), full, nil)
	}
}

// persist writes the room's configuration to storage if it is persistent, with every affiliation when the
// room is new there, and removes it from storage when it stopped being persistent.
func (m *Module) persist(ctx context.Context, r *room) {
	r.persistMu.Lock()
	defer r.persistMu.Unlock()
	r.mu.Lock()
	persistent, gone := r.cfg.Persistent && !r.locked, r.gone
	cfg := r.encodeConfig()
	var affs []storage.RoomAffiliation
	if !r.stored {
		for _, a := range r.affs {
			affs = append(affs, a)
		}
	}
	r.mu.Unlock()
	switch {
	case persistent && !gone:
		if err := m.rooms.PutRoom(ctx, r.str, cfg); err != nil {
			m.log.Error("storing room", "room", r.str, "err", err)
			return
		}
		for _, a := range affs {
			if err := m.rooms.SetAffiliation(ctx, r.str, a); err != nil {
				m.log.Error("storing affiliation", "room", r.str, "err", err)
			}
		}
		r.stored = true
	case r.stored:
		if err := m.rooms.DeleteRoom(ctx, r.str); err != nil && !errors.Is(err, storage.ErrNotFound) {
			m.log.Error("deleting room", "room", r.str, "err", err)
			return
		}
		r.stored = false
	}
}

// persistAff writes one user's current affiliation if the room is stored.
func (m *Module) persistAff(ctx context.Context, r *room, bare string) {
	r.persistMu.Lock()
	defer r.persistMu.Unlock()
	if !r.stored {
		return
	}
	r.mu.Lock()
	a, ok := r.affs[bare]
	r.mu.Unlock()
	if !ok {
		a = storage.RoomAffiliation{JID: bare, Affiliation: storage.AffNone}
	}
	if err := m.rooms.SetAffiliation(ctx, r.str, a); err != nil {
		m.log.Error("storing affiliation", "room", r.str, "err", err)
	}
}

// maybeExpire deletes archived room messages older than the retention, at most once an hour, in the
// background.
func (m *Module) maybeExpire() {
	if m.cfg.ArchiveRetention < 0 || m.archive == nil {
		return
	}
	now := m.now().Unix()
	last := m.lastExp.Load()
	if now-last < 3600 || !m.lastExp.CompareAndSwap(last, now) {
		return
	}
	cutoff := m.now().Add(-m.cfg.ArchiveRetention)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		n, err := m.archive.DeleteBefore(ctx, cutoff)
		if err != nil {
			m.log.Warn("expiring room archives", "err", err)
			return
		}
		if n > 0 {
			m.log.Info("expired room messages", "count", n)
		}
	}()
}

var _ module.Module = (*Module)(nil)
var _ module.ServiceHandler = (*Module)(nil)

// deleteArchive deletes a room's archived messages, when rooms are archived; why is the log message of a
// failure.
func (m *Module) deleteArchive(ctx context.Context, room, why string) {
	if m.archive == nil {
		return
	}
	if err := m.archive.DeleteOwner(ctx, room); err != nil {
		m.log.Warn(why, "room", room, "err", err)
	}
}
