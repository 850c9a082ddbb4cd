package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

const sampleStream = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='x>1' version='1.0'>` +
	`<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>` +
	"\n \t" +
	`<message from='a@localhost/r' to="b@localhost" type='chat' id='m>1'><body>pb:run:7:123</body><!-- <body>no</body> --></message>` +
	`<presence from='a@localhost/r'/>` +
	`<iq type='result' id='x'><q><![CDATA[</iq><a>]]></q></iq>` +
	` ` +
	`</stream:stream>`

// events reads every event of a stream, copying element bytes.
func events(t *testing.T, r io.Reader, size int) []string {
	t.Helper()
	sr := newStreamReader(r, size, 1<<16)
	var out []string
	for {
		kind, el, err := sr.next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("next: %v (after %q)", err, out)
		}
		switch kind {
		case evOpen:
			out = append(out, "OPEN "+string(elemName(el)))
		case evClose:
			out = append(out, "CLOSE")
		default:
			out = append(out, string(el))
		}
	}
}

func TestScanStream(t *testing.T) {
	got := events(t, strings.NewReader(sampleStream), 4096)
	want := []string{
		"OPEN stream:stream",
		`<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`,
		`<message from='a@localhost/r' to="b@localhost" type='chat' id='m>1'><body>pb:run:7:123</body><!-- <body>no</body> --></message>`,
		`<presence from='a@localhost/r'/>`,
		`<iq type='result' id='x'><q><![CDATA[</iq><a>]]></q></iq>`,
		"CLOSE",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// oneByteReader returns one byte per Read, the worst case for a scanner that must resume.
type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

// TestScanSplitAtEveryOffset feeds the stream in two reads split at every offset, and one byte at a time,
// and with a buffer smaller than one element: the events must not change.
func TestScanSplitAtEveryOffset(t *testing.T) {
	want := strings.Join(events(t, strings.NewReader(sampleStream), 4096), "\n")
	for i := 0; i <= len(sampleStream); i++ {
		r := io.MultiReader(strings.NewReader(sampleStream[:i]), strings.NewReader(sampleStream[i:]))
		if got := strings.Join(events(t, r, 4096), "\n"); got != want {
			t.Fatalf("split at %d:\n%s\nwant:\n%s", i, got, want)
		}
	}
	if got := strings.Join(events(t, &oneByteReader{[]byte(sampleStream)}, 16), "\n"); got != want {
		t.Fatalf("one byte at a time, 16-byte buffer:\n%s\nwant:\n%s", got, want)
	}
}

func TestScanTooLarge(t *testing.T) {
	s := `<stream:stream>` + `<message><body>` + strings.Repeat("x", 100) + `</body></message>`
	sr := newStreamReader(strings.NewReader(s), 16, 64)
	if _, _, err := sr.next(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sr.next(); !errors.Is(err, errTooLarge) {
		t.Fatalf("err = %v, want errTooLarge", err)
	}
}

func TestScanRejects(t *testing.T) {
	for _, s := range []string{
		`hello`,
		`<stream:stream>text`,
		`<stream:stream><!DOCTYPE x>`,
		`<stream:stream/>`,
	} {
		sr := newStreamReader(strings.NewReader(s), 64, 1024)
		var err error
		for i := 0; i < 3 && err == nil; i++ {
			_, _, err = sr.next()
		}
		if err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%q: err = %v, want a scan error", s, err)
		}
	}
}

func TestAttrAndChildText(t *testing.T) {
	el := []byte(`<message xmlns:to='no' to = "b@localhost" type='chat' id='m>1'><body>pb:r:1:2</body><bodyx>no</bodyx></message>`)
	if got := string(attr(el, "to")); got != "b@localhost" {
		t.Errorf("to = %q", got)
	}
	if got := string(attr(el, "id")); got != "m>1" {
		t.Errorf("id = %q", got)
	}
	if got := attr(el, "from"); got != nil {
		t.Errorf("from = %q, want nil", got)
	}
	if got := string(childText(el, tagBody)); got != "pb:r:1:2" {
		t.Errorf("body = %q", got)
	}
	if got := childText([]byte(`<message><bodyx>no</bodyx></message>`), tagBody); got != nil {
		t.Errorf("bodyx matched body: %q", got)
	}
	if got := string(elemName([]byte(`<stream:features>`))); got != "stream:features" {
		t.Errorf("name = %q", got)
	}
}

func TestBodyRoundTrip(t *testing.T) {
	b := appendBody(nil, "abc", 42, 123456789)
	body := childText(append(append([]byte("<message>"), b...), "</message>"...), tagBody)
	run, seq, due, ok := parseBody(body)
	if !ok || string(run) != "abc" || seq != 42 || due != 123456789 {
		t.Fatalf("parseBody(%q) = %q %d %d %v", body, run, seq, due, ok)
	}
	for _, bad := range []string{"", "pb:", "pb:a:1", "pb:a:x:1", "hello", "pb:a:1:99999999999999999999"} {
		if _, _, _, ok := parseBody([]byte(bad)); ok {
			t.Errorf("parseBody(%q) ok", bad)
		}
	}
}

// FuzzScan checks that the scanner never panics and that splitting the input differently never changes
// what it finds.
func FuzzScan(f *testing.F) {
	f.Add([]byte(sampleStream), 7)
	f.Add([]byte(`<stream:stream><a b='>'/><c><![CDATA[<]]></c></stream:stream>`), 3)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		collect := func(r io.Reader) (out [][]byte, failed bool) {
			sr := newStreamReader(r, 32, 1<<12)
			for i := 0; i < 1000; i++ {
				kind, el, err := sr.next()
				if err != nil {
					return out, !errors.Is(err, io.EOF)
				}
				out = append(out, append([]byte{byte(kind)}, el...))
			}
			return out, false
		}
		whole, wholeFailed := collect(bytes.NewReader(data))
		if split < 0 {
			split = -split
		}
		if len(data) > 0 {
			split %= len(data)
		} else {
			split = 0
		}
		parts, partsFailed := collect(io.MultiReader(bytes.NewReader(data[:split]), bytes.NewReader(data[split:])))
		if wholeFailed != partsFailed || len(whole) != len(parts) {
			t.Fatalf("split at %d changed the result: %d events (failed %v) vs %d (failed %v)", split, len(whole), wholeFailed, len(parts), partsFailed)
		}
		for i := range whole {
			if !bytes.Equal(whole[i], parts[i]) {
				t.Fatalf("split at %d changed event %d: %q vs %q", split, i, whole[i], parts[i])
			}
		}
	})
}
