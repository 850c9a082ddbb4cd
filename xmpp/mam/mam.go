// Package mam implements XEP-0313: Message Archive Management for user accounts, with the XEP-0359
// stanza ids it hands out, and de-duplication of client retries by origin id.
//
// Every archivable message is appended to the recipient's archive (stamped with a stanza-id the client can
// page from) before it is delivered, and to the sender's archive before it is routed. Appends go through the
// storage driver's group commit, so the archive is the durable copy that lets the server acknowledge a message
// to its sender (XEP-0198) knowing it cannot be lost.
package mam

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/mamcodec"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// NSSid is the XEP-0359 namespace.
const NSSid = "urn:xmpp:sid:0"

// Config configures the archive.
type Config struct {
	// Retention is how long messages are kept. Default 720h (30 days); 0 turns archiving off.
	Retention *time.Duration `yaml:"retention"`
	// SweepInterval is how often expired messages are deleted. Default 1h.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// PageSize and MaxPageSize bound MAM pages. Defaults 50 and 250.
	PageSize    int `yaml:"page_size"`
	MaxPageSize int `yaml:"max_page_size"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Retention != nil && *c.Retention < 0 {
		errs = append(errs, errors.New("archive.retention: must not be negative"))
	}
	if c.SweepInterval < 0 {
		errs = append(errs, errors.New("archive.sweep_interval: must not be negative"))
	}
	if c.PageSize < 0 || c.MaxPageSize < 0 || (c.MaxPageSize > 0 && c.PageSize > c.MaxPageSize) {
		errs = append(errs, errors.New("archive.page_size, archive.max_page_size: must be positive, page_size at most max_page_size"))
	}
	return errors.Join(errs...)
}

// Enabled reports whether archiving is on.
func (c Config) Enabled() bool { return c.Retention == nil || *c.Retention > 0 }

func (c Config) retention() time.Duration {
	if c.Retention == nil {
		return 30 * 24 * time.Hour
	}
	return *c.Retention
}

// Module archives messages and answers MAM queries.
type Module struct {
	cfg     Config
	archive storage.Archive
	kv      storage.KV
	log     *slog.Logger
	router  module.Router
	limits  mamcodec.Limits

	prefs   prefsCache
	recent  recentOrigins
	retries retries

	Archived   atomic.Uint64
	Duplicates atomic.Uint64
}

// New returns the module; archive is the store's "mam" archive, kv holds preferences.
func New(cfg Config, archive storage.Archive, kv storage.KV) *Module {
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = time.Hour
	}
	return &Module{cfg: cfg, archive: archive, kv: kv, limits: mamcodec.Limits{Default: cfg.PageSize, Max: cfg.MaxPageSize}}
}

// Name implements module.Module.
func (*Module) Name() string { return "mam" }

// Register implements module.Module.
func (m *Module) Register(h *module.Host) error {
	m.log = h.Log()
	m.router = h.Router()
	if !m.cfg.Enabled() {
		return nil
	}
	routes := []struct {
		typ, local, feature string
		fn                  module.IQHandler
	}{
		{"set", "query", mamcodec.NS, m.query},
		{"get", "query", "", m.fields},
		{"get", "metadata", "", m.metadata},
		{"get", "prefs", "", m.getPrefs},
		{"set", "prefs", "", m.setPrefs},
	}
	for _, r := range routes {
		if err := h.HandleIQ(module.IQRoute{Target: module.Account, Type: r.typ, NS: mamcodec.NS, Local: r.local, Feature: r.feature}, r.fn); err != nil {
			return err
		}
	}
	for _, f := range []string{mamcodec.NSExtended, NSSid} {
		if err := h.Feature(module.Account, f); err != nil {
			return err
		}
	}
	h.OnMessage(module.Outbound, m.outbound)
	h.OnMessage(module.Inbound, m.inbound)
	// Undeliverable too: a message stored offline is also in the archive, so other devices see it by MAM.
	h.OnMessage(module.Undeliverable, m.inbound)
	return nil
}

// Run deletes messages past the retention every SweepInterval (module.Runner).
func (m *Module) Run(ctx context.Context) {
	if !m.cfg.Enabled() {
		return
	}
	module.Every(ctx, m.cfg.SweepInterval, func(ctx context.Context) {
		n, err := m.archive.DeleteBefore(ctx, time.Now().Add(-m.cfg.retention()))
		if err != nil && ctx.Err() == nil {
			m.log.Error("archive retention sweep failed", "err", err)
		} else if n > 0 {
			m.log.Info("archive retention sweep", "deleted", n, "older_than", m.cfg.retention())
		}
	})
}

// archivable says whether a message goes to the archive: chat and normal messages with content a user would
// look for on another device (a body, an encrypted payload, a chat marker or receipt), not chat states alone,
// not with a no-store or no-permanent-store hint (XEP-0334).
func archivable(s *stanza.Stanza) bool {
	if s.Type != "" && s.Type != "normal" && s.Type != "chat" {
		return false
	}
	p := s.Payload()
	if bytes.Contains(p, []byte("urn:xmpp:hints")) && (bytes.Contains(p, []byte("<no-store")) || bytes.Contains(p, []byte("<no-permanent-store"))) {
		return false
	}
	for _, mark := range [][]byte{[]byte("<body"), []byte("<encrypted"), []byte("urn:xmpp:chat-markers:0"), []byte("urn:xmpp:receipts"), []byte("<store")} {
		if bytes.Contains(p, mark) {
			return true
		}
	}
	return false
}

func (m *Module) outbound(ctx context.Context, d *module.Delivery) (module.Verdict, error) {
	s := d.Stanza
	if !archivable(s) || s.To.Equal(jid.JID{}) {
		return module.Continue, nil
	}
	owner := d.Owner.String()
	with := s.To.Bare().String()
	oid := stanza.OriginID(s)
	if oid != "" && !m.recent.add(owner, with, oid) {
		// The same message is still on its way to the archive (appends are queued, see module.Append).
		m.Duplicates.Add(1)
		return module.Handled, nil
	}
	if oid != "" && m.router.IsLocal(s.To) && s.To.Localpart() != "" {
		// A retry of a message the recipient's archive already holds: the first attempt was delivered (or
		// stored), only our ack was lost. The recipient's copy is the one that counts, because it is written
		// last, right before delivery or offline storage.
		dup, err := m.archive.HasOrigin(ctx, with, owner, oid)
		if err != nil {
			return module.Continue, fmt.Errorf("archive: %w", err)
		}
		if dup {
			m.Duplicates.Add(1)
			if m.deliverable(s.To) {
				return module.Handled, nil
			}
			// No session takes it: the first attempt went to the offline queue, which may lack it (a version
			// that did not commit a message's copies together, or a crash between them). Route it on, without
			// a second archive copy, so that the offline store completes whichever copy is missing (issue 19,
			// item 9: a de-duplicated retry that was never delivered to a client without MAM).
			m.retries.add(with, owner, oid)
		}
	}
	if ok, err := m.wants(ctx, owner, with); err != nil || !ok {
		return module.Continue, err
	}
	if oid != "" {
		// The sender's copy may be there from an attempt that died before reaching the recipient.
		if dup, err := m.archive.HasOrigin(ctx, owner, with, oid); err != nil || dup {
			return module.Continue, err
		}
	}
	item := storage.ArchiveItem{ID: stanza.NewID(), With: with, Time: time.Now().UTC(), OriginID: oid, Data: s.Raw}
	if err := module.Append(ctx, d.Origin.Durability, m.archive, owner, item); err != nil {
		return module.Continue, fmt.Errorf("archive: %w", err)
	}
	m.Archived.Add(1)
	return module.Continue, nil
}

func (m *Module) inbound(ctx context.Context, d *module.Delivery) (module.Verdict, error) {
	s := d.Stanza
	if !archivable(s) {
		return module.Continue, nil
	}
	owner := d.Owner.String()
	from := s.From.Bare().String()
	if ok, err := m.wants(ctx, owner, from); err != nil || !ok {
		return module.Continue, err
	}
	if bytes.Contains(s.Payload(), []byte(NSSid)) {
		// The server routes again what a session took and never acknowledged (a stream-management session that
		// ended unresumed, xmpp/c2s terminate): it carries the stanza-id this archive stamped and is archived
		// already. A message is archived once, whatever path delivers it (issue 19, item 1).
		if d.Origin.Kind == module.OriginServer {
			done, err := m.archived(ctx, owner, from, s)
			if err != nil || done {
				return module.Continue, err
			}
		}
		// A stanza-id claiming to be by this archive was not put there by us (XEP-0359 section 4): remove it.
		s = s.WithoutChildren(func(local, ns string, raw []byte) bool {
			return local == "stanza-id" && ns == NSSid && stanza.ChildAttr(raw, "by") == owner
		})
	}
	if _, ok := d.Origin.FromSession(); ok && m.retries.pending() && m.retries.take(owner, from, stanza.OriginID(s)) {
		// A retry the outbound hook let through to complete the offline copy: the archive has its copy.
		d.Stanza = s
		return module.Continue, nil
	}
	id := stanza.NewID()
	sid := []byte("<stanza-id xmlns='" + NSSid + "' by='")
	sid = stanza.AppendEscape(sid, owner)
	sid = append(sid, "' id='"+id+"'/>"...)
	s = s.AppendChild(sid)
	item := storage.ArchiveItem{ID: id, With: from, Time: time.Now().UTC(), OriginID: stanza.OriginID(s), Data: s.Raw}
	if err := module.Append(ctx, d.Origin.Durability, m.archive, owner, item); err != nil {
		return module.Continue, fmt.Errorf("archive: %w", err)
	}
	m.Archived.Add(1)
	d.Stanza = s
	return module.Continue, nil
}

// deliverable reports whether the router would deliver a message to to now rather than store it offline
// (RFC 6121 8.5.2 and 8.5.3): to is the full JID of a bound session, or the account has an available session
// with non-negative priority, on this node or another.
func (m *Module) deliverable(to jid.JID) bool {
	res := m.router.Lookup(to.Bare())
	for _, sess := range res.Local {
		if sess.JID().Equal(to) || (sess.Available() && sess.Priority() >= 0) {
			return true
		}
	}
	for _, r := range res.Remote {
		if r.JID.Equal(to) || (r.Available && r.Priority >= 0) {
			return true
		}
	}
	return false
}

// archived reports whether s carries a stanza-id by owner that names an item of owner's archive from from:
// s is then a copy of an archived message, not a new one. A forged stanza-id names no item.
func (m *Module) archived(ctx context.Context, owner, from string, s *stanza.Stanza) (bool, error) {
	var id string
	stanza.Children(s.Payload(), func(local, ns string, raw []byte) bool {
		if local == "stanza-id" && ns == NSSid && stanza.ChildAttr(raw, "by") == owner {
			id = stanza.ChildAttr(raw, "id")
			return false
		}
		return true
	})
	if id == "" {
		return false, nil
	}
	for try := 0; try < 2; try++ {
		items, _, err := m.archive.Query(ctx, owner, storage.ArchiveQuery{IDs: []string{id}, Limit: 1})
		if err != nil {
			return false, fmt.Errorf("archive: %w", err)
		}
		if len(items) > 0 {
			return items[0].With == from, nil
		}
		// Its append may still be queued (live delivery does not wait for the commit): wait for what is queued
		// and look again, once.
		q, ok := m.archive.(storage.Queued)
		if !ok || try > 0 {
			break
		}
		c, _ := q.Queue()
		if err := c.Sync(ctx); err != nil {
			return false, fmt.Errorf("archive: %w", err)
		}
	}
	return false, nil
}

func (m *Module) query(ctx context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() || iq.Origin.Session == nil {
		return nil, stanza.ErrForbidden
	}
	q, err := mamcodec.ParseQuery(iq.Payload, m.limits)
	if err != nil {
		return nil, err
	}
	if q.Node != "" {
		return nil, stanza.ErrItemNotFound
	}
	owner := iq.From.Bare()
	page, err := mamcodec.Fetch(ctx, m.archive, owner.String(), q)
	if err != nil {
		return nil, err
	}
	for _, it := range page.Items {
		iq.Origin.Session.Send(mamcodec.ResultMessage(owner, iq.From, q.ID, it))
	}
	return mamcodec.AppendFin(nil, page), nil
}

func (m *Module) fields(_ context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() {
		return nil, stanza.ErrForbidden
	}
	return mamcodec.AppendFields(nil), nil
}

// metadata answers XEP-0313's <metadata/> query: the first and last item of the archive.
func (m *Module) metadata(ctx context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() {
		return nil, stanza.ErrForbidden
	}
	owner := iq.From.Bare().String()
	first, _, err := m.archive.Query(ctx, owner, storage.ArchiveQuery{Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	last, _, err := m.archive.Query(ctx, owner, storage.ArchiveQuery{Limit: 1, Last: true})
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	b := []byte("<metadata xmlns='" + mamcodec.NS + "'>")
	for i, it := range [][]storage.ArchiveItem{first, last} {
		if len(it) == 0 {
			continue
		}
		b = append(b, map[int]string{0: "<start id='", 1: "<end id='"}[i]...)
		b = stanza.AppendEscape(b, it[0].ID)
		b = append(b, "' timestamp='"...)
		b = mamcodec.AppendTime(b, it[0].Time)
		b = append(b, "'/>"...)
	}
	return append(b, "</metadata>"...), nil
}

const prefsKey = "archive/prefs"

type prefsXML struct {
	XMLName xml.Name `xml:"urn:xmpp:mam:2 prefs"`
	Default string   `xml:"default,attr"`
	Always  []string `xml:"always>jid"`
	Never   []string `xml:"never>jid"`
}

// getPrefs returns the stored preferences.
func (m *Module) getPrefs(ctx context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() {
		return nil, stanza.ErrForbidden
	}
	v, err := m.kv.Value(ctx, iq.From.Bare().String(), prefsKey)
	if errors.Is(err, storage.ErrNotFound) {
		return []byte("<prefs xmlns='" + mamcodec.NS + "' default='always'><always/><never/></prefs>"), nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return v, nil
}

func (m *Module) setPrefs(ctx context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() {
		return nil, stanza.ErrForbidden
	}
	var p prefsXML
	if err := xml.Unmarshal(iq.Payload, &p); err != nil || (p.Default != "always" && p.Default != "never" && p.Default != "roster") {
		return nil, stanza.Errorf("bad-request", "default must be always, never or roster")
	}
	out, _ := xml.Marshal(p)
	if err := m.kv.PutValue(ctx, iq.From.Bare().String(), prefsKey, out); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	m.prefs.forget(iq.From.Bare().String())
	return out, nil
}

// wants applies the owner's preferences (XEP-0313 section 6.1) to a message with peer: the always and never
// lists win, then the default. "roster" is treated as "always": the archive cannot see rosters.
func (m *Module) wants(ctx context.Context, owner, peer string) (bool, error) {
	p, err := m.prefs.get(ctx, m.kv, owner)
	if err != nil {
		return false, err
	}
	if p == nil {
		return true, nil
	}
	for _, j := range p.Never {
		if j == peer {
			return false, nil
		}
	}
	for _, j := range p.Always {
		if j == peer {
			return true, nil
		}
	}
	return p.Default != "never", nil
}

// prefsCache keeps parsed preferences for a minute, so that archiving a message costs no extra read; on a
// cluster another node sees a change within that minute.
type prefsCache struct {
	mu sync.Mutex
	m  map[string]cachedPrefs
}

type cachedPrefs struct {
	p  *prefsXML
	at time.Time
}

func (c *prefsCache) get(ctx context.Context, kv storage.KV, owner string) (*prefsXML, error) {
	c.mu.Lock()
	e, ok := c.m[owner]
	c.mu.Unlock()
	if ok && time.Since(e.at) < time.Minute {
		return e.p, nil
	}
	v, err := kv.Value(ctx, owner, prefsKey)
	var p *prefsXML
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("archive: %w", err)
	default:
		p = new(prefsXML)
		if err := xml.Unmarshal(v, p); err != nil {
			p = nil
		}
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) > 100000 {
		c.m = make(map[string]cachedPrefs)
	}
	c.m[owner] = cachedPrefs{p: p, at: time.Now()}
	c.mu.Unlock()
	return p, nil
}

func (c *prefsCache) forget(owner string) {
	c.mu.Lock()
	delete(c.m, owner)
	c.mu.Unlock()
}

// recentOrigins remembers the origin ids of messages accepted in the last minutes. The archive lookup cannot see
// a message whose append is still queued, so a quick retry would pass it; this catches that on one node.
type recentOrigins struct {
	mu    sync.Mutex
	cur   map[string]struct{}
	prev  map[string]struct{}
	since time.Time
}

const recentWindow = 5 * time.Minute

// add records sender/with/oid and reports false if it was already recorded within the window.
func (r *recentOrigins) add(sender, with, oid string) bool {
	k := sender + "\x00" + with + "\x00" + oid
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.since) > recentWindow {
		// Two generations: an entry lives between one and two windows, memory stays bounded by traffic.
		r.prev, r.cur, r.since = r.cur, make(map[string]struct{}), time.Now()
	}
	if _, ok := r.cur[k]; ok {
		return false
	}
	if _, ok := r.prev[k]; ok {
		return false
	}
	r.cur[k] = struct{}{}
	return true
}

// retries holds the retries that the outbound hook found in the recipient's archive and routes on to complete
// the offline copy (recipient, sender, origin id), so that the recipient's hook adds no second archive copy.
// An entry is taken by that hook; one the routing never reached it with (a bounce) expires after a minute.
type retries struct {
	n  atomic.Int32 // entries in m: the recipient's hook looks only when there are any
	mu sync.Mutex
	m  map[string]time.Time
}

func retryKey(owner, with, oid string) string { return owner + "\x00" + with + "\x00" + oid }

func (r *retries) add(owner, with, oid string) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]time.Time)
	}
	for k, at := range r.m {
		if now.Sub(at) > time.Minute {
			delete(r.m, k)
		}
	}
	r.m[retryKey(owner, with, oid)] = now
	r.n.Store(int32(len(r.m)))
}

func (r *retries) pending() bool { return r.n.Load() > 0 }

// take removes the entry and reports whether it was there.
func (r *retries) take(owner, with, oid string) bool {
	if oid == "" {
		return false
	}
	k := retryKey(owner, with, oid)
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.m[k]
	delete(r.m, k)
	r.n.Store(int32(len(r.m)))
	return ok
}

var (
	_ module.Module = (*Module)(nil)
	_ module.Runner = (*Module)(nil)
)
