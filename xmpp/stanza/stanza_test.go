package stanza

import (
	"encoding/xml"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
)

func wellFormed(t *testing.T, b []byte) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(b)))
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				return
			}
			t.Fatalf("%s is not well-formed: %v", b, err)
		}
	}
}

func TestAppendChildSelfClosing(t *testing.T) {
	s := New(Message, "chat", "1", jid.MustParse("a@x/r"), jid.MustParse("b@x"), nil)
	c := s.AppendChild([]byte("<stanza-id xmlns='urn:xmpp:sid:0' id='9'/>"))
	want := "<message from='a@x/r' to='b@x' type='chat' id='1'><stanza-id xmlns='urn:xmpp:sid:0' id='9'/></message>"
	if string(c.Raw) != want {
		t.Fatalf("got %s\nwant %s", c.Raw, want)
	}
	if string(c.Payload()) != "<stanza-id xmlns='urn:xmpp:sid:0' id='9'/>" {
		t.Fatalf("payload %q", c.Payload())
	}
	if string(s.Raw) == string(c.Raw) {
		t.Fatal("original was changed")
	}
}

func TestAppendChildKeepsExistingPayload(t *testing.T) {
	s := New(Message, "chat", "1", jid.MustParse("a@x/r"), jid.MustParse("b@x"), []byte("<body>hi</body>"))
	c := s.AppendChild([]byte("<x/>"))
	if string(c.Payload()) != "<body>hi</body><x/>" {
		t.Fatalf("payload %q", c.Payload())
	}
	wellFormed(t, c.Raw)
}

func TestWithToReplacesOrAdds(t *testing.T) {
	raw := []byte(`<presence from='a@x/r' to="old@x"><show>away</show></presence>`)
	s := &Stanza{Kind: Presence, Raw: raw, InnerStart: strings.Index(string(raw), "<show>"), InnerEnd: strings.Index(string(raw), "</presence>")}
	c := s.WithTo(jid.MustParse("new@x"))
	if strings.Contains(string(c.Raw), "old@x") || !strings.Contains(string(c.Raw), "to='new@x'") {
		t.Fatalf("got %s", c.Raw)
	}
	if string(c.Payload()) != "<show>away</show>" {
		t.Fatalf("payload moved wrongly: %q", c.Payload())
	}
	wellFormed(t, c.Raw)
	// An attribute value containing '>' must not confuse the tag scanner.
	raw2 := []byte(`<presence id='a>b'/>`)
	s2 := &Stanza{Kind: Presence, Raw: raw2, InnerStart: len(raw2) - 2, InnerEnd: len(raw2) - 2}
	c2 := s2.WithTo(jid.MustParse("c@x"))
	if string(c2.Raw) != `<presence to='c@x' id='a>b'/>` {
		t.Fatalf("got %s", c2.Raw)
	}
}

func TestFirstChild(t *testing.T) {
	for _, tc := range []struct{ in, local, ns, raw string }{
		{"<query xmlns='jabber:iq:roster'/>", "query", "jabber:iq:roster", "<query xmlns='jabber:iq:roster'/>"},
		{" <bind xmlns=\"urn:b\"><resource>r</resource></bind>tail", "bind", "urn:b", "<bind xmlns=\"urn:b\"><resource>r</resource></bind>"},
		{"<p:q xmlns:p='urn:p'><p:x/></p:q>", "q", "urn:p", "<p:q xmlns:p='urn:p'><p:x/></p:q>"},
		{"<q xmlns='a&amp;b'><q><q/></q></q><z/>", "q", "a&b", "<q xmlns='a&amp;b'><q><q/></q></q>"},
		{"<q><![CDATA[</q>]]></q>", "q", "", "<q><![CDATA[</q>]]></q>"},
	} {
		local, ns, raw, ok := FirstChild([]byte(tc.in))
		if !ok || local != tc.local || ns != tc.ns || string(raw) != tc.raw {
			t.Errorf("FirstChild(%q) = %q %q %q %v", tc.in, local, ns, raw, ok)
		}
	}
	if _, _, _, ok := FirstChild([]byte("text only")); ok {
		t.Error("found a child in text")
	}
}

func TestErrorReplySwapsAddressesAndKeepsPayload(t *testing.T) {
	req := New(IQ, "get", "q1", jid.MustParse("a@x/r"), jid.MustParse("x"), []byte("<query xmlns='urn:q'/>"))
	rep := ErrorReply(req, jid.JID{}, ErrServiceUnavailable)
	want := "<iq from='x' to='a@x/r' type='error' id='q1'><query xmlns='urn:q'/><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
	if string(rep.Raw) != want {
		t.Fatalf("got  %s\nwant %s", rep.Raw, want)
	}
	e := &Error{Condition: "not-acceptable", Text: "a < b"}
	b := AppendError(nil, e)
	if !strings.Contains(string(b), "type='modify'") || !strings.Contains(string(b), "a &lt; b") {
		t.Fatalf("got %s", b)
	}
}

func TestParseStoredStanza(t *testing.T) {
	raw := []byte(`<message from='a@x/r' to='b@x' type='chat' id='7'><body>hi &amp; bye</body></message>`)
	s, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != Message || s.Type != "chat" || s.ID != "7" || s.From.String() != "a@x/r" || s.To.String() != "b@x" {
		t.Fatalf("envelope %+v", s)
	}
	if string(s.Payload()) != "<body>hi &amp; bye</body>" {
		t.Fatalf("payload %q", s.Payload())
	}
	if _, err := Parse([]byte("<message><body>x</message>")); err == nil {
		t.Fatal("malformed stanza parsed")
	}
}

func TestWithoutChildren(t *testing.T) {
	s := New(Message, "chat", "1", jid.MustParse("a@x/r"), jid.MustParse("b@x"),
		[]byte(`<body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='b@x' id='forged'/><stanza-id xmlns='urn:xmpp:sid:0' by='room@muc' id='ok'/>`))
	c := s.WithoutChildren(func(local, ns string, raw []byte) bool {
		return local == "stanza-id" && ns == "urn:xmpp:sid:0" && ChildAttr(raw, "by") == "b@x"
	})
	if string(c.Payload()) != `<body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='room@muc' id='ok'/>` {
		t.Fatalf("payload %q", c.Payload())
	}
	wellFormed(t, c.Raw)
	if s.WithoutChildren(func(string, string, []byte) bool { return false }) != s {
		t.Fatal("no-op removal copied the stanza")
	}
}

func TestAppendWithNS(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"<message/>", "<message xmlns='jabber:client'/>"},
		{"<message to='a&gt;b'><body/></message>", "<message xmlns='jabber:client' to='a&gt;b'><body/></message>"},
		{"<message xmlns='jabber:client' to='x'/>", "<message xmlns='jabber:client' to='x'/>"},
		{"<message xmlns = \"jabber:server\"/>", "<message xmlns = \"jabber:server\"/>"},
		{"<message xmlns:foo='x' a='xmlns=1'/>", "<message xmlns='jabber:client' xmlns:foo='x' a='xmlns=1'/>"},
		{"", ""},
	} {
		if got := string(AppendWithNS(nil, []byte(c.in), "jabber:client")); got != c.want {
			t.Errorf("AppendWithNS(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// ChildAttr decoded references but kept literal tabs and newlines, which an XML processor reports as spaces
// (XML 1.0 section 3.3.3), and decoded &#0;, which is no XML character. It now decodes with the stream
// scanner's own attribute decoding.
func TestDefectChildAttrNotNormalized(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"<origin-id xmlns='urn:xmpp:sid:0' id='plain'/>", "plain"},
		{"<origin-id xmlns='urn:xmpp:sid:0' id=\"a&amp;b&#x41;&#65;&apos;\"/>", "a&bAA'"},
		{"<origin-id xmlns='urn:xmpp:sid:0' id='a\tb\nc\r\nd'/>", "a b c d"},
		{"<origin-id xmlns='urn:xmpp:sid:0' id='tab&#9;kept'/>", "tab\tkept"},
		{"<origin-id xmlns='urn:xmpp:sid:0' id='&#0;'/>", "&#0;"},
		{"<x a='1' id = 'spaced' />", "spaced"},
		{"<x idx='no' id='yes'>text</x>", "yes"},
		{"<x other='id=&apos;no&apos;'/>", ""},
	} {
		if got := ChildAttr([]byte(tc.raw), "id"); got != tc.want {
			t.Errorf("ChildAttr(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

// The helpers that rescan start tags (now through xmpp/stream) agree on quoted '>' and attributes that only
// end like the one searched for.
func TestStartTagHelpers(t *testing.T) {
	raw := []byte(`<message xto='no' id='a>b' to='old'><body>x</body></message>`)
	if got := StartTagEnd(raw); raw[got] != '>' || string(raw[:got+1]) != `<message xto='no' id='a>b' to='old'>` {
		t.Errorf("StartTagEnd = %d", got)
	}
	if got := StartTagEnd([]byte("<a b='>")); got != len("<a b='>") {
		t.Errorf("unterminated tag: %d", got)
	}
	out, is, ie := rewriteAttr(raw, len(`<message xto='no' id='a>b' to='old'>`), len(raw)-len("</message>"), "to", "n&w")
	if want := `<message to='n&amp;w' xto='no' id='a>b'><body>x</body></message>`; string(out) != want {
		t.Errorf("rewriteAttr = %s, want %s", out, want)
	}
	if string(out[is:ie]) != "<body>x</body>" {
		t.Errorf("inner = %q", out[is:ie])
	}
	local, ns, child, ok := FirstChild([]byte(`text<p:q xmlns:p='urn:p&amp;q' a='>'/>`))
	if !ok || local != "q" || ns != "urn:p&q" || string(child) != `<p:q xmlns:p='urn:p&amp;q' a='>'/>` {
		t.Errorf("FirstChild = %q %q %q %v", local, ns, child, ok)
	}
}

// WithoutChildren found each child's offset by searching for its bytes from the last removal, so dropping a
// child with an identical earlier sibling cut out the earlier one and left the later one where it was, with
// the text between them moved. Children and WithoutChildren now take offsets from the slices themselves.
func TestDefectWithoutChildrenDropsEarlierTwin(t *testing.T) {
	s := New(Message, "chat", "1", jid.MustParse("a@x/r"), jid.MustParse("b@x"),
		[]byte(`<store xmlns='urn:xmpp:hints'/><body>one</body><store xmlns='urn:xmpp:hints'/><body>two</body>`))
	n := 0
	c := s.WithoutChildren(func(local, _ string, _ []byte) bool {
		if local != "store" {
			return false
		}
		n++
		return n == 2 // the second <store/> only
	})
	if want := `<store xmlns='urn:xmpp:hints'/><body>one</body><body>two</body>`; string(c.Payload()) != want {
		t.Fatalf("payload %q, want %q", c.Payload(), want)
	}
	var got []string
	Children(s.Payload(), func(local, _ string, raw []byte) bool {
		got = append(got, string(raw))
		return true
	})
	if len(got) != 4 || got[0] != got[2] || got[1] != "<body>one</body>" || got[3] != "<body>two</body>" {
		t.Errorf("Children = %q", got)
	}
}
