package stream

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
)

func fuzzRestart(e *Element) bool {
	return restartAfterSASL(e) || e.Local == "starttls" || e.Local == "restart"
}

// FuzzReader feeds arbitrary streams to the Reader. It must not panic, must give the same result however the input
// is split into reads, and every element it returns must have sane offsets and re-parse on its own (with the
// Inherited declarations added) to the same envelope.
func FuzzReader(f *testing.F) {
	for _, name := range []string{"conversations.xml", "gajim.xml"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bytes.Replace(b, []byte("\n--- tls ---\n"), nil, 1))
	}
	for _, s := range []string{
		hdr + chatMessage + closeS,
		hdr + "<message xmlns:x='urn:x' x:a='&lt;' to='a&#x40;b' from=\"c\td\"><body><![CDATA[]]]]><x:y>é😀</x:y></body></message><restart/>" +
			"<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns:p='urn:p'><p:q><stream:x/></p:q>",
		hdr + "<stream:error><p:x xmlns:p='urn:p'/></stream:error>\n \t<presence/>",
		"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8' standalone='no' ?><stream xmlns='http://etherx.jabber.org/streams'><a/></stream>",
		hdr + "<message><body>&#65;&#x1F600;&amp;&apos;</body><!-- c --></message>",
		hdr + "<a:b xmlns:a='u' a:c='1' xml:lang='en'>]]&gt;<c d='&quot;'/></a:b>",
	} {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		"<message><body>a]]b</body><![CDATA[]]]></message>",
		"<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq> \n<r xmlns='urn:xmpp:sm:3'/>",
		"<presence xml:lang='en' to='a&amp;b' from='&#x40;'><x:y xmlns:x='u' x:z='1'/></presence></stream:stream>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// As a whole stream, and as what follows a valid header so that mutations reach stanzas quickly.
		fuzzStream(t, data)
		fuzzStream(t, append([]byte(hdr), data...))
	})
}

func fuzzStream(t *testing.T, data []byte) {
	lim := Limits{MaxElement: 2048, MaxDepth: 8, MaxAttrs: 8}
	whole := readAllVisit(bytes.NewReader(data), lim, fuzzRestart, func(e *Element) { checkChild(t, e) })
	var se *Error
	if err := whole.Err; err != io.EOF && !errors.As(err, &se) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("unexpected error %v", err)
	}
	chunked := readAll(&chunkReader{data: data, sizes: []int{1 + len(data)%5, 1, 3}}, lim, fuzzRestart)
	if d := chunked.diff(whole); d != "" {
		t.Fatalf("split reads differ: %s", d)
	}
	for _, e := range whole.Els {
		if err := checkOffsets(e); err != nil {
			t.Fatalf("%q: %v", e.Raw, err)
		}
		if err := reparse(e); err != nil {
			t.Fatalf("%q: %v", e.Raw, err)
		}
		if err := stdlibAccepts(e); err != nil {
			t.Fatalf("%q: encoding/xml rejects what the Reader accepted: %v", e.Raw, err)
		}
	}
}

func checkOffsets(e snap) error {
	raw := e.Raw
	n := len(raw)
	switch {
	case n < 3 || raw[0] != '<' || raw[n-1] != '>':
		return errors.New("not a tag")
	case e.NameEnd < 2 || e.NameEnd > e.StartEnd || e.StartEnd >= n:
		return fmt.Errorf("NameEnd %d StartEnd %d", e.NameEnd, e.StartEnd)
	case e.SelfClosing && (raw[e.StartEnd] != '/' || e.StartEnd != n-2 || e.InnerStart != e.StartEnd || e.InnerEnd != e.StartEnd):
		return fmt.Errorf("self-closing offsets %d %d %d", e.StartEnd, e.InnerStart, e.InnerEnd)
	case !e.SelfClosing && (raw[e.StartEnd] != '>' || e.InnerStart != e.StartEnd+1 || e.InnerEnd < e.InnerStart ||
		e.InnerEnd+3 > n || raw[e.InnerEnd] != '<' || raw[e.InnerEnd+1] != '/'):
		return fmt.Errorf("inner offsets %d %d %d", e.StartEnd, e.InnerStart, e.InnerEnd)
	}
	name := raw[1:e.NameEnd]
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[i+1:]
	}
	if name != e.Local {
		return fmt.Errorf("Local %q, name %q", e.Local, name)
	}
	for _, s := range []struct {
		span [2]int
		name string
		val  *string
	}{{e.ToSpan, "to", e.To}, {e.FromSpan, "from", e.From}} {
		if s.span[0] < 0 {
			if s.span != [2]int{-1, -1} || s.val != nil {
				return fmt.Errorf("%s span %v with value %v", s.name, s.span, s.val)
			}
			continue
		}
		if s.span[0] < e.NameEnd || s.span[1] > e.StartEnd || s.span[0] >= s.span[1] || s.val == nil {
			return fmt.Errorf("%s span %v", s.name, s.span)
		}
		a := strings.TrimLeft(raw[s.span[0]:s.span[1]], " \t\r\n")
		if len(a) == s.span[1]-s.span[0] || !strings.HasPrefix(a, s.name) || a[len(a)-1] != '\'' && a[len(a)-1] != '"' {
			return fmt.Errorf("%s span %q", s.name, raw[s.span[0]:s.span[1]])
		}
	}
	return nil
}

// reparse adds the Inherited declarations to the element's start tag, as a router does, and reads the result in a
// stream that declares only the stream prefix and the same default namespace. It must give the same element.
func reparse(e snap) error {
	var b []byte
	b = append(b, "<stream:stream xmlns:stream='"+NSStream+"'"...)
	if e.hdr.NS != "" {
		b = append(b, " xmlns='"...)
		b = append(Escape(b, []byte(e.hdr.NS)), '\'')
	}
	b = append(b, '>')
	at := len(b)
	b = append(b, e.Raw[:e.NameEnd]...)
	for _, d := range e.Inherited {
		b = append(b, " xmlns:"+d.Prefix+"='"...)
		b = append(Escape(b, []byte(d.URI)), '\'')
	}
	delta := len(b) - at - e.NameEnd
	b = append(b, e.Raw[e.NameEnd:]...)
	b = append(b, closeS...)
	res := readAll(bytes.NewReader(b), Limits{MaxElement: 1 << 20, MaxDepth: 8, MaxAttrs: 1000}, nil)
	if res.Err != io.EOF || len(res.Els) != 1 {
		return fmt.Errorf("re-parse: %v after %d elements", res.Err, len(res.Els))
	}
	g := res.Els[0]
	shift := func(s [2]int) [2]int {
		if s[0] < 0 {
			return s
		}
		return [2]int{s[0] + delta, s[1] + delta}
	}
	want := e
	want.Raw, want.hdr, want.Inherited = g.Raw, g.hdr, nil
	want.StartEnd += delta
	want.InnerStart += delta
	want.InnerEnd += delta
	want.ToSpan, want.FromSpan = shift(e.ToSpan), shift(e.FromSpan)
	if !reflect.DeepEqual(g, want) {
		return fmt.Errorf("re-parse:\n got %+v\nwant %+v", g, want)
	}
	return nil
}

// stdlibAccepts cross-checks well-formedness with encoding/xml for ASCII elements (its name tables predate the
// fifth edition of XML 1.0 that the Reader follows).
func stdlibAccepts(e snap) error {
	for i := 0; i < len(e.Raw); i++ {
		if e.Raw[i] >= 0x80 {
			return nil
		}
	}
	d := xml.NewDecoder(strings.NewReader(e.Raw))
	for {
		_, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// checkChild looks for children of e under a few names, including the name of its first child, and checks what
// Child returns.
func checkChild(t *testing.T, e *Element) {
	names := []string{"body", e.Local}
	if in := e.Raw[e.InnerStart:e.InnerEnd]; len(in) > 1 && in[0] == '<' {
		n := 1
		for n < len(in) && !isSpace(in[n]) && in[n] != '>' && in[n] != '/' {
			n++
		}
		name := string(in[1:n])
		if i := strings.IndexByte(name, ':'); i >= 0 {
			name = name[i+1:]
		}
		names = append(names, name)
	}
	for _, local := range names {
		for _, ns := range []string{e.NS, "jabber:client", "", "urn:x", e.hdrNS} {
			start, end, ok := e.Child(local, ns)
			if !ok {
				continue
			}
			if start < e.InnerStart || end > e.InnerEnd || start >= end || e.Raw[start] != '<' || e.Raw[end-1] != '>' {
				t.Fatalf("Child(%q, %q) of %q = %d, %d", local, ns, e.Raw, start, end)
			}
			child := string(e.Raw[start:end])
			tag := child[1:]
			if i := strings.IndexAny(tag, " \t\r\n/>"); i >= 0 {
				tag = tag[:i]
			}
			if tag != local && !strings.HasSuffix(tag, ":"+local) {
				t.Fatalf("Child(%q, %q) of %q = %q", local, ns, e.Raw, child)
			}
		}
	}
}
