package websocket

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"parley.im/parley/xmpp/stream"
)

const srvHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='example.org' version='1.0' xml:lang='en'>"

func TestTranslateIn(t *testing.T) {
	const hs = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
	for _, tc := range []struct {
		name, in, want string // want "" = not translated
	}{
		{"open", `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>`, hs + ` to='example.org' version='1.0'>`},
		{"open double quotes and lang", `<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" version="1.0" xml:lang="de" to="example.org" />`, hs + ` to='example.org' version='1.0' xml:lang='de'>`},
		{"open with from", `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' from='juliet@example.org' version='1.0'/>`, hs + ` to='example.org' from='juliet@example.org' version='1.0'>`},
		{"open entities re-escaped", `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='a&amp;b&apos;&lt;' version='1.0'/>`, hs + ` to='a&amp;b&apos;&lt;' version='1.0'>`},
		{"open prefixed", `<f:open xmlns:f='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>`, hs + ` to='example.org' version='1.0'>`},
		{"open whitespace around", "\n <open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org'/> \n", hs + ` to='example.org'>`},
		{"open without attributes", `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`, hs + `>`},
		{"close", `<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`, `</stream:stream>`},
		{"close with see-other-uri", `<close xmlns='urn:ietf:params:xml:ns:xmpp-framing' see-other-uri='wss://x'/>`, `</stream:stream>`},
		{"open in another namespace", `<open xmlns='jabber:client' to='example.org'/>`, ""},
		{"open without namespace", `<open to='example.org'/>`, ""},
		{"malformed open", `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org'>`, ""},
		{"stanza", `<message xmlns='jabber:client'><body>open</body></message>`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, ok := translateIn([]byte(tc.in))
			if got := string(out); ok != (tc.want != "") || got != tc.want {
				t.Fatalf("translateIn(%s) = %q, %v; want %q", tc.in, got, ok, tc.want)
			}
			if ok && tc.want != streamClose {
				// What the reader gets is a valid stream header with the client's to.
				r := stream.NewReader(strings.NewReader(tc.want), stream.Limits{})
				h, err := r.Header()
				if err != nil {
					t.Fatalf("reader refuses %s: %v", tc.want, err)
				}
				if h.NS != "jabber:client" {
					t.Fatalf("header namespace %q", h.NS)
				}
			}
		})
	}
}

func TestFirstName(t *testing.T) {
	for _, tc := range []struct {
		in       string
		name     string
		complete bool
	}{
		{"", "", false},
		{"  ", "", false},
		{"<op", "", false},
		{"<open ", "open", true},
		{" \n<open/>", "open", true},
		{"<f:close>", "close", true},
		{"<message to='x'>", "message", true},
		{"text", "", true},
	} {
		name, complete := firstName([]byte(tc.in))
		if string(name) != tc.name || complete != tc.complete {
			t.Errorf("firstName(%q) = %q, %v; want %q, %v", tc.in, name, complete, tc.name, tc.complete)
		}
	}
}

// splitAll runs the splitter over in, written in chunks of size n (0 = whole).
func splitAll(in []byte, n int) ([]string, error) {
	s := newSplitter(1 << 20)
	var out []string
	emit := func(m []byte) error { out = append(out, string(m)); return nil }
	if n <= 0 {
		return out, s.write(in, emit)
	}
	for len(in) > 0 {
		k := min(n, len(in))
		// Copy each chunk so that a splitter keeping a reference to the caller's buffer would be caught.
		chunk := append([]byte(nil), in[:k]...)
		if err := s.write(chunk, emit); err != nil {
			return out, err
		}
		clear(chunk)
		in = in[k:]
	}
	return out, nil
}

func TestSplitter(t *testing.T) {
	const open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='abc' from='example.org' version='1.0' xml:lang='en'/>"
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"header and features", srvHeader + "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
			[]string{open, "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>"}},
		{"stanza gets jabber:client", srvHeader + "<message from='a@example.org/r' to='b@example.org' type='chat'><body>hi</body></message>",
			[]string{open, "<message xmlns='jabber:client' from='a@example.org/r' to='b@example.org' type='chat'><body>hi</body></message>"}},
		{"stanza that declares its namespace is unchanged", srvHeader + "<iq xmlns='jabber:client' type='result' id='1'/>",
			[]string{open, "<iq xmlns='jabber:client' type='result' id='1'/>"}},
		{"self-closing nonza with own namespace", srvHeader + "<r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='2'/>",
			[]string{open, "<r xmlns='urn:xmpp:sm:3'/>", "<a xmlns='urn:xmpp:sm:3' h='2'/>"}},
		{"stream error and close", srvHeader + "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>replaced</text></stream:error></stream:stream>",
			[]string{open, "<stream:error xmlns:stream='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>replaced</text></stream:error>", closeMsg}},
		{"restart after success", srvHeader + "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" + strings.Replace(srvHeader, "abc", "def", 1) + "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
			[]string{open, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", strings.Replace(open, "abc", "def", 1), "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"}},
		{"whitespace dropped", srvHeader + " \n\t<presence/>\n \n<presence type='unavailable'/>  ",
			[]string{open, "<presence xmlns='jabber:client'/>", "<presence xmlns='jabber:client' type='unavailable'/>"}},
		{"markup inside content", srvHeader + "<message><body><![CDATA[</message><x a='>'>]]]]>&amp;</body><x a='&lt;/message&gt;' b=\"'>\"/></message>",
			[]string{open, "<message xmlns='jabber:client'><body><![CDATA[</message><x a='>'>]]]]>&amp;</body><x a='&lt;/message&gt;' b=\"'>\"/></message>"}},
		{"undeclared descendant gets the default", srvHeader + "<stream:features><foo/></stream:features>",
			[]string{open, "<stream:features xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><foo/></stream:features>"}},
		{"element that declares the stream prefix itself", srvHeader + "<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>",
			[]string{open, "<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>"}},
		{"prefixed attribute from the header", "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:x=\"urn:x\">" + "<message x:a='1'><x:b/></message>",
			[]string{"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>", "<message xmlns='jabber:client' xmlns:x=\"urn:x\" x:a='1'><x:b/></message>"}},
		{"element in the middle of a name", srvHeader + "<message><body xmlns='urn:x'><i/></body><thread>t</thread></message>",
			[]string{open, "<message xmlns='jabber:client'><body xmlns='urn:x'><i/></body><thread>t</thread></message>"}},
		{"refusal before the stream", srvHeader + "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
			[]string{open, "<stream:error xmlns:stream='http://etherx.jabber.org/streams'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>", closeMsg}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{0, 1, 2, 3, 7, 16, 100} {
				got, err := splitAll([]byte(tc.in), n)
				if err != nil {
					t.Fatalf("chunk %d: %v", n, err)
				}
				if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
					t.Fatalf("chunk %d:\ngot  %q\nwant %q", n, got, tc.want)
				}
			}
			for _, m := range tc.want {
				if m != closeMsg && !strings.HasPrefix(m, "<open ") {
					standalone(t, []byte(m))
				}
			}
		})
	}
}

func TestSplitterRejects(t *testing.T) {
	for _, in := range []string{
		srvHeader + "text<presence/>",
		srvHeader + "</message>",
		srvHeader + "<a b='1'c='2'/>",
		srvHeader + "<a b/>",
		srvHeader + "<a b=1/>",
		srvHeader + "<a b='<'/>",
		srvHeader + "<!DOCTYPE x>",
		srvHeader + "<![CDATA[x]]>",
		srvHeader + "< a/>",
		srvHeader + "<a/ >",
	} {
		for _, n := range []int{0, 1} {
			if _, err := splitAll([]byte(in), n); !errors.Is(err, errOutput) {
				t.Errorf("%q in chunks of %d: err %v, want errOutput", in[len(srvHeader):], n, err)
			}
		}
	}
}

func TestSplitterLimit(t *testing.T) {
	s := newSplitter(1000)
	emit := func([]byte) error { return nil }
	if err := s.write([]byte(srvHeader+"<message><body>"), emit); err != nil {
		t.Fatal(err)
	}
	if err := s.write(bytes.Repeat([]byte("x"), 2000), emit); !errors.Is(err, errOutput) {
		t.Fatalf("err %v, want the limit", err)
	}
	if err := s.write([]byte("</body></message>"), emit); !errors.Is(err, errOutput) {
		t.Fatalf("error is not final: %v", err)
	}
}

// TestSplitterLargeStanzas: a 10 KB and a 200 KB stanza, coalesced with small ones and cut into 16 KiB writes
// as the c2s queue does, each come out as exactly one message.
func TestSplitterLargeStanzas(t *testing.T) {
	small := "<message to='a@example.org'><body>x</body></message>"
	big := func(n int) string {
		return "<message to='a@example.org' id='big'><body>" + strings.Repeat("a&amp;b", n/7) + "</body></message>"
	}
	in := srvHeader + small + big(10_000) + small + big(200_000) + small
	want := []string{"<message xmlns='jabber:client' to='a@example.org'><body>x</body></message>"}
	for _, n := range []int{0, 16 << 10, 4093} {
		got, err := splitAll([]byte(in), n)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 6 {
			t.Fatalf("chunk %d: %d messages, want 6", n, len(got))
		}
		for i, g := range got[1:] {
			if i%2 == 0 && g != want[0] {
				t.Fatalf("message %d: %q", i+1, g)
			}
			if i%2 == 1 {
				if !strings.HasPrefix(g, "<message xmlns='jabber:client' to='a@example.org' id='big'><body>") || !strings.HasSuffix(g, "</body></message>") {
					t.Fatalf("message %d is not one whole stanza: %.80q ... %.40q", i+1, g, g[len(g)-40:])
				}
			}
		}
		if len(got[2]) < 10_000 || len(got[4]) < 200_000 {
			t.Fatalf("sizes %d and %d", len(got[2]), len(got[4]))
		}
	}
}

// standalone parses one message as a document of its own, with a stream header that declares nothing but the
// stream prefix under another name, and returns its element.
func standalone(t testing.TB, msg []byte) (local, ns string) {
	t.Helper()
	src := io.MultiReader(strings.NewReader("<sx:stream xmlns:sx='http://etherx.jabber.org/streams'>"), bytes.NewReader(msg), strings.NewReader("</sx:stream>"))
	r := stream.NewReader(src, stream.Limits{MaxElement: 1 << 22, MaxDepth: 1 << 10, MaxAttrs: 1 << 10})
	if _, err := r.Header(); err != nil {
		t.Fatalf("standalone header: %v", err)
	}
	el, err := r.Next()
	if err != nil {
		t.Fatalf("message does not stand alone: %v\n%s", err, msg)
	}
	local, ns = el.Local, el.NS
	if len(el.Inherited) > 0 {
		t.Fatalf("message relies on declarations it does not carry: %v\n%s", el.Inherited, msg)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("message holds more than one element: %v\n%s", err, msg)
	}
	return local, ns
}

func ExampleConn() {
	// What a client sees for the server's first bytes.
	s := newSplitter(1 << 20)
	s.write([]byte(srvHeader+"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>"), func(m []byte) error {
		fmt.Println(string(m))
		return nil
	})
	// Output:
	// <open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='abc' from='example.org' version='1.0' xml:lang='en'/>
	// <stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>
}
