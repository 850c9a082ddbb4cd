// Package carbons implements XEP-0280: Message Carbons. A session that enables carbons gets a copy of every
// chat message its account sends from another resource (sent carbons) and of every one the account receives on
// another resource (received carbons), so that all of a user's devices show the whole conversation.
package carbons

import (
	"bytes"
	"context"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// Namespaces.
const (
	NS        = "urn:xmpp:carbons:2"
	nsForward = "urn:xmpp:forward:0"
	nsHints   = "urn:xmpp:hints"
)

// Module copies messages to the other resources of an account.
type Module struct {
	router module.Router
}

// New returns the carbons module.
func New() *Module { return &Module{} }

// Name implements module.Module.
func (*Module) Name() string { return "carbons" }

// Register implements module.Module.
func (m *Module) Register(h *module.Host) error {
	m.router = h.Router()
	for _, op := range []string{"enable", "disable"} {
		if err := h.HandleIQ(module.IQRoute{Target: module.Account, Type: "set", NS: NS, Local: op}, m.toggle); err != nil {
			return err
		}
	}
	// Clients look for carbons in the server's features and in their account's.
	if err := h.Feature(module.Server|module.Account, NS); err != nil {
		return err
	}
	h.OnMessage(module.Outbound, m.sent)
	h.OnMessage(module.Inbound, m.received)
	return nil
}

func (m *Module) toggle(_ context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() || iq.Origin.Session == nil {
		return nil, stanza.ErrForbidden
	}
	// The flag is part of the session's description (module.Resource.Carbons), so that it can be known on
	// other nodes.
	iq.Origin.Session.SetCarbons(iq.Local == "enable")
	return nil, nil
}

// eligible says whether a message is copied (XEP-0280 section 6): chat messages, and normal messages with a
// body, receipts, markers or chat states; never groupchat, errors, private or no-copy ones, nor carbons
// themselves.
func eligible(s *stanza.Stanza) bool {
	switch s.Type {
	case "groupchat", "error", "headline":
		return false
	}
	p := s.Payload()
	if bytes.Contains(p, []byte(NS)) && (bytes.Contains(p, []byte("<private")) || bytes.Contains(p, []byte("<sent")) ||
		bytes.Contains(p, []byte("<received"))) {
		return false
	}
	if bytes.Contains(p, []byte("<no-copy")) && bytes.Contains(p, []byte(nsHints)) {
		return false
	}
	if s.Type == "chat" {
		return true
	}
	for _, mark := range [][]byte{[]byte("<body"), []byte("urn:xmpp:receipts"), []byte("urn:xmpp:chat-markers:0"),
		[]byte("http://jabber.org/protocol/chatstates"), []byte("<encrypted")} {
		if bytes.Contains(p, mark) {
			return true
		}
	}
	return false
}

// copies returns the sessions of owner on this node whose description says carbons are enabled, except those
// in skip. (Resources on other nodes are not copied to yet: that needs a route that skips the Inbound stage.)
func (m *Module) copies(owner jid.JID, skip []module.Session) []module.Session {
	sessions := m.router.Sessions(owner)
	if len(sessions) <= len(skip) {
		return nil
	}
	var out []module.Session
next:
	for _, s := range sessions {
		for _, k := range skip {
			if k == s {
				continue next
			}
		}
		if s.Describe().Carbons {
			out = append(out, s)
		}
	}
	return out
}

func (m *Module) sent(_ context.Context, d *module.Delivery) (module.Verdict, error) {
	sender, ok := d.Origin.FromSession()
	if !ok || !eligible(d.Stanza) {
		return module.Continue, nil
	}
	m.forward(d.Owner, m.copies(d.Owner, []module.Session{sender}), "sent", d.Stanza)
	return module.Continue, nil
}

func (m *Module) received(_ context.Context, d *module.Delivery) (module.Verdict, error) {
	if !eligible(d.Stanza) {
		return module.Continue, nil
	}
	m.forward(d.Owner, m.copies(d.Owner, d.Targets), "received", d.Stanza)
	return module.Continue, nil
}

func (m *Module) forward(owner jid.JID, to []module.Session, dir string, s *stanza.Stanza) {
	if len(to) == 0 {
		return
	}
	orig := s.Embed()
	inner := make([]byte, 0, len(orig)+128)
	inner = append(inner, "<"+dir+" xmlns='"+NS+"'><forwarded xmlns='"+nsForward+"'>"...)
	inner = append(inner, orig...)
	inner = append(inner, "</forwarded></"+dir+">"...)
	for _, t := range to {
		t.Send(stanza.New(stanza.Message, s.Type, "", owner, t.JID(), inner))
	}
}

var _ module.Module = (*Module)(nil)
