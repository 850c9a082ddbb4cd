package muc

import (
	"encoding/xml"
	"strconv"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/form"
	"parley.im/parley/xmpp/stanza"
)

// Namespaces.
const (
	NS           = "http://jabber.org/protocol/muc"
	NSUser       = NS + "#user"
	NSAdmin      = NS + "#admin"
	NSOwner      = NS + "#owner"
	NSRoomConfig = NS + "#roomconfig"
	NSRoomInfo   = NS + "#roominfo"
	NSUnique     = NS + "#unique"
	NSStableID   = NS + "#stable_id"
	NSSelfPing   = NS + "#self-ping-optimization" // XEP-0410
	NSConference = "jabber:x:conference"          // XEP-0249 direct invitations
	NSSID        = "urn:xmpp:sid:0"
	NSPing       = "urn:xmpp:ping"
	NSDiscoInfo  = "http://jabber.org/protocol/disco#info"
	NSDiscoItems = "http://jabber.org/protocol/disco#items"
	NSData       = form.NS
	NSDelay      = "urn:xmpp:delay"
	NSHints      = "urn:xmpp:hints"
	NSChatStates = "http://jabber.org/protocol/chatstates"
)

// child is one child element of a stanza's content.
type child struct {
	local, ns string
	raw       []byte
}

// children splits inner XML into its child elements (text between them is dropped). Namespaces are the ones
// each child declares itself, which is how clients write them.
func children(inner []byte) []child {
	var out []child
	for len(inner) > 0 {
		local, ns, raw, ok := stanza.FirstChild(inner)
		if !ok {
			break
		}
		out = append(out, child{local, ns, raw})
		// raw is a subslice of inner: its end is where the next search starts.
		end := cap(inner) - cap(raw) + len(raw)
		inner = inner[end:]
	}
	return out
}

func appendAttr(b []byte, name, value string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, "='"...)
	b = stanza.AppendEscape(b, value)
	return append(b, '\'')
}

func appendText(b []byte, name, text string) []byte {
	b = append(b, '<')
	b = append(b, name...)
	b = append(b, '>')
	b = stanza.AppendEscape(b, text)
	b = append(b, "</"...)
	b = append(b, name...)
	return append(b, '>')
}

func appendStatus(b []byte, codes ...int) []byte {
	for _, c := range codes {
		b = append(b, "<status code='"...)
		b = strconv.AppendInt(b, int64(c), 10)
		b = append(b, "'/>"...)
	}
	return b
}

// addressed returns a copy of a stanza built without a to attribute, addressed to to. It is the fan-out
// primitive: one allocation of the exact size per recipient.
func addressed(t *stanza.Stanza, to jid.JID, toStr string) *stanza.Stanza {
	n := len(t.Kind.String()) + 1 // "<message"
	raw := make([]byte, 0, len(t.Raw)+len(toStr)+16)
	raw = append(raw, t.Raw[:n]...)
	raw = appendAttr(raw, "to", toStr)
	d := len(raw) - n
	raw = append(raw, t.Raw[n:]...)
	c := *t
	c.To, c.Raw, c.InnerStart, c.InnerEnd = to, raw, t.InnerStart+d, t.InnerEnd+d
	return &c
}

// build builds a stanza from the service without a to attribute (see addressed), with an optional xml:lang.
func build(k stanza.Kind, typ, id string, from jid.JID, lang string, inner []byte) *stanza.Stanza {
	s := stanza.New(k, typ, id, from, jid.JID{}, inner)
	if lang == "" {
		return s
	}
	n := len(k.String()) + 1
	raw := make([]byte, 0, len(s.Raw)+len(lang)+12)
	raw = append(raw, s.Raw[:n]...)
	raw = appendAttr(raw, "xml:lang", lang)
	d := len(raw) - n
	raw = append(raw, s.Raw[n:]...)
	s.Raw, s.InnerStart, s.InnerEnd, s.Lang = raw, s.InnerStart+d, s.InnerEnd+d, lang
	return s
}

// fromStored rebuilds a message template from archived bytes (what build produced).
func fromStored(raw []byte, from jid.JID) *stanza.Stanza {
	end := stanza.StartTagEnd(raw)
	s := &stanza.Stanza{Kind: stanza.Message, Type: "groupchat", From: from, Raw: raw}
	if end > 0 && raw[end-1] == '/' {
		s.InnerStart, s.InnerEnd = end-1, end-1
		return s
	}
	s.InnerStart = end + 1
	s.InnerEnd = max(len(raw)-len("</message>"), s.InnerStart)
	return s
}

// attr returns the value of an attribute of the root start tag of raw, unescaped. It was an encoding/xml
// decode of the start tag per room message with an origin-id; stanza.ChildAttr rescans the tag in place.
func attr(raw []byte, name string) string { return stanza.ChildAttr(raw, name) }

// textOf returns the text content of a simple element such as <body/> or <subject/>.
func textOf(raw []byte) string {
	var s string
	if xml.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}
