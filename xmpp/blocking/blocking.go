// Package blocking implements XEP-0191: Blocking Command.
//
// Each account has a block list of JIDs, kept as one record in the key-value store and cached in memory while
// the account is in use. A blocked bare JID matches all its resources, a blocked domain every JID of that
// domain, a blocked full JID that resource only (XEP-0191 section 3.2, with the JID matching rules of XEP-0016).
// Messages from a blocked entity are dropped silently, IQ requests answered with service-unavailable, presence
// dropped; what the user sends to a blocked entity is refused with not-acceptable and the
// urn:xmpp:blocking:errors condition, except presence broadcasts, which simply skip it.
package blocking

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// Namespaces.
const (
	NS       = "urn:xmpp:blocking"
	NSErrors = "urn:xmpp:blocking:errors"
)

// kvKey is the key-value record holding an account's block list: the JIDs, one per line, in blocking order.
const kvKey = "blocking/list"

// Config configures blocking.
type Config struct {
	// MaxItems is the most JIDs one account may block. Default 1000.
	MaxItems int `yaml:"max_items"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.MaxItems < 0 {
		return errors.New("blocking.max_items: must not be negative")
	}
	return nil
}

// errBlocked is the answer to what a user sends to an entity it blocked (XEP-0191 section 3.5).
var errBlocked = &stanza.Error{Condition: "not-acceptable", App: []byte("<blocked xmlns='" + NSErrors + "'/>")}

// list is one account's block list.
type list struct {
	items []jid.JID           // in blocking order, for the blocklist result
	set   map[string]struct{} // the items' strings, for block and unblock
	// exact are the items matched by equality (full JIDs, bare JIDs, domains), domainRes the domain/resource
	// ones.
	exact, domainRes []jid.JID
}

// Module serves urn:xmpp:blocking and applies the block lists to what the router passes.
type Module struct {
	cfg    Config
	kv     storage.KV
	roster storage.Roster
	router module.Router

	mu sync.Mutex
	// lists caches the block lists of the accounts in use (loaded on first use, dropped when the last session
	// of the account closes).
	lists map[string]*list
	// interested are the full JIDs of the sessions that asked for the block list, per account: they get the
	// pushes (XEP-0191 section 3.3 and 3.4).
	interested map[string]map[string]bool
}

// New returns the module. kv holds the block lists; roster tells which contacts get unavailable presence when
// blocked.
func New(cfg Config, kv storage.KV, roster storage.Roster) *Module {
	if cfg.MaxItems == 0 {
		cfg.MaxItems = 1000
	}
	return &Module{cfg: cfg, kv: kv, roster: roster, lists: make(map[string]*list),
		interested: make(map[string]map[string]bool)}
}

// Name implements module.Module.
func (*Module) Name() string { return "blocking" }

// Register implements module.Module: the blocklist get and the block and unblock sets on the account, the
// message stages (refusing outbound, dropping inbound and undeliverable messages) and the presence and IQ
// filters, and the Closed hook that forgets the session.
func (m *Module) Register(h *module.Host) error {
	m.router = h.Router()
	if err := h.HandleIQ(module.IQRoute{Target: module.Account, Type: "get", NS: NS, Local: "blocklist", Feature: NS}, m.blocklist); err != nil {
		return err
	}
	if err := h.HandleIQ(module.IQRoute{Target: module.Account, Type: "set", NS: NS, Local: "block"}, m.block); err != nil {
		return err
	}
	if err := h.HandleIQ(module.IQRoute{Target: module.Account, Type: "set", NS: NS, Local: "unblock"}, m.unblock); err != nil {
		return err
	}
	h.OnMessage(module.Outbound, m.outboundMessage)
	h.OnMessage(module.Inbound, m.inboundMessage)
	h.OnMessage(module.Undeliverable, m.inboundMessage)
	h.OnFilter(module.Outbound, m.outboundFilter)
	h.OnFilter(module.Inbound, m.inboundFilter)
	h.OnSession(module.Closed, m.closed)
	return nil
}

// Blocked reports whether owner (a bare JID) has blocked peer.
func (m *Module) Blocked(ctx context.Context, owner, peer jid.JID) (bool, error) {
	if peer.Equal(jid.JID{}) || peer.Bare().Equal(owner) {
		return false, nil // never one's own account: its resources and the server's answers to it must pass
	}
	l, err := m.load(ctx, owner)
	if err != nil {
		return false, err
	}
	if len(l.items) == 0 {
		return false, nil
	}
	return matches(l, peer), nil
}

// matches applies the XEP-0016 order: full JID, bare JID, domain/resource, domain. l is never modified once
// cached (changes replace it), so it is read without the lock. It runs for every stanza of an account with a
// non-empty list, so it compares JIDs with Equal, which neither converts nor allocates (a string key would be
// built from parts that go to the heap past 32 bytes); the list is bounded by blocking.max_items.
func matches(l *list, peer jid.JID) bool {
	bare, dom := peer.Bare(), peer.Domain()
	hasRes, hasLocal := !peer.Equal(bare), !bare.Equal(dom)
	for _, it := range l.exact {
		if it.Equal(peer) || (hasRes && it.Equal(bare)) || ((hasRes || hasLocal) && it.Equal(dom)) {
			return true
		}
	}
	if hasLocal && hasRes {
		for _, it := range l.domainRes {
			// Rare items: comparing the resource strings may allocate for long resources.
			if it.Domain().Equal(dom) && it.Resourcepart() == peer.Resourcepart() {
				return true
			}
		}
	}
	return false
}

func newList(items []jid.JID) *list {
	l := &list{items: items, set: make(map[string]struct{}, len(items))}
	for _, j := range items {
		l.set[j.String()] = struct{}{}
		if b := j.Bare(); !j.Equal(b) && b.Equal(j.Domain()) {
			l.domainRes = append(l.domainRes, j)
		} else {
			l.exact = append(l.exact, j)
		}
	}
	return l
}

// appendKey appends j's string form to b (as the router's directory keys do), without allocating when its
// parts are short.
func appendKey(b []byte, j jid.JID) []byte {
	if l := j.Localpart(); l != "" {
		b = append(append(b, l...), '@')
	}
	b = append(b, j.Domainpart()...)
	if res := j.Resourcepart(); res != "" {
		b = append(append(b, '/'), res...)
	}
	return b
}

// load returns owner's block list, from the cache or the store.
func (m *Module) load(ctx context.Context, owner jid.JID) (*list, error) {
	// The cache lookup runs for every message, presence and IQ an account sends or gets: the key is built in a
	// stack buffer, and the map lookup with string(bytes) does not allocate.
	var buf [256]byte
	k := appendKey(buf[:0], owner)
	m.mu.Lock()
	l := m.lists[string(k)]
	m.mu.Unlock()
	if l != nil {
		return l, nil
	}
	key := owner.String()
	raw, err := m.kv.Value(ctx, key, kvKey)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("blocking: %w", err)
	}
	var items []jid.JID
	for _, line := range strings.Split(string(raw), "\n") {
		if line == "" {
			continue
		}
		if j, err := jid.Parse(line); err == nil {
			items = append(items, j)
		}
	}
	l = newList(items)
	if len(m.router.Sessions(owner)) == 0 {
		// Only accounts with a session here are cached (Closed drops them): stanzas for offline accounts must
		// not grow the cache without bound.
		return l, nil
	}
	m.mu.Lock()
	if cur := m.lists[key]; cur != nil {
		l = cur // loaded meanwhile, perhaps changed since: keep that one
	} else {
		m.lists[key] = l
	}
	m.mu.Unlock()
	return l, nil
}

// store saves owner's new block list and caches it.
func (m *Module) store(ctx context.Context, owner jid.JID, items []jid.JID) error {
	var b strings.Builder
	for _, j := range items {
		b.WriteString(j.String())
		b.WriteByte('\n')
	}
	key := owner.String()
	var err error
	if len(items) == 0 {
		err = m.kv.DeleteValue(ctx, key, kvKey)
	} else {
		err = m.kv.PutValue(ctx, key, kvKey, []byte(b.String()))
	}
	if err != nil {
		return fmt.Errorf("blocking: %w", err)
	}
	m.mu.Lock()
	m.lists[key] = newList(items)
	m.mu.Unlock()
	return nil
}

func (m *Module) blocklist(ctx context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() {
		return nil, stanza.ErrForbidden // only one's own list
	}
	owner := iq.From.Bare()
	l, err := m.load(ctx, owner)
	if err != nil {
		return nil, err
	}
	if s, ok := iq.Origin.FromSession(); ok {
		// XEP-0191 section 3.3: pushes go to the resources that asked for the list.
		m.mu.Lock()
		set := m.interested[owner.String()]
		if set == nil {
			set = make(map[string]bool)
			m.interested[owner.String()] = set
		}
		set[s.JID().String()] = true
		m.mu.Unlock()
	}
	b := []byte("<blocklist xmlns='" + NS + "'>")
	b = appendItems(b, l.items)
	return append(b, "</blocklist>"...), nil
}

func appendItems(b []byte, items []jid.JID) []byte {
	for _, j := range items {
		b = append(b, "<item jid='"...)
		b = stanza.AppendEscape(b, j.String())
		b = append(b, "'/>"...)
	}
	return b
}

// parseItems returns the JIDs of the <item/> children of the block or unblock element payload.
func parseItems(payload []byte) ([]jid.JID, error) {
	var items []jid.JID
	var bad error
	stanza.Children(inner(payload), func(local, ns string, raw []byte) bool {
		if local != "item" || (ns != "" && ns != NS) {
			return true
		}
		j, err := jid.Parse(stanza.ChildAttr(raw, "jid"))
		if err != nil || j.Equal(jid.JID{}) {
			bad = stanza.Errorf("jid-malformed", "item without a valid jid")
			return false
		}
		items = append(items, j)
		return true
	})
	return items, bad
}

// inner returns the content of the element el.
func inner(el []byte) []byte {
	end := stanza.StartTagEnd(el)
	if end <= 0 || el[end-2] == '/' {
		return nil
	}
	closing := bytes.LastIndex(el, []byte("</"))
	if closing < end {
		return nil
	}
	return el[end:closing]
}

func (m *Module) block(ctx context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() {
		return nil, stanza.ErrForbidden
	}
	owner := iq.From.Bare()
	add, err := parseItems(iq.Payload)
	if err != nil {
		return nil, err
	}
	if len(add) == 0 {
		return nil, stanza.Errorf("bad-request", "block without an item") // XEP-0191 section 3.3
	}
	l, err := m.load(ctx, owner)
	if err != nil {
		return nil, err
	}
	items := append([]jid.JID(nil), l.items...)
	seen := make(map[string]bool, len(l.items)+len(add))
	for k := range l.set {
		seen[k] = true
	}
	var added []jid.JID
	for _, j := range add {
		if seen[j.String()] {
			continue
		}
		seen[j.String()] = true
		items = append(items, j)
		added = append(added, j)
	}
	if len(added) == 0 {
		return nil, nil
	}
	if len(items) > m.cfg.MaxItems {
		return nil, stanza.Errorf("resource-constraint", "block list full")
	}
	// Before the list changes, while the filters still let it pass: contacts with a presence subscription see
	// the user go offline (XEP-0191 section 3.3).
	m.hidePresence(ctx, iq.Origin.Emitted(), owner, newList(added))
	if err := m.store(ctx, owner, items); err != nil {
		return nil, err
	}
	m.push(ctx, owner, "block", added)
	return nil, nil
}

func (m *Module) unblock(ctx context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() {
		return nil, stanza.ErrForbidden
	}
	owner := iq.From.Bare()
	remove, err := parseItems(iq.Payload)
	if err != nil {
		return nil, err
	}
	l, err := m.load(ctx, owner)
	if err != nil {
		return nil, err
	}
	var items []jid.JID
	if len(remove) > 0 { // an empty unblock unblocks everyone (XEP-0191 section 3.4)
		drop := make(map[string]bool, len(remove))
		for _, j := range remove {
			drop[j.String()] = true
		}
		for _, j := range l.items {
			if !drop[j.String()] {
				items = append(items, j)
			}
		}
		if len(items) == len(l.items) {
			return nil, nil
		}
	} else if len(l.items) == 0 {
		return nil, nil
	}
	if err := m.store(ctx, owner, items); err != nil {
		return nil, err
	}
	// The contacts no longer blocked that are subscribed to the user see its current presence again
	// (XEP-0191 section 3.4), now that the filters let it pass.
	was := l
	m.showPresence(ctx, iq.Origin.Emitted(), owner, func(c jid.JID) bool {
		if !matches(was, c) {
			return false
		}
		now, err := m.Blocked(ctx, owner, c)
		return err == nil && !now
	})
	m.push(ctx, owner, "unblock", remove)
	return nil, nil
}

// showPresence sends the current presence of each available resource of owner to the roster contacts with a
// subscription from owner (they receive its presence) for which unblocked reports true.
func (m *Module) showPresence(ctx context.Context, o module.Origin, owner jid.JID, unblocked func(jid.JID) bool) {
	var from []*stanza.Stanza
	for _, s := range m.router.Sessions(owner) {
		if p := s.Presence(); s.Available() && p != nil {
			from = append(from, p)
		}
	}
	if len(from) == 0 || m.roster == nil {
		return
	}
	contacts, _, err := m.roster.Roster(ctx, owner.String())
	if err != nil {
		return
	}
	for _, it := range contacts {
		if it.Subscription != storage.SubFrom && it.Subscription != storage.SubBoth {
			continue
		}
		c, err := jid.Parse(it.JID)
		if err != nil || !unblocked(c) {
			continue
		}
		for _, p := range from {
			m.router.Deliver(ctx, o, c, p)
		}
	}
}

// push sends a block or unblock push to the account's sessions that asked for the block list.
func (m *Module) push(ctx context.Context, owner jid.JID, local string, items []jid.JID) {
	payload := []byte("<" + local + " xmlns='" + NS + "'>")
	payload = appendItems(payload, items)
	payload = append(payload, "</"+local+">"...)
	m.mu.Lock()
	set := m.interested[owner.String()]
	m.mu.Unlock()
	for _, s := range m.router.Sessions(owner) {
		m.mu.Lock()
		ok := set[s.JID().String()]
		m.mu.Unlock()
		if ok {
			s.Send(stanza.New(stanza.IQ, "set", stanza.NewID(), owner, s.JID(), payload))
		}
	}
}

// hidePresence sends unavailable presence from each available resource of owner to the roster contacts that
// blocked matches and that have a subscription to or from owner.
func (m *Module) hidePresence(ctx context.Context, o module.Origin, owner jid.JID, blocked *list) {
	var from []jid.JID
	for _, s := range m.router.Sessions(owner) {
		if s.Available() {
			from = append(from, s.JID())
		}
	}
	if len(from) == 0 || m.roster == nil {
		return
	}
	contacts, _, err := m.roster.Roster(ctx, owner.String())
	if err != nil {
		return
	}
	for _, it := range contacts {
		if it.Subscription == storage.SubNone {
			continue
		}
		c, err := jid.Parse(it.JID)
		if err != nil || !matches(blocked, c) {
			continue
		}
		for _, f := range from {
			m.router.Deliver(ctx, o, c, stanza.New(stanza.Presence, "unavailable", "", f, c, nil))
		}
	}
}

func (m *Module) outboundMessage(ctx context.Context, d *module.Delivery) (module.Verdict, error) {
	blocked, err := m.Blocked(ctx, d.Owner, d.Stanza.To)
	if err != nil {
		return module.Continue, nil // a store failure must not stop mail
	}
	if blocked {
		if d.Stanza.Type == "error" {
			return module.Handled, nil
		}
		return module.Handled, errBlocked
	}
	return module.Continue, nil
}

func (m *Module) inboundMessage(ctx context.Context, d *module.Delivery) (module.Verdict, error) {
	// XEP-0191 section 3.5: a message from a blocked entity is dropped without an error.
	if blocked, _ := m.Blocked(ctx, d.Owner, d.Stanza.From); blocked {
		return module.Handled, nil
	}
	return module.Continue, nil
}

func (m *Module) outboundFilter(ctx context.Context, owner, peer jid.JID, s *stanza.Stanza) (module.Verdict, error) {
	if blocked, _ := m.Blocked(ctx, owner, peer); blocked {
		if s.Type == "error" || s.Type == "result" {
			return module.Handled, nil
		}
		return module.Handled, errBlocked
	}
	return module.Continue, nil
}

func (m *Module) inboundFilter(ctx context.Context, owner, peer jid.JID, s *stanza.Stanza) (module.Verdict, error) {
	if blocked, _ := m.Blocked(ctx, owner, peer); blocked {
		if s.IsIQRequest() {
			return module.Handled, stanza.ErrServiceUnavailable
		}
		return module.Handled, nil
	}
	return module.Continue, nil
}

// closed forgets the session's interest, and the account's cached list once its last session here is gone.
func (m *Module) closed(_ context.Context, s module.Session) {
	owner := s.JID().Bare()
	key := owner.String()
	rest := 0
	for _, o := range m.router.Sessions(owner) {
		if o != s {
			rest++
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if set := m.interested[key]; set != nil {
		delete(set, s.JID().String())
		if len(set) == 0 {
			delete(m.interested, key)
		}
	}
	if rest == 0 {
		delete(m.lists, key)
	}
}

var _ module.Module = (*Module)(nil)
