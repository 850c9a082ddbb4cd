// Package private implements XEP-0049: Private XML Storage, and keeps the XEP-0048 bookmarks stored through it
// in sync with XEP-0402 PEP native bookmarks (XEP-0411: Bookmarks Conversion).
//
// Private XML is one element per (namespace, name) per account, kept byte for byte in the key-value store.
// The one exception is <storage xmlns='storage:bookmarks'/>: it is not stored here but read from and written
// to the account's urn:xmpp:bookmarks:1 PEP node, one item per room, so that a client using XEP-0048 and one
// using XEP-0402 see the same rooms, and XEP-0402 clients are notified of changes an old client makes.
package private

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/pubsub"
	"parley.im/parley/xmpp/stanza"
)

// Namespaces.
const (
	NS            = "jabber:iq:private"
	NSBookmarks   = "storage:bookmarks"           // XEP-0048
	NSBookmarks2  = "urn:xmpp:bookmarks:1"        // XEP-0402, also its PEP node
	NSBookmarksCV = "urn:xmpp:bookmarks:1#compat" // XEP-0402 section 4: the server converts
)

// kvPrefix prefixes the key-value records of private XML: kvPrefix + "{namespace}name".
const kvPrefix = "private/"

// Config configures private XML storage.
type Config struct {
	// MaxSize is the largest element one account may store under one namespace, in bytes. Default 65536.
	MaxSize int `yaml:"max_size"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.MaxSize < 0 {
		return errors.New("private.max_size: must not be negative")
	}
	return nil
}

// PEP is what the module needs of the PEP service: publishing and retracting on the account's behalf, with
// notifications (implemented by *pep.Module).
type PEP interface {
	Publish(ctx context.Context, o module.Origin, owner jid.JID, node string, create pubsub.Config, it storage.PubSubItem) error
	Retract(ctx context.Context, o module.Origin, owner jid.JID, node, id string) error
}

// Module serves jabber:iq:private.
type Module struct {
	cfg Config
	kv  storage.KV
	ps  storage.PubSub
	pep PEP
}

// New returns the module. kv holds private XML; ps is read and pep written for the bookmarks.
func New(cfg Config, kv storage.KV, ps storage.PubSub, pep PEP) *Module {
	if cfg.MaxSize == 0 {
		cfg.MaxSize = 64 << 10
	}
	return &Module{cfg: cfg, kv: kv, ps: ps, pep: pep}
}

// Name implements module.Module.
func (*Module) Name() string { return "private" }

// Register implements module.Module: jabber:iq:private get and set on the account, and the XEP-0402
// compatibility feature, which tells clients that the server converts bookmarks.
func (m *Module) Register(h *module.Host) error {
	if err := h.HandleIQ(module.IQRoute{Target: module.Account, Type: "get", NS: NS, Local: "query", Feature: NS}, m.handle); err != nil {
		return err
	}
	if err := h.HandleIQ(module.IQRoute{Target: module.Account, Type: "set", NS: NS, Local: "query"}, m.handle); err != nil {
		return err
	}
	return h.Feature(module.Account, NSBookmarksCV)
}

// BookmarksConfig is the configuration of the bookmarks node when the module creates it (XEP-0402 section 5:
// whitelist, so only the owner reads it; max; never sent on presence, a client fetches them).
func BookmarksConfig() pubsub.Config {
	c := pubsub.DefaultConfig()
	c.AccessModel = pubsub.AccessWhitelist
	c.MaxItems = pubsub.MaxItemsMax
	c.SendLast = pubsub.SendLastNever
	return c
}

func (m *Module) handle(ctx context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() {
		return nil, stanza.ErrForbidden // XEP-0049 section 3: only one's own storage
	}
	owner := iq.From.Bare()
	var el []byte
	var local, ns string
	n := 0
	stanza.Children(inner(iq.Payload), func(l, s string, raw []byte) bool {
		local, ns, el = l, s, raw
		n++
		return n < 2
	})
	if n != 1 || ns == "" || stanza.ChildAttr(el, "xmlns") == "" {
		return nil, stanza.Errorf("bad-request", "exactly one child element with its own namespace")
	}
	if strings.HasPrefix(ns, "jabber:") {
		return nil, stanza.ErrNotAcceptable // reserved namespaces (XEP-0049 section 3)
	}
	key := kvPrefix + "{" + ns + "}" + local
	if iq.Type == "get" {
		var stored []byte
		var err error
		if ns == NSBookmarks && local == "storage" {
			stored, err = m.getBookmarks(ctx, owner)
		} else {
			stored, err = m.kv.Value(ctx, owner.String(), key)
		}
		switch {
		case errors.Is(err, storage.ErrNotFound):
			stored = []byte("<" + local + " xmlns='" + escape(ns) + "'/>")
		case err != nil:
			return nil, fmt.Errorf("private: %w", err)
		}
		return append(append([]byte("<query xmlns='"+NS+"'>"), stored...), "</query>"...), nil
	}
	if len(el) > m.cfg.MaxSize {
		return nil, stanza.Errorf("not-acceptable", "private element too large")
	}
	if ns == NSBookmarks && local == "storage" {
		return nil, m.setBookmarks(ctx, iq.Origin.Emitted(), owner, el)
	}
	if err := m.kv.PutValue(ctx, owner.String(), key, bytes.Clone(el)); err != nil {
		return nil, fmt.Errorf("private: %w", err)
	}
	return nil, nil
}

// inner returns the content of the element el.
func inner(el []byte) []byte {
	end := stanza.StartTagEnd(el)
	if end <= 0 || el[end-2] == '/' {
		return nil
	}
	i := bytes.LastIndex(el, []byte("</"))
	if i < end {
		return nil
	}
	return el[end:i]
}

// isTrue reads an xs:boolean attribute.
func isTrue(v string) bool {
	v = strings.TrimSpace(v)
	return v == "true" || v == "1"
}

func escape(s string) string { return string(stanza.AppendEscape(nil, s)) }

// conference48 is a XEP-0048 room bookmark.
type conference48 struct {
	JID      string `xml:"jid,attr"`
	Name     string `xml:"name,attr,omitempty"`
	Autojoin string `xml:"autojoin,attr,omitempty"`
	Nick     string `xml:"nick,omitempty"`
	Password string `xml:"password,omitempty"`
}

type storage48 struct {
	XMLName     xml.Name       `xml:"storage:bookmarks storage"`
	Conferences []conference48 `xml:"conference"`
}

// conference402 is a XEP-0402 item payload; the room JID is the item id.
type conference402 struct {
	XMLName  xml.Name `xml:"urn:xmpp:bookmarks:1 conference"`
	Name     string   `xml:"name,attr,omitempty"`
	Autojoin string   `xml:"autojoin,attr,omitempty"`
	Nick     string   `xml:"nick,omitempty"`
	Password string   `xml:"password,omitempty"`
}

// getBookmarks builds the XEP-0048 storage element from the XEP-0402 node; ErrNotFound when there is none.
func (m *Module) getBookmarks(ctx context.Context, owner jid.JID) ([]byte, error) {
	items, err := m.ps.Items(ctx, owner.String(), NSBookmarks2, storage.PubSubItemQuery{})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("<storage xmlns='" + NSBookmarks + "'>")
	for _, it := range items {
		var c conference402
		if xml.Unmarshal(it.Payload, &c) != nil {
			continue
		}
		b.WriteString("<conference jid='" + escape(it.ID) + "'")
		if c.Name != "" {
			b.WriteString(" name='" + escape(c.Name) + "'")
		}
		if c.Autojoin != "" {
			b.WriteString(" autojoin='" + escape(c.Autojoin) + "'")
		}
		b.WriteString(">")
		if c.Nick != "" {
			b.WriteString("<nick>" + escape(c.Nick) + "</nick>")
		}
		if c.Password != "" {
			b.WriteString("<password>" + escape(c.Password) + "</password>")
		}
		b.WriteString("</conference>")
	}
	b.WriteString("</storage>")
	return b.Bytes(), nil
}

// payload402 is the XEP-0402 item payload of a XEP-0048 room bookmark.
func payload402(c conference48) []byte {
	var b bytes.Buffer
	b.WriteString("<conference xmlns='" + NSBookmarks2 + "'")
	if c.Name != "" {
		b.WriteString(" name='" + escape(c.Name) + "'")
	}
	if isTrue(c.Autojoin) {
		b.WriteString(" autojoin='true'")
	}
	if c.Nick == "" && c.Password == "" {
		b.WriteString("/>")
		return b.Bytes()
	}
	b.WriteString(">")
	if c.Nick != "" {
		b.WriteString("<nick>" + escape(c.Nick) + "</nick>")
	}
	if c.Password != "" {
		b.WriteString("<password>" + escape(c.Password) + "</password>")
	}
	b.WriteString("</conference>")
	return b.Bytes()
}

// setBookmarks stores XEP-0048 bookmarks as the XEP-0402 node's items: the rooms whose bookmark changed are
// published (and notified), the rooms no longer listed retracted. URL bookmarks have no XEP-0402 form and are
// dropped (XEP-0411 section 5).
func (m *Module) setBookmarks(ctx context.Context, o module.Origin, owner jid.JID, el []byte) error {
	var s storage48
	if err := xml.Unmarshal(el, &s); err != nil {
		return stanza.Errorf("bad-request", "malformed bookmarks")
	}
	old, err := m.ps.Items(ctx, owner.String(), NSBookmarks2, storage.PubSubItemQuery{})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("private: %w", err)
	}
	have := make(map[string]conference402, len(old))
	for _, it := range old {
		var c conference402
		if xml.Unmarshal(it.Payload, &c) == nil {
			have[it.ID] = c
		}
	}
	keep := make(map[string]bool, len(s.Conferences))
	for _, c := range s.Conferences {
		room, err := jid.Parse(c.JID)
		if err != nil || room.Localpart() == "" || room.Resourcepart() != "" {
			continue
		}
		id := room.String()
		keep[id] = true
		if prev, ok := have[id]; ok && prev.Name == c.Name && isTrue(prev.Autojoin) == isTrue(c.Autojoin) &&
			prev.Nick == c.Nick && prev.Password == c.Password {
			continue // unchanged: keep the XEP-0402 client's item (and its extensions) as it is
		}
		if err := m.pep.Publish(ctx, o, owner, NSBookmarks2, BookmarksConfig(),
			storage.PubSubItem{ID: id, Publisher: owner.String(), Payload: payload402(c)}); err != nil {
			return err
		}
	}
	for id := range have {
		if !keep[id] {
			if err := m.pep.Retract(ctx, o, owner, NSBookmarks2, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("private: %w", err)
			}
		}
	}
	return nil
}

var (
	_ module.Module    = (*Module)(nil)
	_ module.Validator = Config{}
)
