// Package disco implements XEP-0030: Service Discovery for the server and its accounts, and the server's
// XEP-0115 entity capabilities in stream features.
//
// It must come last in the module list: it answers with every feature the modules before it registered, and the
// capabilities hash it advertises is computed from them once, at registration.
package disco

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"sort"
	"strings"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// Namespaces.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
	NSCaps  = "http://jabber.org/protocol/caps"
	// CapsNode is the node Parley advertises in XEP-0115 capabilities.
	CapsNode = "https://parley.im"
)

// Module answers disco#info and disco#items.
type Module struct {
	reg  *module.Registry
	ver  string
	name string
}

// New returns the module. It reads the registry that the server registers modules into.
func New(reg *module.Registry) *Module { return &Module{reg: reg, name: "Parley"} }

// Name implements module.Module.
func (*Module) Name() string { return "disco" }

// Register implements module.Module.
func (m *Module) Register(h *module.Host) error {
	h.Identity(module.Server, module.Identity{Category: "server", Type: "im", Name: m.name})
	h.Identity(module.Account, module.Identity{Category: "account", Type: "registered"})
	both := module.Server | module.Account
	if err := h.HandleIQ(module.IQRoute{Target: both, Type: "get", NS: NSInfo, Local: "query", Feature: NSInfo}, m.info); err != nil {
		return err
	}
	if err := h.HandleIQ(module.IQRoute{Target: both, Type: "get", NS: NSItems, Local: "query", Feature: NSItems}, m.items); err != nil {
		return err
	}
	m.ver = CapsVer(m.reg.Identities(module.Server), m.reg.Features(module.Server))
	h.StreamFeature("<c xmlns='" + NSCaps + "' hash='sha-1' node='" + CapsNode + "' ver='" + m.ver + "'/>")
	return nil
}

type query struct {
	Node string `xml:"node,attr"`
}

func target(iq *module.IQ) module.Target {
	if iq.To.Localpart() == "" && !iq.To.Equal(iq.From.Bare()) && iq.To.Domainpart() != "" {
		return module.Server
	}
	return module.Account
}

func (m *Module) info(_ context.Context, iq *module.IQ) ([]byte, error) {
	var q query
	if err := xml.Unmarshal(iq.Payload, &q); err != nil {
		return nil, stanza.ErrBadRequest
	}
	t := target(iq)
	if q.Node != "" && !(t == module.Server && q.Node == CapsNode+"#"+m.ver) {
		return nil, stanza.ErrItemNotFound
	}
	b := []byte("<query xmlns='" + NSInfo + "'")
	if q.Node != "" {
		b = append(b, " node='"...)
		b = stanza.AppendEscape(b, q.Node)
		b = append(b, '\'')
	}
	b = append(b, '>')
	for _, id := range m.reg.Identities(t) {
		b = append(b, "<identity category='"...)
		b = stanza.AppendEscape(b, id.Category)
		b = append(b, "' type='"...)
		b = stanza.AppendEscape(b, id.Type)
		if id.Name != "" {
			b = append(b, "' name='"...)
			b = stanza.AppendEscape(b, id.Name)
		}
		b = append(b, "'/>"...)
	}
	for _, f := range m.reg.Features(t) {
		b = append(b, "<feature var='"...)
		b = stanza.AppendEscape(b, f)
		b = append(b, "'/>"...)
	}
	return append(b, "</query>"...), nil
}

func (m *Module) items(_ context.Context, iq *module.IQ) ([]byte, error) {
	var q query
	if err := xml.Unmarshal(iq.Payload, &q); err != nil {
		return nil, stanza.ErrBadRequest
	}
	if q.Node != "" {
		return nil, stanza.ErrItemNotFound
	}
	b := []byte("<query xmlns='" + NSItems + "'>")
	for _, it := range m.reg.Items(target(iq)) {
		b = append(b, "<item jid='"...)
		b = stanza.AppendEscape(b, it.JID)
		if it.Name != "" {
			b = append(b, "' name='"...)
			b = stanza.AppendEscape(b, it.Name)
		}
		b = append(b, "'/>"...)
	}
	return append(b, "</query>"...), nil
}

// CapsVer computes the XEP-0115 verification string (section 5.1) for identities and features without
// extended forms.
func CapsVer(ids []module.Identity, features []string) string {
	idStrs := make([]string, len(ids))
	for i, id := range ids {
		idStrs[i] = id.Category + "/" + id.Type + "//" + id.Name
	}
	sort.Strings(idStrs)
	fs := append([]string(nil), features...)
	sort.Strings(fs)
	var s strings.Builder
	for _, id := range idStrs {
		s.WriteString(id)
		s.WriteByte('<')
	}
	for _, f := range fs {
		s.WriteString(f)
		s.WriteByte('<')
	}
	sum := sha1.Sum([]byte(s.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

var _ module.Module = (*Module)(nil)
