package moduletest

import (
	"encoding/xml"
	"testing"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/stanza"
)

// Message builds a message stanza; from and to are JIDs ("" leaves the attribute out), typ the type ("" for
// normal), inner the inner XML.
func Message(from, to, typ, inner string) *stanza.Stanza {
	return build(stanza.Message, from, to, typ, "", inner)
}

// Presence builds a presence stanza as Message does.
func Presence(from, to, typ, inner string) *stanza.Stanza {
	return build(stanza.Presence, from, to, typ, "", inner)
}

// IQ builds an iq stanza with id id.
func IQ(from, to, typ, id, inner string) *stanza.Stanza {
	return build(stanza.IQ, from, to, typ, id, inner)
}

func build(k stanza.Kind, from, to, typ, id, inner string) *stanza.Stanza {
	var f, t jid.JID
	if from != "" {
		f = jid.MustParse(from)
	}
	if to != "" {
		t = jid.MustParse(to)
	}
	if k == stanza.Message && id == "" {
		id = "m-" + stanza.NewID()
	}
	return stanza.New(k, typ, id, f, t, []byte(inner))
}

// Decode unmarshals the whole stanza s into v with encoding/xml (stanzas the server builds carry no
// namespace on their root; give v's XMLName no namespace, or none at all), and fails the test if it cannot.
func Decode(t testing.TB, s *stanza.Stanza, v any) {
	t.Helper()
	if s == nil {
		t.Fatal("moduletest: Decode of a nil stanza")
	}
	if err := xml.Unmarshal(s.Raw, v); err != nil {
		t.Fatalf("moduletest: decoding %s: %v", s.Raw, err)
	}
}

// ErrorCondition returns the defined condition of an error stanza (RFC 6120 8.3.3), "" if s is nil or not an
// error with a condition.
func ErrorCondition(s *stanza.Stanza) string {
	if s == nil || s.Type != "error" {
		return ""
	}
	cond := ""
	stanza.Children(s.Payload(), func(local, _ string, raw []byte) bool {
		if local != "error" {
			return true
		}
		inner := raw[stanza.StartTagEnd(raw)+1:]
		stanza.Children(inner, func(local, ns string, _ []byte) bool {
			if ns == stanza.NSStanzas && local != "text" {
				cond = local
				return false
			}
			return true
		})
		return false
	})
	return cond
}

// Child returns the first child element of s with the local name local and namespace ns (as declared on the
// element itself), or nil.
func Child(s *stanza.Stanza, ns, local string) []byte {
	var out []byte
	stanza.Children(s.Payload(), func(l, n string, raw []byte) bool {
		if l == local && n == ns {
			out = raw
			return false
		}
		return true
	})
	return out
}

// Only returns the stanzas of ss of kind k (and of type typ, unless typ is "*").
func Only(ss []*stanza.Stanza, k stanza.Kind, typ string) []*stanza.Stanza {
	var out []*stanza.Stanza
	for _, s := range ss {
		if s.Kind == k && (typ == "*" || s.Type == typ) {
			out = append(out, s)
		}
	}
	return out
}
