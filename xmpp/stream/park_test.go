package stream

import (
	"io"
	"strings"
	"testing"
)

// chunks is a source that returns one string per Read.
type chunks struct{ parts []string }

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	c.parts[0] = c.parts[0][n:]
	if c.parts[0] == "" {
		c.parts = c.parts[1:]
	}
	return n, nil
}

func TestPark(t *testing.T) {
	src := &chunks{parts: []string{
		"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
		"<message to='a@b'><body>one</body></message>",
		"<message to='a@b'><body>t", // a partial element is buffered when the reader parks
		"wo</body></message>",
		"<message to='a@b'><body>three</body></message>" + strings.Repeat(" ", 10),
	}}
	r := NewReader(src, Limits{})
	if _, err := r.Header(); err != nil {
		t.Fatal(err)
	}
	el, err := r.Next()
	if err != nil || !strings.Contains(string(el.Raw), "one") {
		t.Fatalf("first element: %v %q", err, el.Raw)
	}
	r.Park()
	if r.buf != nil || r.small != nil || r.large != nil {
		t.Fatalf("parked with nothing buffered, the reader still holds a buffer (%d bytes)", len(r.buf))
	}
	if el.Raw != nil {
		t.Fatal("Park kept the last element's bytes referenced")
	}
	// Read the partial element by asking for the next one through a source that stops after it.
	if err := r.fill(); err != nil {
		t.Fatal(err)
	}
	if r.Buffered() == 0 {
		t.Fatal("nothing buffered after a read")
	}
	r.Park()
	if r.buf == nil {
		t.Fatal("Park dropped a buffer holding an unfinished element")
	}
	for _, want := range []string{"two", "three"} {
		el, err := r.Next()
		if err != nil || !strings.Contains(string(el.Raw), want) {
			t.Fatalf("after Park: %v %q, want %q", err, el.Raw, want)
		}
		r.Park()
	}
}

// TestParkAfterLarge: a reader that grew for a large element gives both buffers back when it parks.
func TestParkAfterLarge(t *testing.T) {
	big := "<message to='a@b'><body>" + strings.Repeat("x", 8000) + "</body></message>"
	src := &chunks{parts: []string{"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>", big}}
	r := NewReader(src, Limits{})
	if _, err := r.Header(); err != nil {
		t.Fatal(err)
	}
	el, err := r.Next()
	if err != nil || len(el.Raw) != len(big) {
		t.Fatalf("large element: %v, %d bytes", err, len(el.Raw))
	}
	r.Park()
	if r.buf != nil || r.small != nil || r.large != nil {
		t.Fatal("parked reader still holds a buffer after a large element")
	}
	if _, err := r.Next(); err == nil {
		t.Fatal("Next after the source ended returned an element")
	}
}

// noRead fails the test if it is read: TryNext must not read.
type noRead struct{ t *testing.T }

func (n noRead) Read([]byte) (int, error) {
	n.t.Fatal("TryNext read from the source")
	return 0, io.EOF
}

func TestTryNext(t *testing.T) {
	src := &chunks{parts: []string{
		"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
		"<message><body>1</body></message><message><body>2</body></message><message><bo",
		"dy>3</body></message>",
	}}
	r := NewReader(src, Limits{})
	if _, err := r.Header(); err != nil {
		t.Fatal(err)
	}
	el, err := r.Next() // reads the second chunk, returns 1
	if err != nil || !strings.Contains(string(el.Raw), ">1<") {
		t.Fatalf("Next: %v %q", err, el.Raw)
	}
	r.src = noRead{t}
	el, ok, err := r.TryNext()
	if err != nil || !ok || !strings.Contains(string(el.Raw), ">2<") {
		t.Fatalf("TryNext with a complete element buffered: %v %v %q", ok, err, el.Raw)
	}
	if _, ok, err := r.TryNext(); ok || err != nil {
		t.Fatalf("TryNext with half an element buffered: ok=%v err=%v", ok, err)
	}
	r.src = src
	el, err = r.Next() // continues the half element
	if err != nil || string(el.Raw) != "<message><body>3</body></message>" {
		t.Fatalf("Next after TryNext: %v %q", err, el.Raw)
	}
}
