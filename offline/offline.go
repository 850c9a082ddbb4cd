// Package offline implements XEP-0160: Best Practices for Handling Offline Messages. A message for an account
// with no available resource is stored, stamped with a XEP-0203 delay, and delivered oldest first when a session
// of the account becomes available with non-negative priority; then it is deleted. Stored messages expire after
// a retention period, and each account has a cap past which the sender gets an error.
//
// Storage is an archive (named "offline"), written with module.Append: for a stanza a client session sent, the
// offline copy is queued in one unit with the message's archive copies and committed before the sender gets
// its ack, so a message the server acknowledged is on disk, and a crash cannot keep one copy without the other.
package offline

import (
	"bytes"
	"context"
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

// NS is the feature advertised for offline storage (XEP-0160 uses the legacy msgoffline feature).
const NS = "msgoffline"

// Config configures offline storage.
type Config struct {
	// Retention is how long a stored message waits for its recipient. Default 720h (30 days).
	Retention time.Duration `yaml:"retention"`
	// MaxPerAccount caps the messages stored for one account; past it the sender gets resource-constraint.
	// Default 10000.
	MaxPerAccount int `yaml:"max_per_account"`
	// SweepInterval is how often expired messages are deleted. Default 1h.
	SweepInterval time.Duration `yaml:"sweep_interval"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Retention < 0 {
		errs = append(errs, errors.New("offline.retention: must not be negative"))
	}
	if c.MaxPerAccount < 0 {
		errs = append(errs, errors.New("offline.max_per_account: must not be negative"))
	}
	if c.SweepInterval < 0 {
		errs = append(errs, errors.New("offline.sweep_interval: must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.Retention == 0 {
		c.Retention = 30 * 24 * time.Hour
	}
	if c.MaxPerAccount == 0 {
		c.MaxPerAccount = 10000
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = time.Hour
	}
}

// Module stores and delivers offline messages.
type Module struct {
	cfg     Config
	archive storage.Archive
	domain  jid.JID
	log     *slog.Logger

	// delivering guards against two sessions of one account draining the queue at the same time.
	mu         sync.Mutex
	delivering map[string]bool
	// counts caches how many messages each account has stored, so that enforcing the cap costs no count query
	// per message (a count is linear in the queue). Entries are loaded on first use and dropped on delivery and
	// expiry; on a cluster the cap is approximate, which is all a cap needs to be.
	counts map[string]int

	Stored    atomic.Uint64
	Delivered atomic.Uint64
	Expired   atomic.Uint64
}

// New returns the module; archive is the "offline" archive of the store.
func New(cfg Config, archive storage.Archive) *Module {
	cfg.setDefaults()
	return &Module{cfg: cfg, archive: archive, delivering: make(map[string]bool), counts: make(map[string]int)}
}

// Name implements module.Module.
func (*Module) Name() string { return "offline" }

// Register implements module.Module.
func (m *Module) Register(h *module.Host) error {
	m.domain = h.Domain()
	m.log = h.Log()
	h.OnMessage(module.Undeliverable, m.store)
	h.OnSession(module.Available, m.deliver)
	return h.Feature(module.Server, NS)
}

// Run deletes expired messages every SweepInterval until ctx ends (module.Runner).
func (m *Module) Run(ctx context.Context) {
	module.Every(ctx, m.cfg.SweepInterval, func(ctx context.Context) {
		n, err := m.archive.DeleteBefore(ctx, time.Now().Add(-m.cfg.Retention))
		if err != nil && ctx.Err() == nil {
			m.log.Error("expiring offline messages failed", "err", err)
		} else if n > 0 {
			m.mu.Lock()
			clear(m.counts)
			m.mu.Unlock()
			m.Expired.Add(uint64(n))
			m.log.Info("expired offline messages", "count", n, "older_than", m.cfg.Retention)
		}
	})
}

// storable reports whether a message is worth keeping for later (XEP-0160 section 3, XEP-0334 hints): normal and
// chat messages with a body, an encrypted payload, a receipt or marker, or an explicit store hint; never chat
// states alone, never with a no-store hint.
func storable(s *stanza.Stanza) bool {
	if s.Type != "" && s.Type != "normal" && s.Type != "chat" {
		return false
	}
	p := s.Payload()
	if bytes.Contains(p, []byte("<no-store")) && bytes.Contains(p, []byte("urn:xmpp:hints")) {
		return false
	}
	for _, marker := range [][]byte{
		[]byte("<body"), []byte("<encrypted"), []byte("urn:xmpp:receipts"), []byte("urn:xmpp:chat-markers:0"),
		[]byte("<store"), []byte("jabber:x:conference"), []byte("http://jabber.org/protocol/muc#user"), []byte("jabber:x:oob"),
	} {
		if bytes.Contains(p, marker) {
			return true
		}
	}
	return false
}

func (m *Module) store(ctx context.Context, d *module.Delivery) (module.Verdict, error) {
	s := d.Stanza
	if !storable(s) {
		return module.Handled, nil // silently dropped, as for a chat state to someone offline
	}
	owner := d.Owner.String()
	m.mu.Lock()
	n, ok := m.counts[owner]
	m.mu.Unlock()
	if !ok {
		c, err := m.archive.Count(ctx, owner, storage.ArchiveQuery{})
		if err != nil {
			return module.Continue, fmt.Errorf("offline: %w", err)
		}
		n = c
	}
	if n >= m.cfg.MaxPerAccount {
		return module.Continue, &stanza.Error{Condition: "resource-constraint", Type: "wait",
			Text: "the recipient's offline storage is full"}
	}
	with := s.From.Bare().String()
	oid := stanza.OriginID(s)
	if oid != "" {
		// A retry whose first attempt is already stored: stored once. The archive lets a retry through when the
		// recipient's archive lacks it, or holds it and the recipient has no session (so that this store adds
		// the copy it may lack).
		dup, err := m.archive.HasOrigin(ctx, owner, with, oid)
		if err != nil {
			return module.Continue, fmt.Errorf("offline: %w", err)
		}
		if dup {
			return module.Handled, nil
		}
	}
	now := time.Now().UTC()
	stored := s
	if !bytes.Contains(s.Payload(), []byte("urn:xmpp:delay")) {
		stored = s.AppendChild(delayElement(m.domain, now))
	}
	item := storage.ArchiveItem{ID: stanza.NewID(), With: with, Time: now, OriginID: oid, Data: stored.Raw}
	if err := module.Append(ctx, d.Origin.Durability, m.archive, owner, item); err != nil {
		return module.Continue, fmt.Errorf("offline: %w", err)
	}
	m.mu.Lock()
	if _, cached := m.counts[owner]; cached || !ok {
		m.counts[owner] = n + 1
	}
	m.mu.Unlock()
	m.Stored.Add(1)
	return module.Handled, nil
}

// delayElement is the XEP-0203 stamp of when the server took the message.
func delayElement(domain jid.JID, now time.Time) []byte {
	delay := []byte("<delay xmlns='urn:xmpp:delay' from='")
	delay = stanza.AppendEscape(delay, domain.String())
	delay = append(delay, "' stamp='"...)
	delay = now.AppendFormat(delay, "2006-01-02T15:04:05.000000Z")
	return append(delay, "'>Offline Storage</delay>"...)
}

// deliver sends the account's stored messages to a session that just became available, oldest first, and
// deletes each page once queued to the session.
func (m *Module) deliver(ctx context.Context, sess module.Session) {
	owner := sess.JID().Bare().String()
	m.mu.Lock()
	if m.delivering[owner] {
		m.mu.Unlock()
		return
	}
	m.delivering[owner] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.delivering, owner)
		m.mu.Unlock()
	}()
	for {
		items, _, err := m.archive.Query(ctx, owner, storage.ArchiveQuery{Limit: 200})
		if err != nil {
			m.log.Error("reading offline messages failed", "owner", owner, "err", err)
			return
		}
		if len(items) == 0 {
			return
		}
		ids := make([]string, 0, len(items))
		for _, it := range items {
			st, err := stanza.Parse(it.Data)
			if err != nil {
				// Unreadable (stored by a broken version?): drop it rather than block the queue forever.
				m.log.Error("dropping unreadable offline message", "owner", owner, "id", it.ID, "err", err)
				ids = append(ids, it.ID)
				continue
			}
			if err := sess.Send(st); err != nil {
				// The session went away: what was not queued stays stored for the next one.
				m.deleteDelivered(ctx, owner, ids)
				return
			}
			ids = append(ids, it.ID)
		}
		m.deleteDelivered(ctx, owner, ids)
		if len(items) < 200 {
			return
		}
	}
}

func (m *Module) deleteDelivered(ctx context.Context, owner string, ids []string) {
	if len(ids) == 0 {
		return
	}
	m.mu.Lock()
	delete(m.counts, owner)
	m.mu.Unlock()
	if err := m.archive.Delete(ctx, owner, ids...); err != nil {
		m.log.Error("deleting delivered offline messages failed", "owner", owner, "err", err)
		return
	}
	m.Delivered.Add(uint64(len(ids)))
}

var (
	_ module.Module = (*Module)(nil)
	_ module.Runner = (*Module)(nil)
)
