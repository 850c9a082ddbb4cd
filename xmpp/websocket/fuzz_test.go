package websocket

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"parley.im/parley/xmpp/stream"
)

// readerItem is what the stream package's Reader saw: "open" for a header, "close" for the end, or an element.
type readerItem struct {
	kind      string
	local, ns string
	raw       []byte
	nameEnd   int
}

// readStream reads data as the server's output stream with the validating Reader, restarting after a SASL
// <success/> as a client would. ok is false when the Reader refuses the stream; a stream that just stops is
// accepted up to there.
func readStream(data []byte) (items []readerItem, ok bool) {
	r := stream.NewReader(bytes.NewReader(data), stream.Limits{MaxElement: 1 << 20, MaxDepth: 256, MaxAttrs: 256})
	if _, err := r.Header(); err != nil {
		return nil, false
	}
	items = append(items, readerItem{kind: "open"})
	for {
		el, err := r.Next()
		if err == io.EOF {
			return append(items, readerItem{kind: "close"}), true
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			// The stream stops here: what came before must have been split the same, and the splitter may have
			// made more of the unfinished rest (an <open/> for a nested stream header).
			return items, true
		}
		if err != nil {
			return nil, false
		}
		if el.Local == "stream" && el.NS == nsStream && !el.SelfClosing {
			return nil, false // a stream header where the Reader expects none: the server never writes one
		}
		items = append(items, readerItem{kind: "el", local: el.Local, ns: el.NS, raw: append([]byte(nil), el.Raw...), nameEnd: el.NameEnd})
		if el.Local == "success" && el.NS == "urn:ietf:params:xml:ns:xmpp-sasl" {
			r.Restart()
			if _, err := r.Header(); err != nil {
				return nil, false
			}
			items = append(items, readerItem{kind: "open"})
		}
	}
}

// FuzzSplitter feeds arbitrary output streams to the splitter. It must not panic; it must give the same
// messages however the stream is cut into writes; and whenever the validating stream Reader accepts the input
// as a stream, every element must come out as exactly one message that stands alone (namespaces declared) and
// is the element's own bytes with only namespace declarations added after its name.
func FuzzSplitter(f *testing.F) {
	for _, name := range []string{"conversations.xml", "gajim.xml"} {
		if b, err := os.ReadFile("../stream/testdata/" + name); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		srvHeader + "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>" +
			"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" + srvHeader + "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>" +
			"<iq type='result' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>a@example.org/r</jid></bind></iq></stream:stream>",
		srvHeader + "<message from='a@b/c' to='d@e'><body><![CDATA[<x>]]></body><x:y xmlns:x='urn:x' x:z='&apos;'/></message>\n  <r xmlns='urn:xmpp:sm:3'/>",
		srvHeader + "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
		"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:p=\"urn:p\"><p:a p:b='1'><c/></p:a><stream:x><p:y/></stream:x>",
		"<stream xmlns='http://etherx.jabber.org/streams'><a/><b xmlns=''/></stream>",
		srvHeader + "<message><!-- c --><?pi x?><body>é😀&#65;</body></message><presence xml:lang='en'/>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, werr := splitAll(data, 0)
		for _, n := range []int{1, 3, 17} {
			got, err := splitAll(data, n)
			if (err == nil) != (werr == nil) || strings.Join(got, "\x00") != strings.Join(whole, "\x00") {
				t.Fatalf("chunks of %d differ from one write:\n%q %v\n%q %v", n, got, err, whole, werr)
			}
		}
		if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
			return // a byte order mark: the Reader skips it; the server never writes one
		}
		items, ok := readStream(data)
		if !ok {
			return
		}
		// The Reader stops at the close tag; the splitter goes on, and may fail on what follows.
		if werr != nil && items[len(items)-1].kind != "close" {
			t.Fatalf("the Reader accepts the stream but the splitter fails: %v", werr)
		}
		// The splitter may make more of what follows: the unfinished rest, or bytes after the close tag, which
		// the Reader never looks at (and the server never writes).
		if len(whole) < len(items) {
			t.Fatalf("%d messages for %d items:\n%q", len(whole), len(items), whole)
		}
		for i, it := range items {
			m := []byte(whole[i])
			switch it.kind {
			case "open":
				var o struct{ XMLName xml.Name }
				if err := xml.Unmarshal(m, &o); err != nil || o.XMLName.Space != NSFraming || o.XMLName.Local != "open" {
					t.Fatalf("message %d is not an <open/>: %q (%v)", i, m, err)
				}
			case "close":
				if string(m) != closeMsg {
					t.Fatalf("message %d is not <close/>: %q", i, m)
				}
			default:
				local, ns := standalone(t, m)
				if local != it.local || ns != it.ns {
					t.Fatalf("message %d is {%s}%s alone, {%s}%s in the stream: %q", i, ns, local, it.ns, it.local, m)
				}
				if !bytes.HasPrefix(m, it.raw[:it.nameEnd]) || !bytes.HasSuffix(m, it.raw[it.nameEnd:]) {
					t.Fatalf("message %d changed more than declarations:\n%q\n%q", i, m, it.raw)
				}
				added := m[it.nameEnd : len(m)-(len(it.raw)-it.nameEnd)]
				for _, a := range bytes.Fields(added) {
					if !bytes.HasPrefix(a, []byte("xmlns")) {
						t.Fatalf("message %d: added %q", i, added)
					}
				}
			}
		}
	})
}
