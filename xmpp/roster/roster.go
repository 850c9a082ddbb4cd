// Package roster implements the roster of RFC 6121 section 2: roster get, set and remove, roster pushes to
// interested resources, and roster versioning (XEP-0237, answered with the whole roster or nothing).
//
// Subscription states are changed by the presence module (RFC 6121 section 3), which uses Push to tell the
// account's resources.
package roster

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// NS is the roster namespace.
const NS = "jabber:iq:roster"

// Config configures the roster.
type Config struct {
	// MaxItems caps the number of contacts per account. Default 1000.
	MaxItems int `yaml:"max_items"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.MaxItems < 0 {
		return errors.New("roster.max_items: must not be negative")
	}
	return nil
}

// Module serves jabber:iq:roster.
type Module struct {
	cfg    Config
	store  storage.Roster
	kv     storage.KV // the presence module's pending inbound requests (PendingKey); nil: none kept
	router module.Router
}

// PendingKey prefixes the key-value records (storage.KV, owner = the account) that hold inbound subscription
// requests awaiting the user's answer: the presence module keeps one per contact and redelivers it at each
// login until the user answers it (RFC 6121 3.1.3); removing the contact from the roster answers it too.
const PendingKey = "presence/pending-in/"

// New returns the roster module. kv holds the pending inbound subscription requests (see PendingKey); it may
// be nil.
func New(cfg Config, store storage.Roster, kv storage.KV) *Module {
	if cfg.MaxItems == 0 {
		cfg.MaxItems = 1000
	}
	return &Module{cfg: cfg, store: store, kv: kv}
}

// Name implements module.Module.
func (*Module) Name() string { return "roster" }

// Register implements module.Module.
func (m *Module) Register(h *module.Host) error {
	m.router = h.Router()
	if err := h.HandleIQ(module.IQRoute{Target: module.Account, Type: "get", NS: NS, Local: "query"}, m.get); err != nil {
		return err
	}
	if err := h.HandleIQ(module.IQRoute{Target: module.Account, Type: "set", NS: NS, Local: "query"}, m.set); err != nil {
		return err
	}
	// XEP-0237 roster versioning is announced as a stream feature, not in disco.
	h.StreamFeature("<ver xmlns='urn:xmpp:features:rosterver'/>")
	return nil
}

type queryXML struct {
	Ver   *string   `xml:"ver,attr"`
	Items []itemXML `xml:"item"`
}

type itemXML struct {
	JID          string   `xml:"jid,attr"`
	Name         string   `xml:"name,attr"`
	Subscription string   `xml:"subscription,attr"`
	Ask          string   `xml:"ask,attr"`
	Groups       []string `xml:"group"`
}

func (m *Module) get(ctx context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() {
		return nil, stanza.ErrForbidden
	}
	var q queryXML
	if err := xml.Unmarshal(iq.Payload, &q); err != nil {
		return nil, stanza.ErrBadRequest
	}
	owner := iq.From.Bare().String()
	items, ver, err := m.store.Roster(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("roster: %w", err)
	}
	if iq.Origin.Session != nil {
		iq.Origin.Session.SetInterested()
	}
	verStr := strconv.FormatInt(ver, 10)
	if q.Ver != nil && *q.Ver == verStr {
		// The client's cached roster is current: an empty result, and pushes from here on.
		return nil, nil
	}
	b := []byte("<query xmlns='" + NS + "' ver='" + verStr + "'>")
	for _, it := range items {
		b = AppendItem(b, it)
	}
	return append(b, "</query>"...), nil
}

func (m *Module) set(ctx context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() {
		return nil, stanza.ErrForbidden
	}
	var q queryXML
	if err := xml.Unmarshal(iq.Payload, &q); err != nil || len(q.Items) != 1 {
		return nil, stanza.Errorf("bad-request", "a roster set carries exactly one item")
	}
	it := q.Items[0]
	contact, err := jid.Parse(it.JID)
	if err != nil || it.JID == "" {
		return nil, stanza.ErrJIDMalformed
	}
	contact = contact.Bare()
	owner := iq.From.Bare()
	if it.Subscription == "remove" {
		return nil, m.remove(ctx, owner, contact)
	}
	if utf8.RuneCountInString(it.Name) > 1024 {
		return nil, stanza.Errorf("not-acceptable", "name too long")
	}
	seen := make(map[string]bool, len(it.Groups))
	for _, g := range it.Groups {
		if g == "" || seen[g] || utf8.RuneCountInString(g) > 1024 {
			return nil, stanza.Errorf("bad-request", "empty, duplicate or oversized group")
		}
		seen[g] = true
	}
	cur, err := m.store.RosterItem(ctx, owner.String(), contact.String())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		items, _, err := m.store.Roster(ctx, owner.String())
		if err != nil {
			return nil, fmt.Errorf("roster: %w", err)
		}
		if len(items) >= m.cfg.MaxItems {
			return nil, stanza.Errorf("not-allowed", "roster is full")
		}
		cur = storage.RosterItem{JID: contact.String(), Subscription: storage.SubNone}
	case err != nil:
		return nil, fmt.Errorf("roster: %w", err)
	}
	// Subscription and ask attributes from the client are ignored (RFC 6121 2.1.2.5); only the presence
	// machinery changes them.
	cur.Name, cur.Groups = it.Name, it.Groups
	ver, err := m.store.PutRosterItem(ctx, owner.String(), cur)
	if err != nil {
		return nil, fmt.Errorf("roster: %w", err)
	}
	Push(ctx, m.router, owner, cur, ver, false)
	return nil, nil
}

// remove deletes a contact (RFC 6121 2.5.2): the subscriptions in both directions end and the contact is told.
func (m *Module) remove(ctx context.Context, owner, contact jid.JID) error {
	cur, err := m.store.RosterItem(ctx, owner.String(), contact.String())
	if errors.Is(err, storage.ErrNotFound) {
		return stanza.ErrItemNotFound
	}
	if err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	ver, err := m.store.DeleteRosterItem(ctx, owner.String(), contact.String())
	if err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	if cur.Subscription == storage.SubTo || cur.Subscription == storage.SubBoth || cur.AskOut {
		m.router.Route(ctx, stanza.New(stanza.Presence, "unsubscribe", "", owner, contact, nil))
	}
	pending := cur.PendingIn
	if m.kv != nil {
		// A request the user never answered is declined by the removal (RFC 6121 2.5.2) and forgotten, or it
		// would come back at every login.
		key := PendingKey + contact.String()
		if _, err := m.kv.Value(ctx, owner.String(), key); err == nil {
			pending = true
			if err := m.kv.DeleteValue(ctx, owner.String(), key); err != nil {
				return fmt.Errorf("roster: %w", err)
			}
		} else if !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("roster: %w", err)
		}
	}
	if cur.Subscription == storage.SubFrom || cur.Subscription == storage.SubBoth || pending {
		m.router.Route(ctx, stanza.New(stanza.Presence, "unsubscribed", "", owner, contact, nil))
	}
	Push(ctx, m.router, owner, cur, ver, true)
	return nil
}

// AppendItem appends the <item/> element for it.
func AppendItem(b []byte, it storage.RosterItem) []byte {
	b = append(b, "<item jid='"...)
	b = stanza.AppendEscape(b, it.JID)
	b = append(b, '\'')
	if it.Name != "" {
		b = append(b, " name='"...)
		b = stanza.AppendEscape(b, it.Name)
		b = append(b, '\'')
	}
	sub := it.Subscription
	if sub == "" {
		sub = storage.SubNone
	}
	b = append(b, " subscription='"...)
	b = append(b, sub...)
	b = append(b, '\'')
	if it.AskOut {
		b = append(b, " ask='subscribe'"...)
	}
	if it.PreApproved {
		b = append(b, " approved='true'"...)
	}
	if len(it.Groups) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	for _, g := range it.Groups {
		b = append(b, "<group>"...)
		b = stanza.AppendEscape(b, g)
		b = append(b, "</group>"...)
	}
	return append(b, "</item>"...)
}

// Push sends a roster push for one item to every interested resource of owner (RFC 6121 2.1.6). With removed,
// the item is pushed with subscription='remove'.
func Push(ctx context.Context, r module.Router, owner jid.JID, it storage.RosterItem, ver int64, removed bool) {
	b := []byte("<query xmlns='" + NS + "' ver='" + strconv.FormatInt(ver, 10) + "'>")
	if removed {
		b = append(b, "<item jid='"...)
		b = stanza.AppendEscape(b, it.JID)
		b = append(b, "' subscription='remove'/>"...)
	} else {
		b = AppendItem(b, it)
	}
	b = append(b, "</query>"...)
	for _, s := range r.Sessions(owner) {
		if !s.Interested() {
			continue
		}
		s.Send(stanza.New(stanza.IQ, "set", "push-"+strconv.FormatInt(ver, 10), jid.JID{}, s.JID(), b))
	}
}

var _ module.Module = (*Module)(nil)
