package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
)

const (
	hdr    = "<?xml version='1.0'?><stream:stream to='example.org' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
	closeS = "</stream:stream>"
)

// snap is a copy of what the Reader returned for one element, safe to keep.
type snap struct {
	Raw, Local, NS           string
	To, From, Type, ID, Lang *string // nil when absent
	NameEnd, StartEnd        int
	SelfClosing              bool
	ToSpan, FromSpan         [2]int
	InnerStart, InnerEnd     int
	Inherited                []NSDecl
	hdr                      Header // the header in force, for re-parsing Raw on its own
}

func optStr(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

func snapshot(e *Element, h Header) snap {
	s := snap{
		Raw: string(e.Raw), Local: e.Local, NS: e.NS,
		To: optStr(e.To), From: optStr(e.From), Type: optStr(e.Type), ID: optStr(e.ID), Lang: optStr(e.Lang),
		NameEnd: e.NameEnd, StartEnd: e.StartEnd, SelfClosing: e.SelfClosing,
		ToSpan: e.ToSpan, FromSpan: e.FromSpan, InnerStart: e.InnerStart, InnerEnd: e.InnerEnd,
		hdr: h,
	}
	if e.Inherited != nil {
		s.Inherited = append([]NSDecl(nil), e.Inherited...)
	}
	return s
}

// result is everything a whole stream produced.
type result struct {
	Headers []Header
	Els     []snap
	Err     error // the final error: io.EOF at the close tag
}

// errKey makes errors comparable across runs: the condition and offset for *Error, else the text.
func errKey(err error) string {
	var se *Error
	if errors.As(err, &se) {
		return fmt.Sprintf("%s@%d", se.Condition, se.Offset)
	}
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// restartRule says after which elements the caller restarts the stream (SASL success).
type restartRule func(e *Element) bool

func restartAfterSASL(e *Element) bool {
	return e.NS == "urn:ietf:params:xml:ns:xmpp-sasl" && (e.Local == "response" ||
		e.Local == "auth" && bytes.Contains(e.Raw, []byte("PLAIN")))
}

// readAll reads a whole stream from src the way the c2s loop does.
func readAll(src io.Reader, lim Limits, restart restartRule) result {
	return readAllVisit(src, lim, restart, nil)
}

// readAllVisit is readAll calling visit, if not nil, with each element while it is valid.
func readAllVisit(src io.Reader, lim Limits, restart restartRule, visit func(*Element)) result {
	var res result
	r := NewReader(src, lim)
	var h Header
	needHeader := true
	for {
		if needHeader {
			var err error
			if h, err = r.Header(); err != nil {
				res.Err = err
				return res
			}
			res.Headers = append(res.Headers, h)
			needHeader = false
		}
		e, err := r.Next()
		if err != nil {
			res.Err = err
			return res
		}
		res.Els = append(res.Els, snapshot(e, h))
		if visit != nil {
			visit(e)
		}
		if restart != nil && restart(e) {
			r.Restart()
			needHeader = true
		}
	}
}

func (a result) diff(b result) string {
	if errKey(a.Err) != errKey(b.Err) {
		return fmt.Sprintf("error %s, want %s", errKey(a.Err), errKey(b.Err))
	}
	if !reflect.DeepEqual(a.Headers, b.Headers) {
		return fmt.Sprintf("headers %+v, want %+v", a.Headers, b.Headers)
	}
	if len(a.Els) != len(b.Els) {
		return fmt.Sprintf("%d elements, want %d", len(a.Els), len(b.Els))
	}
	for i := range a.Els {
		if !reflect.DeepEqual(a.Els[i], b.Els[i]) {
			return fmt.Sprintf("element %d:\n got %+v\nwant %+v", i, a.Els[i], b.Els[i])
		}
	}
	return ""
}

// chunkReader returns data in pieces of the given sizes (cycling), to exercise resuming at every state.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := c.sizes[c.i%len(c.sizes)]
	c.i++
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// splitReader returns data[:at] and then the rest.
func splitReader(data []byte, at int) io.Reader {
	return io.MultiReader(bytes.NewReader(data[:at]), bytes.NewReader(data[at:]))
}

// transcript loads a client session from testdata: the part before STARTTLS and the part after.
func transcript(t testing.TB, name string) (plain, tls []byte) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	before, after, ok := strings.Cut(string(b), "\n--- tls ---\n")
	if !ok {
		t.Fatalf("%s: no tls marker", name)
	}
	return []byte(before), []byte(strings.TrimSuffix(after, "\n"))
}

func condOf(err error) string {
	var se *Error
	if errors.As(err, &se) {
		return se.Condition
	}
	return ""
}
