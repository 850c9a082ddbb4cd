// Package presence implements presence of RFC 6121 sections 3 and 4: the subscription state machine (with
// pre-approval), presence broadcast to subscribers and to the account's own resources, probes, directed presence,
// and unavailable presence when a session ends. Broadcasts and probes to contacts are routed (Router.Deliver):
// the router answers them from its Directory for local accounts and hands them to its Remote route otherwise;
// only the session's own resources on this node are written to directly. It also records each
// session's XEP-0115 capabilities for later use by PEP.
package presence

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/roster"
	"parley.im/parley/xmpp/stanza"
)

// pendingKey prefixes the key-value records that hold inbound subscription requests awaiting an answer; the
// request is redelivered at each login until the user answers it (RFC 6121 3.1.3). The roster module owns the
// name, because removing the contact answers the request too.
const pendingKey = roster.PendingKey

// Caps is a session's XEP-0115 capabilities announcement.
type Caps struct {
	Node, Ver, Hash string
}

// Module handles presence for local accounts.
type Module struct {
	roster storage.Roster
	kv     storage.KV
	router module.Router

	mu       sync.Mutex
	directed map[string]map[string]jid.JID // full JID of a session -> entities it sent directed presence to
	caps     map[string]Caps               // full JID -> capabilities
}

// New returns the presence module.
func New(r storage.Roster, kv storage.KV) *Module {
	return &Module{roster: r, kv: kv, directed: make(map[string]map[string]jid.JID), caps: make(map[string]Caps)}
}

// Name implements module.Module.
func (*Module) Name() string { return "presence" }

// Register implements module.Module.
func (m *Module) Register(h *module.Host) error {
	m.router = h.Router()
	if err := h.HandlePresence(m); err != nil {
		return err
	}
	h.OnSession(module.Closed, m.closed)
	// RFC 6121 3.4: subscription pre-approval is announced as a stream feature.
	h.StreamFeature("<sub xmlns='urn:xmpp:features:pre-approval'/>")
	return nil
}

// CapsOf returns the capabilities a session announced, if any.
func (m *Module) CapsOf(full jid.JID) (Caps, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.caps[full.String()]
	return c, ok
}

type presenceXML struct {
	Priority string `xml:"priority"`
	Caps     *struct {
		Node string `xml:"node,attr"`
		Ver  string `xml:"ver,attr"`
		Hash string `xml:"hash,attr"`
	} `xml:"http://jabber.org/protocol/caps c"`
}

// Outbound implements module.PresenceHandler.
func (m *Module) Outbound(ctx context.Context, o module.Origin, p *stanza.Stanza) error {
	s, ok := o.FromSession()
	if !ok {
		return nil
	}
	noTo := p.To.Equal(jid.JID{})
	switch p.Type {
	case "", "unavailable":
		if noTo {
			return m.broadcast(ctx, o, s, p)
		}
		return m.directedPresence(ctx, o, s, p)
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		if noTo {
			return stanza.ErrBadRequest
		}
		return m.outboundSubscription(ctx, s.JID().Bare(), p)
	case "probe":
		return nil // clients do not probe; the server does it for them
	case "error":
		if !noTo {
			m.router.Route(ctx, p)
		}
		return nil
	}
	return stanza.ErrBadRequest
}

// broadcast handles presence without to: the session's availability (RFC 6121 4.2, 4.4, 4.6).
func (m *Module) broadcast(ctx context.Context, o module.Origin, s module.Session, p *stanza.Stanza) error {
	owner := s.JID().Bare()
	items, _, err := m.roster.Roster(ctx, owner.String())
	if err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	if p.Type == "unavailable" {
		m.goOffline(ctx, o, s, p, items)
		return nil
	}
	var px presenceXML
	if err := xml.Unmarshal(p.Raw, &px); err != nil {
		return stanza.ErrBadRequest
	}
	prio := 0
	if px.Priority != "" {
		n, err := strconv.Atoi(px.Priority)
		if err != nil || n < -128 || n > 127 {
			return stanza.Errorf("bad-request", "priority must be an integer from -128 to 127")
		}
		prio = n
	}
	if px.Caps != nil {
		m.mu.Lock()
		m.caps[s.JID().String()] = Caps{Node: px.Caps.Node, Ver: px.Caps.Ver, Hash: px.Caps.Hash}
		m.mu.Unlock()
		s.SetCaps(px.Caps.Ver)
	}
	initial := !s.Available()
	wasNegative := s.Priority() < 0
	s.SetPresence(p, prio)
	// To subscribers (from/both) and to the account's own available resources, the sender included: routed,
	// the same bytes to every local recipient (RFC 6121 8.5.2.1.1), no re-encoding.
	m.toContacts(ctx, o, items, p, storage.SubFrom)
	m.router.Deliver(ctx, o, owner, p)
	if !initial {
		if wasNegative && prio >= 0 {
			m.router.Notify(ctx, module.Available, s)
		}
		return nil
	}
	// Initial presence: a probe to every contact the user is subscribed to (RFC 6121 4.3), from the session's
	// full JID so that the answers come to it alone; then the presence of the user's other resources here.
	probe := stanza.New(stanza.Presence, "probe", "", s.JID(), jid.JID{}, nil)
	m.toContacts(ctx, o, items, probe, storage.SubTo)
	for _, other := range m.router.Sessions(owner) {
		if other != s {
			if op := other.Presence(); op != nil {
				s.Send(op)
			}
		}
	}
	// Subscription requests that arrived while the user was away.
	if err := m.redeliverPending(ctx, s); err != nil {
		return err
	}
	if prio >= 0 {
		m.router.Notify(ctx, module.Available, s)
	}
	return nil
}

func (m *Module) goOffline(ctx context.Context, o module.Origin, s module.Session, p *stanza.Stanza,
	items []storage.RosterItem) {
	if !s.Available() {
		return
	}
	s.SetPresence(nil, 0)
	m.toContacts(ctx, o, items, p, storage.SubFrom)
	// The account's available resources, and the session itself, which is no longer available.
	m.router.Deliver(ctx, o, s.JID().Bare(), p)
	s.Send(p)
	m.mu.Lock()
	dir := m.directed[s.JID().String()]
	delete(m.directed, s.JID().String())
	m.mu.Unlock()
	for _, to := range dir {
		m.router.RouteFrom(ctx, o.Emitted(), p.WithTo(to))
	}
}

// toContacts routes p to the bare JID of every contact whose subscription is both or sub (from: those who
// receive the user's presence; to: those whose presence the user receives).
func (m *Module) toContacts(ctx context.Context, o module.Origin, items []storage.RosterItem, p *stanza.Stanza,
	sub storage.Subscription) {
	for _, it := range items {
		if it.Subscription != sub && it.Subscription != storage.SubBoth {
			continue
		}
		c, err := jid.Parse(it.JID)
		if err != nil {
			continue
		}
		m.router.Deliver(ctx, o, c, p)
	}
}

func (m *Module) directedPresence(ctx context.Context, o module.Origin, s module.Session, p *stanza.Stanza) error {
	key := s.JID().String()
	m.mu.Lock()
	if p.Type == "" {
		if m.directed[key] == nil {
			m.directed[key] = make(map[string]jid.JID)
		}
		m.directed[key][p.To.String()] = p.To
	} else if m.directed[key] != nil {
		delete(m.directed[key], p.To.String())
	}
	m.mu.Unlock()
	m.router.RouteFrom(ctx, o.Emitted(), p)
	return nil
}

func (m *Module) closed(ctx context.Context, s module.Session) {
	if cur := m.router.Session(s.JID()); cur != nil && cur != s {
		// A new session took over this full JID (resource conflict): what is recorded under it is the new
		// session's, and contacts must not see it go offline.
		return
	}
	un := stanza.New(stanza.Presence, "unavailable", "", s.JID(), jid.JID{}, nil)
	if s.Available() {
		items, _, err := m.roster.Roster(ctx, s.JID().Bare().String())
		if err == nil {
			m.goOffline(ctx, module.Origin{}, s, un, items)
		}
	}
	m.mu.Lock()
	dir := m.directed[s.JID().String()]
	delete(m.directed, s.JID().String())
	delete(m.caps, s.JID().String())
	m.mu.Unlock()
	// Whoever got directed presence hears that the session is gone, available or not (RFC 6121 4.6.3).
	for _, to := range dir {
		m.router.Route(ctx, un.WithTo(to))
	}
}

// outboundSubscription handles subscribe, subscribed, unsubscribe and unsubscribed sent by a user
// (RFC 6121 3.1.2, 3.1.5, 3.2.2, 3.3.2, 3.4).
func (m *Module) outboundSubscription(ctx context.Context, owner jid.JID, p *stanza.Stanza) error {
	contact := p.To.Bare()
	it, err := m.roster.RosterItem(ctx, owner.String(), contact.String())
	exists := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("presence: %w", err)
	}
	if !exists {
		it = storage.RosterItem{JID: contact.String(), Subscription: storage.SubNone}
	}
	sub := it.Subscription
	route := true
	changed := false
	var sendPresence, sendUnavailable bool
	switch p.Type {
	case "subscribe":
		if sub != storage.SubTo && sub != storage.SubBoth && !it.AskOut {
			it.AskOut, changed = true, true
		}
	case "subscribed":
		pending, err := m.pending(ctx, owner, contact)
		if err != nil {
			return err
		}
		switch {
		case sub == storage.SubFrom || sub == storage.SubBoth:
			route = false
		case pending:
			it.Subscription = map[storage.Subscription]storage.Subscription{storage.SubNone: storage.SubFrom, storage.SubTo: storage.SubBoth}[sub]
			it.PreApproved = false
			changed, sendPresence = true, true
			if err := m.kv.DeleteValue(ctx, owner.String(), pendingKey+contact.String()); err != nil {
				return fmt.Errorf("presence: %w", err)
			}
		default:
			// Pre-approval (RFC 6121 3.4): remember it, tell no one but the user's resources.
			route = false
			if !it.PreApproved {
				it.PreApproved, changed = true, true
			}
		}
	case "unsubscribe":
		if sub == storage.SubTo || sub == storage.SubBoth || it.AskOut {
			it.Subscription = map[storage.Subscription]storage.Subscription{storage.SubTo: storage.SubNone, storage.SubBoth: storage.SubFrom,
				storage.SubNone: storage.SubNone, storage.SubFrom: storage.SubFrom}[sub]
			it.AskOut, changed = false, true
		}
	case "unsubscribed":
		pending, err := m.pending(ctx, owner, contact)
		if err != nil {
			return err
		}
		if pending {
			if err := m.kv.DeleteValue(ctx, owner.String(), pendingKey+contact.String()); err != nil {
				return fmt.Errorf("presence: %w", err)
			}
		}
		if sub == storage.SubFrom || sub == storage.SubBoth {
			it.Subscription = map[storage.Subscription]storage.Subscription{storage.SubFrom: storage.SubNone, storage.SubBoth: storage.SubTo}[sub]
			changed, sendUnavailable = true, true
		}
		if it.PreApproved {
			it.PreApproved, changed = false, true
		}
		route = route && (pending || changed)
	}
	if changed && (exists || p.Type == "subscribe" || p.Type == "subscribed") {
		ver, err := m.roster.PutRosterItem(ctx, owner.String(), it)
		if err != nil {
			return fmt.Errorf("presence: %w", err)
		}
		roster.Push(ctx, m.router, owner, it, ver, false)
	}
	if route {
		// Subscription stanzas leave with the user's bare JID (RFC 6121 3.1.2).
		out := stanza.New(stanza.Presence, p.Type, p.ID, owner, contact, p.Payload())
		m.router.Route(ctx, out)
	}
	if sendPresence {
		for _, s := range m.router.Sessions(owner) {
			if sp := s.Presence(); sp != nil {
				m.router.Route(ctx, sp.WithTo(contact))
			}
		}
	}
	if sendUnavailable {
		for _, s := range m.router.Sessions(owner) {
			if s.Available() {
				m.router.Route(ctx, stanza.New(stanza.Presence, "unavailable", "", s.JID(), contact, nil))
			}
		}
	}
	return nil
}

func (m *Module) pending(ctx context.Context, owner, contact jid.JID) (bool, error) {
	_, err := m.kv.Value(ctx, owner.String(), pendingKey+contact.String())
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("presence: %w", err)
	}
	return true, nil
}

func (m *Module) redeliverPending(ctx context.Context, s module.Session) error {
	owner := s.JID().Bare().String()
	keys, err := m.kv.Keys(ctx, owner, pendingKey)
	if err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	for _, k := range keys {
		v, err := m.kv.Value(ctx, owner, k)
		if err != nil {
			continue
		}
		from, err := jid.Parse(k[len(pendingKey):])
		if err != nil {
			continue
		}
		s.Send(stanza.New(stanza.Presence, "subscribe", "", from, s.JID().Bare(), v))
	}
	return nil
}

// Inbound implements module.PresenceHandler: presence from anyone to a local account.
func (m *Module) Inbound(ctx context.Context, o module.Origin, to jid.JID, p *stanza.Stanza) error {
	owner := to.Bare()
	switch p.Type {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		return m.inboundSubscription(ctx, owner, p)
	case "probe":
		return m.probe(ctx, o, owner, p)
	}
	// Availability and errors: to the addressed resource, or to all available resources of the account.
	if to.Resourcepart() != "" {
		for _, s := range m.router.Sessions(owner) {
			if s.JID().Equal(to) {
				s.Send(p)
			}
		}
		return nil
	}
	if p.Type == "error" {
		return m.inboundError(ctx, owner, p)
	}
	for _, s := range m.router.Sessions(owner) {
		if s.Available() {
			s.Send(p)
		}
	}
	return nil
}

// inboundError handles a presence error addressed to the account's bare JID. The one that matters is the answer
// to a subscription request the user sent, which left from the bare JID: the contact's server could not be
// reached (the router bounces remote-server-not-found while there is no server-to-server), or it refused the
// request. No subscribed or unsubscribed will come after it, so the request is cancelled as if declined: the
// roster item loses its pending ask (else it stays ask='subscribe' forever), the user's interested resources get
// the roster push, and the available ones get the error, so that the client can say why. Any other presence
// error to the bare JID is dropped, as before.
func (m *Module) inboundError(ctx context.Context, owner jid.JID, p *stanza.Stanza) error {
	contact := p.From.Bare()
	it, err := m.roster.RosterItem(ctx, owner.String(), contact.String())
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	if !it.AskOut {
		return nil
	}
	it.AskOut = false
	ver, err := m.roster.PutRosterItem(ctx, owner.String(), it)
	if err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	roster.Push(ctx, m.router, owner, it, ver, false)
	for _, s := range m.router.Sessions(owner) {
		if s.Available() {
			s.Send(p)
		}
	}
	return nil
}

// inboundSubscription handles subscription stanzas from a contact (RFC 6121 3.1.3, 3.1.6, 3.2.3, 3.3.3).
func (m *Module) inboundSubscription(ctx context.Context, owner jid.JID, p *stanza.Stanza) error {
	contact := p.From.Bare()
	it, err := m.roster.RosterItem(ctx, owner.String(), contact.String())
	exists := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("presence: %w", err)
	}
	if !exists {
		it = storage.RosterItem{JID: contact.String(), Subscription: storage.SubNone}
	}
	sub := it.Subscription
	in := stanza.New(stanza.Presence, p.Type, p.ID, contact, owner, p.Payload())
	deliver := false
	changed := false
	switch p.Type {
	case "subscribe":
		switch {
		case sub == storage.SubFrom || sub == storage.SubBoth:
			// Already subscribed: answer for the user.
			m.router.Route(ctx, stanza.New(stanza.Presence, "subscribed", "", owner, contact, nil))
			return nil
		case exists && it.PreApproved:
			it.Subscription = map[storage.Subscription]storage.Subscription{storage.SubNone: storage.SubFrom, storage.SubTo: storage.SubBoth}[sub]
			it.PreApproved, changed = false, true
			m.router.Route(ctx, stanza.New(stanza.Presence, "subscribed", "", owner, contact, nil))
			for _, s := range m.router.Sessions(owner) {
				if sp := s.Presence(); sp != nil {
					m.router.Route(ctx, sp.WithTo(contact))
				}
			}
		default:
			if err := m.kv.PutValue(ctx, owner.String(), pendingKey+contact.String(), p.Payload()); err != nil {
				return fmt.Errorf("presence: %w", err)
			}
			deliver = true
		}
	case "subscribed":
		if !it.AskOut || sub == storage.SubTo || sub == storage.SubBoth {
			return nil // unsolicited: ignored (RFC 6121 3.1.6)
		}
		it.Subscription = map[storage.Subscription]storage.Subscription{storage.SubNone: storage.SubTo, storage.SubFrom: storage.SubBoth}[sub]
		it.AskOut, changed, deliver = false, true, true
	case "unsubscribe":
		if pending, _ := m.pending(ctx, owner, contact); pending {
			m.kv.DeleteValue(ctx, owner.String(), pendingKey+contact.String())
			deliver = true
		}
		if sub == storage.SubFrom || sub == storage.SubBoth {
			it.Subscription = map[storage.Subscription]storage.Subscription{storage.SubFrom: storage.SubNone, storage.SubBoth: storage.SubTo}[sub]
			changed, deliver = true, true
		}
	case "unsubscribed":
		if sub == storage.SubTo || sub == storage.SubBoth || it.AskOut {
			it.Subscription = map[storage.Subscription]storage.Subscription{storage.SubTo: storage.SubNone, storage.SubBoth: storage.SubFrom,
				storage.SubNone: storage.SubNone, storage.SubFrom: storage.SubFrom}[sub]
			it.AskOut, changed, deliver = false, true, true
		}
	}
	if changed && exists {
		ver, err := m.roster.PutRosterItem(ctx, owner.String(), it)
		if err != nil {
			return fmt.Errorf("presence: %w", err)
		}
		roster.Push(ctx, m.router, owner, it, ver, false)
	}
	if deliver {
		for _, s := range m.router.Sessions(owner) {
			if s.Available() && (s.Interested() || p.Type != "subscribe") {
				s.Send(in)
			}
		}
	}
	return nil
}

// probe answers a presence probe (RFC 6121 4.3.2) with the presence of each available resource on this node, if
// the prober is subscribed. The answers are routed to the prober unchanged (no to: Deliver addresses them).
func (m *Module) probe(ctx context.Context, o module.Origin, owner jid.JID, p *stanza.Stanza) error {
	sessions := m.router.Sessions(owner)
	if len(sessions) == 0 {
		return nil // nothing to answer with: spare the roster read
	}
	it, err := m.roster.RosterItem(ctx, owner.String(), p.From.Bare().String())
	if err != nil || (it.Subscription != storage.SubFrom && it.Subscription != storage.SubBoth) {
		return nil
	}
	for _, s := range sessions {
		if sp := s.Presence(); sp != nil {
			m.router.Deliver(ctx, o.Emitted(), p.From, sp)
		}
	}
	return nil
}

var (
	_ module.Module          = (*Module)(nil)
	_ module.PresenceHandler = (*Module)(nil)
)
