// Package vcard implements XEP-0054: vcard-temp for accounts, with the avatar conversion of XEP-0398: User
// Avatar to vCard-Based Avatars Conversion.
//
// An account's vCard is kept byte for byte in the key-value store. Its photo is the account's XEP-0084 avatar
// on PEP when it has one: a vCard set with a PHOTO publishes the image to urn:xmpp:avatar:data and its
// description to urn:xmpp:avatar:metadata (so XEP-0084 clients see an avatar a vCard-only client set), and a
// vCard get answers with the PHOTO built from the current PEP avatar (so vCard-only clients, XEP-0153, see an
// avatar a XEP-0084 client published). Available presence the account sends carries the XEP-0153 hash of that
// avatar, and is broadcast again when the avatar changes (xupdate.go).
package vcard

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/pubsub"
	"parley.im/parley/xmpp/stanza"
)

// Namespaces and PEP nodes.
const (
	NS             = "vcard-temp"
	NodeAvatarData = "urn:xmpp:avatar:data"     // XEP-0084
	NodeAvatarMeta = "urn:xmpp:avatar:metadata" // XEP-0084
	NSConversion   = "urn:xmpp:pep-vcard-conversion:0"
	NSUpdate       = "vcard-temp:x:update" // XEP-0153
)

// kvKey is the key-value record of an account's vCard.
const kvKey = "vcard"

// Config configures vCards.
type Config struct {
	// MaxSize is the largest vCard, in bytes, photo included. Default 65536 (the photo is also bounded by
	// pep.max_item_size, as it becomes an avatar item).
	MaxSize int `yaml:"max_size"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.MaxSize < 0 {
		return errors.New("vcard.max_size: must not be negative")
	}
	return nil
}

// PEP is what the module needs of the PEP service (implemented by *pep.Module).
type PEP interface {
	Publish(ctx context.Context, o module.Origin, owner jid.JID, node string, create pubsub.Config, it storage.PubSubItem) error
	// Watch calls fn after every change of the node named node on any account.
	Watch(node string, fn func(ctx context.Context, o module.Origin, owner jid.JID))
}

// Module serves vcard-temp on accounts.
type Module struct {
	cfg    Config
	kv     storage.KV
	ps     storage.PubSub
	pep    PEP
	router module.Router
	log    *slog.Logger

	mu sync.Mutex
	// hashes caches the XEP-0153 hash of each account's avatar (SHA-1 hex of the image; "" for none) by bare
	// JID, so that presence costs no storage read. An avatar change deletes the entry; so does the account's
	// last session ending.
	hashes map[string]string
	// gen counts invalidations: a hash read from storage is cached only if no invalidation happened meanwhile.
	gen uint64
}

// New returns the module: kv holds the vCards, ps is read and pep written for the avatar.
func New(cfg Config, kv storage.KV, ps storage.PubSub, pep PEP) *Module {
	if cfg.MaxSize == 0 {
		cfg.MaxSize = 64 << 10
	}
	return &Module{cfg: cfg, kv: kv, ps: ps, pep: pep, hashes: make(map[string]string)}
}

// Name implements module.Module.
func (*Module) Name() string { return "vcard" }

// Register implements module.Module: vCard get (anyone may read an account's vCard) and set (the account
// itself), advertised with vcard-temp and XEP-0398's conversion feature; the XEP-0153 hash in available
// presence (a presence edit hook), and the re-broadcast of presence when the avatar's metadata changes.
func (m *Module) Register(h *module.Host) error {
	m.router = h.Router()
	m.log = h.Log()
	h.EditPresence(m.editPresence)
	h.OnSession(module.Closed, m.closed)
	m.pep.Watch(NodeAvatarMeta, m.avatarChanged)
	if err := h.HandleIQ(module.IQRoute{Target: module.Account, Type: "get", NS: NS, Local: "vCard", Feature: NS}, m.get); err != nil {
		return err
	}
	if err := h.HandleIQ(module.IQRoute{Target: module.Account, Type: "set", NS: NS, Local: "vCard"}, m.set); err != nil {
		return err
	}
	return h.Feature(module.Account, NSConversion)
}

// avatarConfig is the configuration of the avatar nodes the module creates: open, like the vCard they mirror,
// which anyone may read.
func avatarConfig() pubsub.Config {
	c := pubsub.DefaultConfig()
	c.AccessModel = pubsub.AccessOpen
	return c
}

func owner(iq *module.IQ) jid.JID {
	if iq.To.Equal(jid.JID{}) {
		return iq.From.Bare()
	}
	return iq.To.Bare()
}

func (m *Module) get(ctx context.Context, iq *module.IQ) ([]byte, error) {
	own := owner(iq)
	card, err := m.kv.Value(ctx, own.String(), kvKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		card = []byte("<vCard xmlns='" + NS + "'/>")
	case err != nil:
		return nil, fmt.Errorf("vcard: %w", err)
	}
	photo, err := m.avatarPhoto(ctx, own)
	if err != nil {
		return nil, err
	}
	if photo == nil {
		return card, nil
	}
	return withPhoto(card, photo), nil
}

// avatarPhoto returns the <PHOTO/> of the account's current XEP-0084 avatar, nil if it has none.
func (m *Module) avatarPhoto(ctx context.Context, own jid.JID) ([]byte, error) {
	typ, b64, err := m.avatar(ctx, own)
	if err != nil || b64 == "" {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("<PHOTO><TYPE>" + escape(typ) + "</TYPE><BINVAL>")
	b.WriteString(b64)
	b.WriteString("</BINVAL></PHOTO>")
	return b.Bytes(), nil
}

// avatar returns the type and base64 data (whitespace removed) of the account's current XEP-0084 avatar: the
// metadata's first info that has its data on PEP. b64 is "" if it has none.
func (m *Module) avatar(ctx context.Context, own jid.JID) (typ, b64 string, err error) {
	meta, err := m.ps.Items(ctx, own.String(), NodeAvatarMeta, storage.PubSubItemQuery{Last: 1})
	if errors.Is(err, storage.ErrNotFound) || (err == nil && len(meta) == 0) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("vcard: %w", err)
	}
	var md struct {
		Info []struct {
			ID   string `xml:"id,attr"`
			Type string `xml:"type,attr"`
			URL  string `xml:"url,attr"`
		} `xml:"info"`
	}
	if xml.Unmarshal(meta[0].Payload, &md) != nil {
		return "", "", nil
	}
	for _, info := range md.Info {
		if info.URL != "" || info.ID == "" {
			continue
		}
		data, err := m.ps.Items(ctx, own.String(), NodeAvatarData, storage.PubSubItemQuery{IDs: []string{info.ID}})
		if err != nil || len(data) == 0 {
			continue
		}
		var d struct {
			Data string `xml:",chardata"`
		}
		if xml.Unmarshal(data[0].Payload, &d) != nil {
			continue
		}
		if b64 := strings.Join(strings.Fields(d.Data), ""); b64 != "" {
			return info.Type, b64, nil
		}
	}
	return "", "", nil
}

func escape(s string) string { return string(stanza.AppendEscape(nil, s)) }

// withPhoto returns card with its PHOTO children replaced by photo.
func withPhoto(card, photo []byte) []byte {
	end := stanza.StartTagEnd(card) + 1 // past the '>' (StartTagEnd is its index)
	if end > len(card) || end < 2 {
		return card
	}
	var inner []byte
	start := card[:end]
	if card[end-2] == '/' { // <vCard .../>
		start = append(bytes.Clone(card[:end-2]), '>')
	} else if i := bytes.LastIndex(card, []byte("</")); i >= end {
		inner = card[end:i]
	}
	out := bytes.Clone(start)
	stanza.Children(inner, func(local, _ string, raw []byte) bool {
		if local != "PHOTO" {
			out = append(out, raw...)
		}
		return true
	})
	out = append(out, photo...)
	return append(out, "</vCard>"...)
}

// set stores the account's vCard, and publishes its photo as the account's XEP-0084 avatar.
func (m *Module) set(ctx context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() {
		return nil, stanza.ErrForbidden
	}
	if len(iq.Payload) > m.cfg.MaxSize {
		return nil, stanza.Errorf("not-acceptable", "vCard too large")
	}
	var card struct {
		Photo *struct {
			Type   string `xml:"TYPE"`
			BinVal string `xml:"BINVAL"`
		} `xml:"PHOTO"`
	}
	if err := xml.Unmarshal(iq.Payload, &card); err != nil {
		return nil, stanza.ErrBadRequest
	}
	own := iq.From.Bare()
	if card.Photo != nil && card.Photo.BinVal != "" {
		// The avatar first: a photo PEP refuses (too large) refuses the vCard, rather than store a vCard whose
		// photo the account's XEP-0084 avatar would then contradict.
		if err := m.publishAvatar(ctx, iq.Origin.Emitted(), own, card.Photo.Type, card.Photo.BinVal); err != nil {
			return nil, err
		}
	}
	if err := m.kv.PutValue(ctx, own.String(), kvKey, bytes.Clone(iq.Payload)); err != nil {
		return nil, fmt.Errorf("vcard: %w", err)
	}
	return nil, nil
}

// publishAvatar publishes a vCard photo as the account's XEP-0084 avatar: data, then metadata.
func (m *Module) publishAvatar(ctx context.Context, o module.Origin, own jid.JID, typ, binval string) error {
	b64 := strings.Join(strings.Fields(binval), "")
	img, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return stanza.Errorf("bad-request", "PHOTO BINVAL is not base64")
	}
	sum := sha1.Sum(img)
	id := hex.EncodeToString(sum[:])
	if typ == "" {
		typ = "image/png"
	}
	// The data first: a client that sees the metadata fetches the data by its id (XEP-0084 section 4.1).
	if err := m.pep.Publish(ctx, o, own, NodeAvatarData, avatarConfig(), storage.PubSubItem{ID: id,
		Publisher: own.String(), Payload: []byte("<data xmlns='" + NodeAvatarData + "'>" + b64 + "</data>")}); err != nil {
		return err
	}
	meta := "<metadata xmlns='" + NodeAvatarMeta + "'><info bytes='" + strconv.Itoa(len(img)) + "' id='" + id +
		"' type='" + escape(typ) + "'/></metadata>"
	return m.pep.Publish(ctx, o, own, NodeAvatarMeta, avatarConfig(), storage.PubSubItem{ID: id,
		Publisher: own.String(), Payload: []byte(meta)})
}

var (
	_ module.Module    = (*Module)(nil)
	_ module.Validator = Config{}
)
