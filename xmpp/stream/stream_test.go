package stream

import (
	"bytes"
	"errors"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

const streamNS = "xmlns:stream='http://etherx.jabber.org/streams'"

// TestErrors covers every condition the Reader reports. Each case also runs one byte at a time and must fail the
// same way at the same offset.
func TestErrors(t *testing.T) {
	tests := []struct {
		name, in, cond string
		full           bool // in is the whole stream, not what follows hdr
	}{
		// Before and in the stream header.
		{name: "text before header", in: "hello", cond: NotWellFormed, full: true},
		{name: "comment before header", in: "<!-- hi --><stream:stream " + streamNS + ">", cond: RestrictedXML, full: true},
		{name: "PI before header", in: "<?php echo 1 ?><stream:stream " + streamNS + ">", cond: RestrictedXML, full: true},
		{name: "xml-stylesheet PI", in: "<?xml-stylesheet href='a'?>", cond: RestrictedXML, full: true},
		{name: "doctype", in: "<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY x 'y'>]>", cond: RestrictedXML, full: true},
		{name: "second declaration", in: "<?xml version='1.0'?><?xml version='1.0'?>", cond: RestrictedXML, full: true},
		{name: "declaration latin1", in: "<?xml version='1.0' encoding='ISO-8859-1'?>", cond: UnsupportedEncoding, full: true},
		{name: "declaration utf16", in: "<?xml version='1.0' encoding=\"UTF-16\"?>", cond: UnsupportedEncoding, full: true},
		{name: "utf16 byte order mark", in: "\xff\xfe<\x00", cond: UnsupportedEncoding, full: true},
		{name: "utf32 without mark", in: "\x00\x00\x00<", cond: UnsupportedEncoding, full: true},
		{name: "declaration version 1.1", in: "<?xml version='1.1'?>", cond: BadFormat, full: true},
		{name: "declaration without version", in: "<?xml encoding='UTF-8'?>", cond: NotWellFormed, full: true},
		{name: "declaration order", in: "<?xml encoding='UTF-8' version='1.0'?>", cond: NotWellFormed, full: true},
		{name: "declaration unknown pseudo-attribute", in: "<?xml version='1.0' foo='bar'?>", cond: NotWellFormed, full: true},
		{name: "declaration bad standalone", in: "<?xml version='1.0' standalone='maybe'?>", cond: NotWellFormed, full: true},
		{name: "declaration with reference", in: "<?xml version='1&#46;0'?>", cond: NotWellFormed, full: true},
		{name: "declaration ends with >", in: "<?xml version='1.0'>", cond: NotWellFormed, full: true},
		{name: "bad byte order mark", in: "\xef\xbb\x00<", cond: NotWellFormed, full: true},
		{name: "short bad byte order mark", in: "\xef\x00", cond: NotWellFormed, full: true},
		{name: "declaration ends with ? >", in: "<?xml version='1.0'? >", cond: NotWellFormed, full: true},
		{name: "end tag first", in: "</stream:stream>", cond: NotWellFormed, full: true},
		{name: "stream in wrong namespace", in: "<stream:stream xmlns:stream='urn:wrong' xmlns='jabber:client'>", cond: InvalidNamespace, full: true},
		{name: "stream prefix not declared", in: "<stream:stream xmlns='jabber:client' to='example.org'>", cond: InvalidNamespace, full: true},
		{name: "unprefixed stream in jabber:client", in: "<stream xmlns='jabber:client'>", cond: InvalidNamespace, full: true},
		{name: "unprefixed stream without namespace", in: "<stream>", cond: InvalidNamespace, full: true},
		{name: "root element not stream", in: "<stream:features " + streamNS + ">", cond: BadFormat, full: true},
		{name: "self-closing header", in: "<stream:stream " + streamNS + "/>", cond: BadFormat, full: true},
		{name: "header duplicate attribute", in: "<stream:stream to='a' to='b' " + streamNS + ">", cond: NotWellFormed, full: true},
		{name: "header undeclared attribute prefix", in: "<stream:stream foo:bar='x' " + streamNS + ">", cond: NotWellFormed, full: true},
		{name: "header binds xml prefix elsewhere", in: "<stream:stream xmlns:xml='urn:x' " + streamNS + ">", cond: NotWellFormed, full: true},

		// Between top-level elements.
		{name: "text at stream level", in: "hello", cond: NotWellFormed},
		{name: "reference at stream level", in: " &amp; ", cond: NotWellFormed},
		{name: "CDATA at stream level", in: "<![CDATA[ ]]>", cond: NotWellFormed},
		{name: "comment at stream level", in: "<!-- keepalive -->", cond: RestrictedXML},
		{name: "PI at stream level", in: "<?foo?>", cond: RestrictedXML},
		{name: "declaration at stream level", in: "<?xml version='1.0'?>", cond: RestrictedXML},
		{name: "doctype at stream level", in: "<!DOCTYPE x>", cond: RestrictedXML},
		{name: "stream close mismatched", in: "</stream:streams>", cond: NotWellFormed},
		{name: "stream close wrong prefix", in: "</s:stream>", cond: NotWellFormed},
		{name: "stream close bad", in: "</stream:stream x>", cond: NotWellFormed},

		// Inside elements: markup.
		{name: "comment", in: "<message><!-- x --></message>", cond: RestrictedXML},
		{name: "PI", in: "<message><?php x?></message>", cond: RestrictedXML},
		{name: "doctype in element", in: "<message><!DOCTYPE x></message>", cond: RestrictedXML},
		{name: "entity declaration in element", in: "<message><!ENTITY x 'y'></message>", cond: RestrictedXML},
		{name: "unknown markup declaration", in: "<message><!foo></message>", cond: NotWellFormed},
		{name: "single dash comment", in: "<message><!-x></message>", cond: NotWellFormed},
		{name: "bad CDATA open", in: "<message><![CDATX[x]]></message>", cond: NotWellFormed},
		{name: "mismatched end tag", in: "<message></presence>", cond: NotWellFormed},
		{name: "mismatched end tag longer", in: "<message></messages>", cond: NotWellFormed},
		{name: "mismatched end tag shorter", in: "<message></messag>", cond: NotWellFormed},
		{name: "mismatched nesting", in: "<message><a><b></a></b></message>", cond: NotWellFormed},
		{name: "end tag prefix mismatch", in: "<message xmlns:x='urn:x'><x:a></a></message>", cond: NotWellFormed},
		{name: "end tag garbage", in: "<message></message x>", cond: NotWellFormed},
		{name: "empty end tag", in: "<message></></message>", cond: NotWellFormed},
		{name: "space after lt", in: "< message/>", cond: NotWellFormed},
		{name: "empty name", in: "<>", cond: NotWellFormed},
		{name: "slash then space", in: "<message/ >", cond: NotWellFormed},
		{name: "name starts with digit", in: "<1message/>", cond: NotWellFormed},
		{name: "name starts with dash", in: "<-message/>", cond: NotWellFormed},
		{name: "bad name character", in: "<mess*age/>", cond: NotWellFormed},
		{name: "non-name unicode in name", in: "<mess\u00d7age/>", cond: NotWellFormed},
		{name: "double colon", in: "<a:b:c/>", cond: NotWellFormed},
		{name: "leading colon", in: "<:a/>", cond: NotWellFormed},
		{name: "trailing colon", in: "<a:/>", cond: NotWellFormed},
		{name: "local starts with digit", in: "<message xmlns:a='urn:a'><a:1b/></message>", cond: NotWellFormed},

		// Attributes.
		{name: "unquoted value", in: "<message id=x/>", cond: NotWellFormed},
		{name: "attribute without value", in: "<message id/>", cond: NotWellFormed},
		{name: "attribute without equals", in: "<message id 'x'/>", cond: NotWellFormed},
		{name: "no space between attributes", in: "<message id='1'type='chat'/>", cond: NotWellFormed},
		{name: "lt in value", in: "<message id='a<b'/>", cond: NotWellFormed},
		{name: "bad attribute name", in: "<message i*d='1'/>", cond: NotWellFormed},
		{name: "attribute name ends with colon", in: "<message a:='1'/>", cond: NotWellFormed},
		{name: "name starts with combining character", in: "<message><\u0300a/></message>", cond: NotWellFormed},
		{name: "attribute name starts with digit", in: "<message 1d='1'/>", cond: NotWellFormed},
		{name: "duplicate attribute", in: "<message id='1' id='2'/>", cond: NotWellFormed},
		{name: "duplicate attribute other quotes", in: "<message id='1' type='chat' id=\"1\"/>", cond: NotWellFormed},
		{name: "duplicate expanded name", in: "<message xmlns:a='urn:u' xmlns:b='urn:u' a:x='1' b:x='2'/>", cond: NotWellFormed},
		{name: "duplicate expanded name from header", in: "<message xmlns:s='http://etherx.jabber.org/streams' s:x='1' stream:x='2'/>", cond: NotWellFormed},
		{name: "duplicate default declaration", in: "<message xmlns='urn:a' xmlns='urn:b'/>", cond: NotWellFormed},
		{name: "duplicate prefix declaration", in: "<message xmlns:a='urn:a' xmlns:a='urn:b'/>", cond: NotWellFormed},

		// Namespaces.
		{name: "undeclared element prefix", in: "<foo:message/>", cond: NotWellFormed},
		{name: "undeclared attribute prefix", in: "<message foo:x='1'/>", cond: NotWellFormed},
		{name: "undeclared child prefix", in: "<message><x:y/></message>", cond: NotWellFormed},
		{name: "prefix out of scope", in: "<message><a xmlns:x='urn:x'/><x:b/></message>", cond: NotWellFormed},
		{name: "prefix out of scope after self-closing", in: "<message><a xmlns:x='urn:x'><b/></a><x:c/></message>", cond: NotWellFormed},
		{name: "prefix of previous stanza", in: "<message xmlns:x='urn:x'/><x:message/>", cond: NotWellFormed},
		{name: "xmlns as element prefix", in: "<xmlns:foo/>", cond: NotWellFormed},
		{name: "declare xmlns prefix", in: "<message xmlns:xmlns='urn:x'/>", cond: NotWellFormed},
		{name: "rebind xml prefix", in: "<message xmlns:xml='urn:x'/>", cond: NotWellFormed},
		{name: "bind prefix to xml namespace", in: "<message xmlns:x='http://www.w3.org/XML/1998/namespace'/>", cond: NotWellFormed},
		{name: "bind default to xmlns namespace", in: "<message xmlns='http://www.w3.org/2000/xmlns/'/>", cond: NotWellFormed},
		{name: "undeclare prefix", in: "<message xmlns:x=''/>", cond: NotWellFormed},

		// References.
		{name: "undeclared entity", in: "<message><body>&nbsp;</body></message>", cond: RestrictedXML},
		{name: "undeclared entity in attribute", in: "<message id='&foo;'/>", cond: RestrictedXML},
		{name: "bare ampersand", in: "<message><body>a & b</body></message>", cond: NotWellFormed},
		{name: "bare ampersand in attribute", in: "<message id='a&b'/>", cond: NotWellFormed},
		{name: "reference without semicolon", in: "<message><body>&amp</body></message>", cond: NotWellFormed},
		{name: "empty reference", in: "<message><body>&;</body></message>", cond: NotWellFormed},
		{name: "char ref to NUL", in: "<message><body>&#0;</body></message>", cond: NotWellFormed},
		{name: "char ref to control", in: "<message id='&#x1b;'/>", cond: NotWellFormed},
		{name: "char ref to surrogate", in: "<message><body>&#xD800;</body></message>", cond: NotWellFormed},
		{name: "char ref to FFFE", in: "<message><body>&#xFFFE;</body></message>", cond: NotWellFormed},
		{name: "char ref too large", in: "<message><body>&#x110000;</body></message>", cond: NotWellFormed},
		{name: "char ref huge", in: "<message><body>&#99999999999999999999999;</body></message>", cond: NotWellFormed},
		{name: "char ref no digits", in: "<message><body>&#;</body></message>", cond: NotWellFormed},
		{name: "hex char ref no digits", in: "<message><body>&#x;</body></message>", cond: NotWellFormed},
		{name: "char ref bad digit", in: "<message><body>&#12a;</body></message>", cond: NotWellFormed},
		{name: "char ref uppercase X", in: "<message><body>&#X41;</body></message>", cond: NotWellFormed},

		// Characters.
		{name: "]]> in text", in: "<message><body>a]]>b</body></message>", cond: NotWellFormed},
		{name: "]]]> in text", in: "<message><body>a]]]>b</body></message>", cond: NotWellFormed},
		{name: "control character in text", in: "<message><body>\x01</body></message>", cond: NotWellFormed},
		{name: "NUL in text", in: "<message><body>a\x00b</body></message>", cond: NotWellFormed},
		{name: "control character in attribute", in: "<message id='\x07'/>", cond: NotWellFormed},
		{name: "control character in CDATA", in: "<message><![CDATA[\x0c]]></message>", cond: NotWellFormed},
		{name: "control character in tag", in: "<message\x0b/>", cond: NotWellFormed},
		{name: "invalid UTF-8 in text", in: "<message><body>\xff</body></message>", cond: NotWellFormed},
		{name: "truncated UTF-8 in text", in: "<message><body>\xe2\x82</body></message>", cond: NotWellFormed},
		{name: "overlong UTF-8", in: "<message><body>\xc0\xaf</body></message>", cond: NotWellFormed},
		{name: "UTF-8 surrogate", in: "<message><body>\xed\xa0\x80</body></message>", cond: NotWellFormed},
		{name: "U+FFFF", in: "<message><body>\xef\xbf\xbf</body></message>", cond: NotWellFormed},
		{name: "beyond U+10FFFF", in: "<message><body>\xf4\x90\x80\x80</body></message>", cond: NotWellFormed},
		{name: "invalid UTF-8 in name", in: "<mess\xffage/>", cond: NotWellFormed},
		{name: "invalid UTF-8 in attribute", in: "<message id='\xc3\x28'/>", cond: NotWellFormed},
		{name: "invalid UTF-8 in CDATA", in: "<message><![CDATA[\xfe]]></message>", cond: NotWellFormed},
		{name: "invalid UTF-8 at stream level", in: "\xc3\xa9", cond: NotWellFormed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if !tt.full {
				in = hdr + in + "<iq type='get' id='after'/>" + closeS
			}
			whole := readAll(strings.NewReader(in), Limits{}, nil)
			if got := condOf(whole.Err); got != tt.cond {
				t.Fatalf("got %v (condition %q), want %q", whole.Err, got, tt.cond)
			}
			one := readAll(&chunkReader{data: []byte(in), sizes: []int{1}}, Limits{}, nil)
			if d := one.diff(whole); d != "" {
				t.Errorf("one byte at a time: %s", d)
			}
		})
	}
}

// TestAccepts covers well-formed corners that a hand-written scanner easily gets wrong.
func TestAccepts(t *testing.T) {
	tests := []struct{ name, in string }{
		{"CDATA ending ]]]>", "<message><body><![CDATA[a]]]></body></message>"},
		{"CDATA with markup", "<message><body><![CDATA[<a>&foo;</b>]]></body></message>"},
		{"empty CDATA", "<message><body><![CDATA[]]></body></message>"},
		{"CDATA with brackets", "<message><body><![CDATA[]]]]]]><![CDATA[]>]]></body></message>"},
		{"]] and ]> in text", "<message><body>a]]b ]>c ]] >d</body></message>"},
		{"> in text", "<message><body>a > b</body></message>"},
		{"> in attribute", "<message id='a>b'/>"},
		{"other quote in attribute", `<message id="it's" type='say "hi"'/>`},
		{"whitespace around =", "<message id = '1'\ttype\n=\r\n'chat' />"},
		{"newlines in tags", "<message\n\tid='1'\n>\n</message\n>"},
		{"unicode names", "<message><данные xmlns='urn:x' ключ='1'>x</данные><a·b/></message>"},
		{"astral name", "<message><\U00010000/></message>"},
		{"char refs", "<message><body>&#65;&#x41;&#x1F600;&#0000065;&#x10FFFF;&#9;</body></message>"},
		{"all predefined entities", "<message id='&lt;&gt;&amp;&apos;&quot;'><body>&lt;&gt;&amp;&apos;&quot;</body></message>"},
		{"xml prefix declared correctly", "<message xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>"},
		{"prefixed stanza", "<c:message xmlns:c='jabber:client'><c:body>x</c:body></c:message>"},
		{"undeclare default namespace", "<message><x xmlns=''><y/></x></message>"},
		{"same local name in two namespaces", "<message xmlns:a='urn:1' xmlns:b='urn:2' a:x='1' b:x='2' x='3'/>"},
		{"prefix redeclared deeper", "<message xmlns:a='urn:1'><a:x xmlns:a='urn:2'><a:y/></a:x><a:z/></message>"},
		{"U+FFFD and DEL", "<message><body>\xef\xbf\xbd\x7f</body></message>"},
		{"four-byte UTF-8", "<message id='\U0001F600'><body>\U0001F600</body></message>"},
		{"space before end tag close", "<message></message >"},
		{"deep nesting", strings.Repeat("<a>", 63) + strings.Repeat("</a>", 63)},
		{"many attributes", "<message" + func() string {
			var b strings.Builder
			for i := range 64 {
				b.WriteString(" a" + string(rune('A'+i%26)) + string(rune('a'+i/26)) + "='x'")
			}
			return b.String()
		}() + "/>"},
		{"stream element as child", "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := hdr + tt.in + closeS
			res := readAll(strings.NewReader(in), Limits{}, nil)
			if res.Err != io.EOF {
				t.Fatalf("got %v, want io.EOF", res.Err)
			}
			if len(res.Els) != 1 || res.Els[0].Raw != tt.in {
				t.Fatalf("got %+v, want the one element", res.Els)
			}
			one := readAll(&chunkReader{data: []byte(in), sizes: []int{1}}, Limits{}, nil)
			if d := one.diff(res); d != "" {
				t.Errorf("one byte at a time: %s", d)
			}
		})
	}
}

func TestHeader(t *testing.T) {
	tests := []struct {
		name, in string
		want     Header
	}{
		{"conversations", "<?xml version='1.0'?><stream:stream to='example.org' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
			Header{To: "example.org", Version: "1.0", Lang: "en", NS: "jabber:client", Prefix: "stream"}},
		{"full declaration, double quotes", `<?xml version="1.0" encoding="utf-8" standalone="yes" ?><stream:stream xmlns="jabber:server" xmlns:stream="http://etherx.jabber.org/streams" from="a.example" to="b.example" id="x&amp;y" version="1.0">`,
			Header{To: "b.example", From: "a.example", ID: "x&y", Version: "1.0", NS: "jabber:server", Prefix: "stream"}},
		{"byte order mark and whitespace", "\xef\xbb\xbf<?xml version='1.0'?>\n\n<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client'>",
			Header{NS: "jabber:client", Prefix: "stream"}},
		{"no declaration", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", Header{Prefix: "stream"}},
		{"whitespace before declaration", "\n <?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", Header{Prefix: "stream"}},
		{"other prefix", "<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' to='comp.example'>",
			Header{To: "comp.example", NS: "jabber:component:accept", Prefix: "s"}},
		{"unprefixed stream", "<stream xmlns='http://etherx.jabber.org/streams'>", Header{NS: NSStream}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, sizes := range [][]int{{1 << 20}, {1}} {
				r := NewReader(&chunkReader{data: []byte(tt.in + "<r xmlns='urn:xmpp:sm:3'/>"), sizes: sizes}, Limits{})
				h, err := r.Header()
				if err != nil {
					t.Fatal(err)
				}
				if h != tt.want {
					t.Fatalf("got %+v, want %+v", h, tt.want)
				}
				e, err := r.Next()
				if err != nil || e.Local != "r" || e.NS != "urn:xmpp:sm:3" {
					t.Fatalf("after header: %v %+v", err, e)
				}
			}
		})
	}
}

func TestEnvelope(t *testing.T) {
	const msg = "<message to='juliet@example.com/balcony'\n\tfrom=\"romeo&#64;example.net/orchard\" type='chat' id='a&amp;b' xml:lang='en' foo:to='x' xmlns:foo='urn:foo'><body>hi</body></message>"
	r := NewReader(strings.NewReader(hdr+msg+"<presence/><iq id='a\tb\r\nc  d' type='get' ></iq>"+closeS), Limits{})
	if _, err := r.Header(); err != nil {
		t.Fatal(err)
	}
	e, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got []byte, want string) {
		t.Helper()
		if got == nil || string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	check("Raw", e.Raw, msg)
	check("To", e.To, "juliet@example.com/balcony")
	check("From", e.From, "romeo@example.net/orchard")
	check("Type", e.Type, "chat")
	check("ID", e.ID, "a&b")
	check("Lang", e.Lang, "en")
	check("to span", e.Raw[e.ToSpan[0]:e.ToSpan[1]], " to='juliet@example.com/balcony'")
	check("from span", e.Raw[e.FromSpan[0]:e.FromSpan[1]], "\n\tfrom=\"romeo&#64;example.net/orchard\"")
	check("name", e.Raw[:e.NameEnd], "<message")
	check("inner", e.Raw[e.InnerStart:e.InnerEnd], "<body>hi</body>")
	if e.Local != "message" || e.NS != "jabber:client" || e.SelfClosing || e.Raw[e.StartEnd] != '>' || e.StartEnd+1 != e.InnerStart {
		t.Errorf("element %+v", e)
	}
	// Values without references are slices of Raw: no copy.
	if &e.To[0] != &e.Raw[e.ToSpan[0]+5] {
		t.Error("To is not a slice of Raw")
	}
	// Appending to an envelope value must not overwrite Raw.
	_ = append(e.Type, "XXXXXXXX"...)
	check("Raw after append to Type", e.Raw, msg)

	e, err = r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if e.Local != "presence" || !e.SelfClosing || e.StartEnd != 9 || e.InnerStart != 9 || e.InnerEnd != 9 || e.NameEnd != 9 ||
		e.To != nil || e.From != nil || e.Type != nil || e.ID != nil || e.Lang != nil ||
		e.ToSpan != [2]int{-1, -1} || e.FromSpan != [2]int{-1, -1} {
		t.Errorf("presence: %+v", e)
	}

	e, err = r.Next()
	if err != nil {
		t.Fatal(err)
	}
	check("normalized ID", e.ID, "a b c  d")
	if e.InnerStart != e.InnerEnd || e.Raw[e.StartEnd] != '>' || e.SelfClosing {
		t.Errorf("empty iq: %+v", e)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

func TestKeepalives(t *testing.T) {
	in := hdr + " \n\t\r\n <r xmlns='urn:xmpp:sm:3'/>\n\n" + strings.Repeat(" ", 100000) + "<presence/> " + closeS
	r := NewReader(&chunkReader{data: []byte(in), sizes: []int{7, 1, 512}}, Limits{MaxElement: 1000})
	if _, err := r.Header(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"r", "presence"} {
		e, err := r.Next()
		if err != nil || e.Local != want {
			t.Fatalf("got %v %v, want %s", e, err, want)
		}
	}
	if len(r.buf) != DefaultBuffer {
		t.Errorf("whitespace grew the buffer to %d", len(r.buf))
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

func TestEOF(t *testing.T) {
	t.Run("inside element", func(t *testing.T) {
		res := readAll(strings.NewReader(hdr+"<message><bo"), Limits{}, nil)
		if !errors.Is(res.Err, io.ErrUnexpectedEOF) || condOf(res.Err) != "" {
			t.Fatalf("got %v", res.Err)
		}
	})
	t.Run("inside header", func(t *testing.T) {
		res := readAll(strings.NewReader("<?xml version='1.0'?><stream:str"), Limits{}, nil)
		if !errors.Is(res.Err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v", res.Err)
		}
	})
	t.Run("between elements", func(t *testing.T) {
		res := readAll(strings.NewReader(hdr+"<r xmlns='urn:xmpp:sm:3'/> "), Limits{}, nil)
		if !errors.Is(res.Err, io.ErrUnexpectedEOF) || errors.Is(res.Err, io.EOF) || len(res.Els) != 1 {
			t.Fatalf("got %v after %d elements", res.Err, len(res.Els))
		}
	})
	t.Run("close tag is final", func(t *testing.T) {
		r := NewReader(strings.NewReader(hdr+"</stream:stream ><message/>"), Limits{})
		r.Header()
		for range 2 {
			if _, err := r.Next(); err != io.EOF {
				t.Fatalf("got %v, want io.EOF", err)
			}
		}
	})
	t.Run("errors are final", func(t *testing.T) {
		r := NewReader(strings.NewReader(hdr+"<message><!-- --></message><presence/>"), Limits{})
		r.Header()
		_, err1 := r.Next()
		_, err2 := r.Next()
		if condOf(err1) != RestrictedXML || err1 != err2 {
			t.Fatalf("got %v then %v", err1, err2)
		}
	})
	t.Run("misuse", func(t *testing.T) {
		r := NewReader(strings.NewReader(hdr), Limits{})
		if _, err := r.Next(); err != errNoHeader {
			t.Fatalf("Next before Header: %v", err)
		}
		r.Header()
		if _, err := r.Header(); err != errHeaderTwice {
			t.Fatalf("Header twice: %v", err)
		}
	})
}

// timeoutReader fails once with a timeout at the given offset, as a net.Conn with a read deadline does.
type timeoutReader struct {
	data []byte
	at   int
	done bool
}

func (t *timeoutReader) Read(p []byte) (int, error) {
	if !t.done && t.at == 0 {
		t.done = true
		return 0, os.ErrDeadlineExceeded
	}
	if len(t.data) == 0 {
		return 0, io.EOF
	}
	n := len(t.data)
	if !t.done {
		n = min(n, t.at)
	}
	n = copy(p, t.data[:n])
	t.data, t.at = t.data[n:], t.at-n
	return n, nil
}

func TestTimeoutResumes(t *testing.T) {
	const msg = "<message to='a@b'><body>x&amp;y</body></message>"
	in := hdr + msg + closeS
	for at := len(hdr); at < len(in); at++ {
		r := NewReader(&timeoutReader{data: []byte(in), at: at}, Limits{})
		if _, err := r.Header(); err != nil {
			t.Fatal(err)
		}
		e, err := r.Next()
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("at %d: %v", at, err)
			}
			e, err = r.Next()
		}
		if err != nil || string(e.Raw) != msg || string(e.To) != "a@b" {
			t.Fatalf("at %d: after the timeout got %v %+v", at, err, e)
		}
	}
}

func TestRestart(t *testing.T) {
	const auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldABwYXNz</auth>"
	const second = "<?xml version='1.0'?><s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' to='example.org'>"
	in := hdr + auth + second + "<message/></s:stream>"
	r := NewReader(strings.NewReader(in), Limits{})
	if _, err := r.Header(); err != nil {
		t.Fatal(err)
	}
	e, err := r.Next()
	if err != nil || e.Local != "auth" {
		t.Fatal(e, err)
	}
	if r.Buffered() != len(second)+len("<message/></s:stream>") {
		t.Errorf("Buffered() = %d", r.Buffered())
	}
	r.Restart()
	if _, err := r.Next(); err != errNoHeader {
		t.Fatalf("Next after Restart: %v", err)
	}
	h, err := r.Header()
	if err != nil || h.Prefix != "s" || h.To != "example.org" {
		t.Fatal(h, err)
	}
	if e, err := r.Next(); err != nil || e.Local != "message" {
		t.Fatal(e, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF at </s:stream>", err)
	}

	// The first header's declarations are forgotten.
	in = hdr + auth + second + "<stream:error/>"
	res := readAll(strings.NewReader(in), Limits{}, restartAfterSASL)
	if condOf(res.Err) != NotWellFormed || len(res.Headers) != 2 {
		t.Fatalf("stream prefix of the first header survived the restart: %+v", res)
	}
}

func TestSetSource(t *testing.T) {
	const starttls = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
	t.Run("clean", func(t *testing.T) {
		r := NewReader(strings.NewReader(hdr+starttls+" \n"), Limits{})
		r.Header()
		if e, err := r.Next(); err != nil || e.Local != "starttls" {
			t.Fatal(e, err)
		}
		if err := r.SetSource(strings.NewReader(hdr + "<presence/>")); err != nil {
			t.Fatal(err)
		}
		r.Restart()
		if _, err := r.Header(); err != nil {
			t.Fatal(err)
		}
		if e, err := r.Next(); err != nil || e.Local != "presence" {
			t.Fatal(e, err)
		}
	})
	t.Run("pipelined", func(t *testing.T) {
		r := NewReader(strings.NewReader(hdr+starttls+"<iq type='set' id='x'/>"), Limits{})
		r.Header()
		if e, err := r.Next(); err != nil || e.Local != "starttls" {
			t.Fatal(e, err)
		}
		if r.Buffered() == 0 {
			t.Error("Buffered() = 0 with an iq buffered")
		}
		if err := r.SetSource(strings.NewReader("")); err != ErrBufferedData {
			t.Fatalf("got %v, want ErrBufferedData", err)
		}
	})
}

func TestLimits(t *testing.T) {
	t.Run("300 KiB stanza", func(t *testing.T) {
		src := &countingReader{r: io.MultiReader(strings.NewReader(hdr+"<message><body>"), endless('a'))}
		r := NewReader(src, Limits{})
		r.Header()
		_, err := r.Next()
		if condOf(err) != PolicyViolation {
			t.Fatalf("got %v, want policy-violation", err)
		}
		if len(r.buf) > DefaultMaxElement {
			t.Errorf("buffer grew to %d", len(r.buf))
		}
		if src.n > int64(len(hdr)+DefaultMaxElement+DefaultBuffer) {
			t.Errorf("read %d bytes", src.n)
		}
	})
	t.Run("exact size", func(t *testing.T) {
		const max = 300
		for _, n := range []int{max, max + 1} {
			el := "<message><body>" + strings.Repeat("x", n-len("<message><body></body></message>")) + "</body></message>"
			res := readAll(strings.NewReader(hdr+el+closeS), Limits{MaxElement: max}, nil)
			if want := n > max; want != (condOf(res.Err) == PolicyViolation) {
				t.Errorf("%d bytes with MaxElement %d: %v", n, max, res.Err)
			}
		}
	})
	t.Run("header", func(t *testing.T) {
		res := readAll(strings.NewReader("<stream:stream "+streamNS+" to='"+strings.Repeat("a", 500)+"'>"), Limits{MaxElement: 300}, nil)
		if condOf(res.Err) != PolicyViolation {
			t.Fatalf("got %v", res.Err)
		}
	})
	t.Run("multi-byte character at the limit", func(t *testing.T) {
		el := "<message><body>" + strings.Repeat("x", 300-len("<message><body>")-1) + "é</body></message>"
		res := readAll(&chunkReader{data: []byte(hdr + el + closeS), sizes: []int{1}}, Limits{MaxElement: 300}, nil)
		if condOf(res.Err) != PolicyViolation {
			t.Fatalf("got %v", res.Err)
		}
	})
	t.Run("depth", func(t *testing.T) {
		ok := "<a><b><c/></b></a>"
		if res := readAll(strings.NewReader(hdr+ok+closeS), Limits{MaxDepth: 3}, nil); res.Err != io.EOF {
			t.Fatalf("depth 3: %v", res.Err)
		}
		deep := "<a><b><c><d/></c></b></a>"
		if res := readAll(strings.NewReader(hdr+deep+closeS), Limits{MaxDepth: 3}, nil); condOf(res.Err) != PolicyViolation {
			t.Fatalf("depth 4: %v", res.Err)
		}
		bomb := strings.Repeat("<a>", 100000)
		if res := readAll(strings.NewReader(hdr+bomb), Limits{}, nil); condOf(res.Err) != PolicyViolation {
			t.Fatalf("depth bomb: %v", res.Err)
		}
	})
	t.Run("attributes", func(t *testing.T) {
		const h = "<stream:stream " + streamNS + " xmlns='jabber:client'>"
		if res := readAll(strings.NewReader(h+"<a x='1' y='2'/>"+closeS), Limits{MaxAttrs: 2}, nil); res.Err != io.EOF {
			t.Fatalf("2 attributes: %v", res.Err)
		}
		if res := readAll(strings.NewReader(h+"<a><b x='1' y='2' z='3'/></a>"+closeS), Limits{MaxAttrs: 2}, nil); condOf(res.Err) != PolicyViolation {
			t.Fatalf("3 attributes: %v", res.Err)
		}
	})
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

// TestBufferShrinks checks that a large element does not leave a large buffer behind on an idle session.
func TestBufferShrinks(t *testing.T) {
	big := "<message><body>" + strings.Repeat("b", 100000) + "</body></message>"
	for _, next := range []string{"<presence/>", "<presence"} {
		// The small element arrives on its own read, complete or (a client going idle mid-element) not.
		r := NewReader(io.MultiReader(strings.NewReader(hdr+big), strings.NewReader(next), &timeoutReader{}), Limits{})
		r.Header()
		e, err := r.Next()
		if err != nil || len(e.Raw) != len(big) {
			t.Fatal(err)
		}
		if len(r.buf) < len(big) {
			t.Fatalf("buffer %d smaller than the element", len(r.buf))
		}
		e, err = r.Next()
		if next == "<presence/>" && (err != nil || e.Local != "presence") {
			t.Fatal(e, err)
		}
		if len(r.buf) != DefaultBuffer {
			t.Errorf("%s: buffer is %d bytes after the large element, want %d", next, len(r.buf), DefaultBuffer)
		}
	}
}

// TestClientSessions runs whole sessions as Conversations and Gajim send them: header, STARTTLS, the source
// change, SASL with a restart, bind and the usual stanzas.
func TestClientSessions(t *testing.T) {
	tests := []struct {
		file   string
		locals string
	}{
		{"conversations.xml", "auth response iq enable iq iq iq iq presence r iq a message message message inactive iq active message presence a"},
		{"gajim.xml", "auth iq iq enable iq presence message r iq presence"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			plain, tls := transcript(t, tt.file)
			r := NewReader(bytes.NewReader(plain), Limits{})
			h, err := r.Header()
			if err != nil || h.To != "example.org" || h.NS != "jabber:client" || h.Version != "1.0" || h.Lang != "en" {
				t.Fatal(h, err)
			}
			e, err := r.Next()
			if err != nil || e.Local != "starttls" || e.NS != "urn:ietf:params:xml:ns:xmpp-tls" || r.Buffered() != 0 {
				t.Fatal(e, err)
			}
			if err := r.SetSource(bytes.NewReader(tls)); err != nil {
				t.Fatal(err)
			}
			r.Restart()
			var locals []string
			headers := 0
			need := true
			for {
				if need {
					if _, err := r.Header(); err != nil {
						t.Fatal(err)
					}
					headers++
					need = false
				}
				e, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				locals = append(locals, e.Local)
				switch e.Local {
				case "message", "presence", "iq":
					if e.NS != "jabber:client" {
						t.Errorf("%s in %q", e.Local, e.NS)
					}
				}
				if e.Local == "message" && e.Type != nil && string(e.Type) == "chat" {
					if s, end, ok := e.Child("body", "jabber:client"); ok && !bytes.HasSuffix(e.Raw[s:end], []byte("</body>")) {
						t.Errorf("body %q", e.Raw[s:end])
					}
					if string(e.To) != "romeo@example.net" {
						t.Errorf("to %q", e.To)
					}
				}
				if restartAfterSASL(e) {
					r.Restart()
					need = true
				}
			}
			if got := strings.Join(locals, " "); got != tt.locals {
				t.Errorf("got  %s\nwant %s", got, tt.locals)
			}
			if headers != 2 {
				t.Errorf("%d headers after TLS, want 2", headers)
			}
		})
	}
}

// TestSplitEveryOffset feeds streams in two reads split at every offset, one byte at a time and in odd chunk sizes,
// and requires identical results: the scanner's state survives every boundary.
func TestSplitEveryOffset(t *testing.T) {
	streams := map[string][]byte{}
	for _, f := range []string{"conversations.xml", "gajim.xml"} {
		_, tls := transcript(t, f)
		streams[f] = tls
	}
	streams["mixed"] = []byte(hdr + " <message xmlns:x='urn:x' x:a='&lt;' to='a&#x40;b'><body><![CDATA[]]]]><x:y>é😀</x:y></body></message>\n" +
		"<presence/><stream:error><x xmlns='urn:x'/></stream:error>" + closeS)
	streams["error"] = []byte(hdr + "<message><body>ok</body></message><message><body>\xe2\x82\xac &bogus;</body></message>")
	streams["limit"] = []byte(hdr + "<message>" + strings.Repeat("é", 300) + "</message>")
	for name, data := range streams {
		t.Run(name, func(t *testing.T) {
			lim := Limits{}
			if name == "limit" {
				lim.MaxElement = 401
			}
			want := readAll(bytes.NewReader(data), lim, restartAfterSASL)
			if name != "error" && name != "limit" && want.Err != io.EOF {
				t.Fatalf("whole stream: %v", want.Err)
			}
			for _, sizes := range [][]int{{1}, {2}, {3, 5, 7}, {13, 1, 64}} {
				got := readAll(&chunkReader{data: data, sizes: sizes}, lim, restartAfterSASL)
				if d := got.diff(want); d != "" {
					t.Fatalf("chunks %v: %s", sizes, d)
				}
			}
			for at := 1; at < len(data); at++ {
				got := readAll(splitReader(data, at), lim, restartAfterSASL)
				if d := got.diff(want); d != "" {
					t.Fatalf("split at %d: %s", at, d)
				}
			}
		})
	}
}

func TestInherited(t *testing.T) {
	const h = "<stream:stream xmlns='jabber:server' " + streamNS + " xmlns:db='jabber:server:dialback' xmlns:foo='urn:foo'>"
	tests := []struct {
		in   string
		ns   string
		want []NSDecl
	}{
		{"<message><foo:x/></message>", "jabber:server", []NSDecl{{"foo", "urn:foo"}}},
		{"<message xmlns:foo='urn:other'><foo:x/></message>", "jabber:server", nil},
		{"<db:result to='a' from='b'>key</db:result>", "jabber:server:dialback", []NSDecl{{"db", "jabber:server:dialback"}}},
		{"<message><a xmlns:foo='urn:2'><foo:b/></a><foo:c foo:d='1'/></message>", "jabber:server", []NSDecl{{"foo", "urn:foo"}}},
		{"<message foo:attr='1'><db:x/></message>", "jabber:server", []NSDecl{{"foo", "urn:foo"}, {"db", "jabber:server:dialback"}}},
		{"<message xml:lang='en'><x xmlns='urn:x'/></message>", "jabber:server", nil},
		{"<stream:error/>", NSStream, []NSDecl{{"stream", NSStream}}},
	}
	for _, tt := range tests {
		res := readAll(strings.NewReader(h+tt.in+closeS), Limits{}, nil)
		if res.Err != io.EOF || len(res.Els) != 1 {
			t.Fatalf("%s: %v", tt.in, res.Err)
		}
		e := res.Els[0]
		if e.NS != tt.ns || len(e.Inherited) != len(tt.want) || len(e.Inherited) > 0 && !equalDecls(e.Inherited, tt.want) {
			t.Errorf("%s: NS %q Inherited %v, want %q %v", tt.in, e.NS, e.Inherited, tt.ns, tt.want)
		}
		// With the declarations injected, the bytes stand on their own in a stream that declares nothing else.
		if err := reparse(e); err != nil {
			t.Errorf("%s: %v", tt.in, err)
		}
	}
}

func equalDecls(a, b []NSDecl) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestChild(t *testing.T) {
	const h = "<stream:stream xmlns='jabber:client' " + streamNS + " xmlns:rcpt='urn:xmpp:receipts'>"
	const msg = "<message xmlns:m='urn:xmpp:chat-markers:0'><thread>t</thread>" +
		"<x xmlns='urn:other'><body>not mine</body></x>" +
		"<body xmlns='urn:wrong'>wrong</body>" +
		"<![CDATA[<body>cdata</body>]]>" +
		"<body a='>'>right</body>" +
		"<origin-id xmlns='urn:xmpp:sid:0' id='o1'/>" +
		"<rcpt:received id='r1'/>" +
		"<m:displayed id='d1'/>" +
		"<c:x xmlns:c='urn:c&amp;d'/>" +
		"</message>"
	r := NewReader(strings.NewReader(h+msg+"<presence/>"), Limits{})
	r.Header()
	e, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ local, ns, want string }{
		{"body", "jabber:client", "<body a='>'>right</body>"},
		{"body", "urn:wrong", "<body xmlns='urn:wrong'>wrong</body>"},
		{"origin-id", "urn:xmpp:sid:0", "<origin-id xmlns='urn:xmpp:sid:0' id='o1'/>"},
		{"received", "urn:xmpp:receipts", "<rcpt:received id='r1'/>"},
		{"displayed", "urn:xmpp:chat-markers:0", "<m:displayed id='d1'/>"},
		{"x", "urn:c&d", "<c:x xmlns:c='urn:c&amp;d'/>"},
		{"thread", "jabber:client", "<thread>t</thread>"},
		{"x", "urn:other", "<x xmlns='urn:other'><body>not mine</body></x>"},
		{"missing", "jabber:client", ""},
		{"body", "urn:other", ""},
	}
	for _, tt := range tests {
		s, end, ok := e.Child(tt.local, tt.ns)
		if got := ""; ok != (tt.want != "") || ok && string(e.Raw[s:end]) != tt.want {
			if ok {
				got = string(e.Raw[s:end])
			}
			t.Errorf("Child(%q, %q) = %q %v, want %q", tt.local, tt.ns, got, ok, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { e.Child("received", "urn:xmpp:receipts") }); n != 0 {
		t.Errorf("Child allocates %v times", n)
	}
	e, _ = r.Next()
	if _, _, ok := e.Child("x", ""); ok {
		t.Error("child of a self-closing element")
	}
	if _, _, ok := (&Element{Raw: []byte("<a>"), InnerStart: 5, InnerEnd: 2}).Child("x", ""); ok {
		t.Error("child of a broken element")
	}
}

func TestEscape(t *testing.T) {
	tests := []struct {
		in, want string
		lossy    bool // characters XML cannot carry are replaced
	}{
		{"", "", false},
		{"plain text", "plain text", false},
		{`<a href="x">'&'</a>`, "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;", false},
		{"tab\tnl\ncr\r", "tab&#x9;nl&#xA;cr&#xD;", false},
		{"nul\x00bell\x07", "nul\uFFFDbell\uFFFD", true},
		{"bad \xff utf8 \xef\xbf\xbe", "bad \uFFFD utf8 \uFFFD", true},
		{"héllo 😀", "héllo 😀", false},
	}
	for _, tt := range tests {
		if got := string(Escape([]byte("x"), []byte(tt.in))); got != "x"+tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, "x"+tt.want)
		}
		if got := string(EscapeString([]byte("x"), tt.in)); got != "x"+tt.want {
			t.Errorf("EscapeString(%q) = %q, want %q", tt.in, got, "x"+tt.want)
		}
		// Escaped text decodes back in an attribute.
		if !tt.lossy {
			if got := string(decodeAttr(nil, Escape(nil, []byte(tt.in)))); got != tt.in {
				t.Errorf("round trip of %q: %q", tt.in, got)
			}
		}
	}
}

// TestZeroAllocs checks the steady state of the c2s loop: no allocation per stanza.
func TestZeroAllocs(t *testing.T) {
	for _, msg := range []string{chatMessage, "<message xmlns='jabber:client' to='a@b' id='x&amp;y' type='chat'><body>&lt;3</body></message>", "<r xmlns='urn:xmpp:sm:3'/>", "<presence/>"} {
		r := NewReader(newLoopReader(hdr, msg), Limits{})
		if _, err := r.Header(); err != nil {
			t.Fatal(err)
		}
		for range 100 {
			r.Next()
		}
		n := testing.AllocsPerRun(1000, func() {
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%d allocations per Next for %s", int(n), msg)
		}
	}
}

// TestIdleMemory keeps what an idle session's Reader holds (buffer, struct, scanner stacks) within budget, after a
// normal session and after an element built to make the stacks large.
func TestIdleMemory(t *testing.T) {
	_, tls := transcript(t, "conversations.xml")
	var hostile strings.Builder
	hostile.WriteString(hdr + "<message")
	for i := range 60 {
		hostile.WriteString(" xmlns:p" + strings.Repeat("x", i) + "='urn:&amp;" + strings.Repeat("y", 100) + "'")
	}
	hostile.WriteString(">" + strings.Repeat("<a xmlns='urn:a'>", 60) + strings.Repeat("</a>", 60) + "</message>" + chatMessage)
	for name, data := range map[string][]byte{"session": tls, "hostile": []byte(hostile.String())} {
		const n = 1000
		readers := make([]*Reader, n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range readers {
			r := NewReader(bytes.NewReader(data), Limits{})
			if err := readAllQuiet(r); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatal(err)
			}
			r.src = nil
			readers[i] = r
		}
		// Twice: buffers in the shared pool survive one collection, and they are not the readers' to hold.
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
		t.Logf("%s: %d bytes per idle Reader", name, per)
		if per > 4096 {
			t.Errorf("%s: %d bytes per idle Reader, budget 4096", name, per)
		}
		runtime.KeepAlive(readers)
	}
}

// TestSourceBehaviours runs a session through the readers of testing/iotest: data returned together with io.EOF,
// one byte at a time, half reads.
func TestSourceBehaviours(t *testing.T) {
	_, tls := transcript(t, "gajim.xml")
	want := readAll(bytes.NewReader(tls), Limits{}, restartAfterSASL)
	for name, src := range map[string]io.Reader{
		"DataErrReader": iotest.DataErrReader(bytes.NewReader(tls)),
		"OneByteReader": iotest.OneByteReader(bytes.NewReader(tls)),
		"HalfReader":    iotest.HalfReader(bytes.NewReader(tls)),
	} {
		if d := readAll(src, Limits{}, restartAfterSASL).diff(want); d != "" {
			t.Errorf("%s: %s", name, d)
		}
	}
	// Data and an error in the same read: the data is used, the error comes next.
	res := readAll(iotest.DataErrReader(strings.NewReader(hdr+"<presence/><messa")), Limits{}, nil)
	if len(res.Els) != 1 || !errors.Is(res.Err, io.ErrUnexpectedEOF) {
		t.Errorf("got %d elements and %v", len(res.Els), res.Err)
	}
	// A source that never makes progress.
	r := NewReader(zeroReader{}, Limits{})
	if _, err := r.Header(); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("got %v, want io.ErrNoProgress", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestErrorText(t *testing.T) {
	res := readAll(strings.NewReader(hdr+"<message><!-- --></message>"), Limits{}, nil)
	want := "stream: restricted-xml: comment at byte " + strconv.Itoa(len(hdr)+len("<message><!-"))
	if res.Err == nil || res.Err.Error() != want {
		t.Errorf("got %q, want %q", res.Err, want)
	}
}

// TestIdleReaderDoesNotPinLargeBuffer: the envelope slices of the last element pointed into the large buffer after
// it went back to the pool, so every idle session could keep a large buffer alive.
func TestIdleReaderDoesNotPinLargeBuffer(t *testing.T) {
	big := "<message><body>" + strings.Repeat("b", 10000) + "</body></message>"
	r := NewReader(strings.NewReader(hdr+big+chatMessage), Limits{})
	r.Header()
	for range 2 {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if r.large == nil {
		t.Fatal("the message was not read into a large buffer")
	}
	if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	e := r.el
	if r.large != nil || e.Raw != nil || e.To != nil || e.From != nil || e.Type != nil || e.ID != nil || e.Lang != nil {
		t.Errorf("idle Reader still refers to the large buffer: large %v, element %+v", r.large != nil, e)
	}
}

// EscapeString is on the path of every attribute the server builds: it must not allocate.
func TestEscapeStringZeroAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	for _, s := range []string{"juliet@capulet.lit/balcony", "a <b> & 'c' \"d\"\t\n", "héllo 😀 \xff"} {
		if n := testing.AllocsPerRun(100, func() { buf = EscapeString(buf[:0], s) }); n != 0 {
			t.Errorf("EscapeString(%q): %v allocations", s, n)
		}
	}
}
