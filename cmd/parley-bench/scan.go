package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// eventKind says what streamReader.next found.
type eventKind uint8

const (
	// evElement is a complete top-level element (a stanza or a stream-level element such as features).
	evElement eventKind = iota + 1
	// evOpen is the server's stream header (<stream:stream ...>).
	evOpen
	// evClose is the server's </stream:stream>.
	evClose
)

// errTooLarge is returned when one top-level element does not fit in the reader's maximum buffer.
var errTooLarge = errors.New("scan: element larger than the read buffer limit")

// streamReader cuts a server's XML stream into top-level elements without parsing them: it only tracks
// tag depth (honouring quoted attribute values, comments, CDATA and processing instructions), so that
// the hot path costs a few byte searches per stanza. The slice that next returns is valid until the
// following call.
type streamReader struct {
	r        io.Reader
	buf      []byte
	start    int // first unread byte
	end      int // end of buffered data
	inStream bool
	max      int
}

func newStreamReader(r io.Reader, size, max int) *streamReader {
	return &streamReader{r: r, buf: make([]byte, size), max: max}
}

// reset points the reader at a new transport (after STARTTLS) or a restarted stream (after SASL); it keeps
// the buffer but drops whatever was buffered, which is correct because the server sends nothing after
// <proceed/> or <success/> until the client speaks.
func (s *streamReader) reset(r io.Reader) {
	s.r = r
	s.start, s.end = 0, 0
	s.inStream = false
}

// next returns the next event and, for evElement and evOpen, its bytes.
func (s *streamReader) next() (eventKind, []byte, error) {
	for {
		kind, n, skip, err := scanTop(s.buf[s.start:s.end], s.inStream)
		if err != nil {
			return 0, nil, err
		}
		if kind != 0 {
			b := s.buf[s.start+skip : s.start+n]
			s.start += n
			switch kind {
			case evOpen:
				s.inStream = true
			case evClose:
				s.inStream = false
			}
			return kind, b, nil
		}
		// Whitespace (keepalives) or an XML declaration already consumed: drop it.
		s.start += skip
		if err := s.fill(); err != nil {
			return 0, nil, err
		}
	}
}

// fill reads more data, compacting or growing the buffer when it is full.
func (s *streamReader) fill() error {
	if s.start == s.end {
		s.start, s.end = 0, 0
	}
	if s.end == len(s.buf) {
		if s.start > 0 {
			s.end = copy(s.buf, s.buf[s.start:s.end])
			s.start = 0
		} else {
			if len(s.buf) >= s.max {
				return errTooLarge
			}
			nb := make([]byte, min(2*len(s.buf), s.max))
			copy(nb, s.buf[:s.end])
			s.buf = nb
		}
	}
	n, err := s.r.Read(s.buf[s.end:])
	s.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// scanTop looks for one complete event at the start of b. It returns kind 0 when b holds only part of one;
// skip counts leading bytes (whitespace, XML declaration) that are not part of the event (with kind 0: that
// may be dropped), n the bytes up to the end of the event.
func scanTop(b []byte, inStream bool) (kind eventKind, n, skip int, err error) {
	i := 0
	for {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i+1 >= len(b) {
			return 0, 0, i, nil
		}
		if b[i] != '<' {
			if !inStream {
				return 0, 0, 0, fmt.Errorf("scan: text before the stream header: %q", clip(b[i:]))
			}
			// Text directly inside <stream:stream> is not allowed; treat it as a protocol error.
			return 0, 0, 0, fmt.Errorf("scan: text at stream level: %q", clip(b[i:]))
		}
		if b[i+1] == '?' {
			// XML declaration or processing instruction at stream level: skip it.
			e := bytes.Index(b[i:], []byte("?>"))
			if e < 0 {
				return 0, 0, i, nil
			}
			i += e + 2
			continue
		}
		break
	}
	skip = i
	if !inStream {
		// The first start tag is the stream header; it stays open.
		if b[i+1] == '/' || b[i+1] == '!' {
			return 0, 0, 0, fmt.Errorf("scan: expected a stream header, got %q", clip(b[i:]))
		}
		e, closed, ok := tagEnd(b, i)
		if !ok {
			return 0, 0, skip, nil
		}
		if closed {
			return 0, 0, 0, errors.New("scan: empty stream header")
		}
		return evOpen, e, skip, nil
	}
	if b[i+1] == '/' {
		e := bytes.IndexByte(b[i:], '>')
		if e < 0 {
			return 0, 0, skip, nil
		}
		return evClose, i + e + 1, skip, nil
	}
	depth := 0
	j := i
	for {
		if j >= len(b) {
			return 0, 0, skip, nil
		}
		if b[j] != '<' {
			k := bytes.IndexByte(b[j:], '<')
			if k < 0 {
				return 0, 0, skip, nil
			}
			j += k
		}
		if j+1 >= len(b) {
			return 0, 0, skip, nil
		}
		switch b[j+1] {
		case '/':
			k := bytes.IndexByte(b[j:], '>')
			if k < 0 {
				return 0, 0, skip, nil
			}
			j += k + 1
			depth--
			if depth == 0 {
				return evElement, j, skip, nil
			}
			if depth < 0 {
				return 0, 0, 0, errors.New("scan: unbalanced end tag")
			}
		case '!':
			var term []byte
			switch {
			case bytes.HasPrefix(b[j:], []byte("<!--")):
				term = []byte("-->")
			case bytes.HasPrefix(b[j:], []byte("<![CDATA[")):
				term = []byte("]]>")
			case len(b)-j < 9 && (bytes.HasPrefix([]byte("<![CDATA["), b[j:]) || bytes.HasPrefix([]byte("<!--"), b[j:])):
				return 0, 0, skip, nil
			default:
				return 0, 0, 0, fmt.Errorf("scan: markup not allowed in a stream: %q", clip(b[j:]))
			}
			k := bytes.Index(b[j+2:], term)
			if k < 0 {
				return 0, 0, skip, nil
			}
			j += 2 + k + len(term)
		case '?':
			k := bytes.Index(b[j:], []byte("?>"))
			if k < 0 {
				return 0, 0, skip, nil
			}
			j += k + 2
		default:
			e, closed, ok := tagEnd(b, j)
			if !ok {
				return 0, 0, skip, nil
			}
			j = e
			if !closed {
				depth++
			} else if depth == 0 {
				return evElement, j, skip, nil
			}
		}
	}
}

// tagEnd finds the end of the start tag at b[i] ('<'), skipping '>' inside quoted attribute values. It
// returns the index after '>' and whether the tag closes itself.
func tagEnd(b []byte, i int) (end int, selfClosing, ok bool) {
	var quote byte
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return j + 1, b[j-1] == '/', true
		}
	}
	return 0, false, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// elemName returns the qualified name of the element that el starts with ("message", "stream:features").
func elemName(el []byte) []byte {
	if len(el) < 2 || el[0] != '<' {
		return nil
	}
	for j := 1; j < len(el); j++ {
		switch el[j] {
		case ' ', '\t', '\r', '\n', '/', '>':
			return el[1:j]
		}
	}
	return nil
}

// attr returns the raw value of attribute name in el's start tag (entities are left escaped: the values
// the benchmark compares, JIDs and ids it made itself, contain none).
func attr(el []byte, name string) []byte {
	end, _, ok := tagEnd(el, 0)
	if !ok {
		return nil
	}
	tag := el[:end]
	for i := 0; ; {
		k := bytes.Index(tag[i:], []byte(name))
		if k < 0 {
			return nil
		}
		p := i + k
		i = p + len(name)
		if p == 0 || !isSpace(tag[p-1]) {
			continue
		}
		q := i
		for q < len(tag) && isSpace(tag[q]) {
			q++
		}
		if q >= len(tag) || tag[q] != '=' {
			continue
		}
		q++
		for q < len(tag) && isSpace(tag[q]) {
			q++
		}
		if q >= len(tag) || (tag[q] != '\'' && tag[q] != '"') {
			return nil
		}
		e := bytes.IndexByte(tag[q+1:], tag[q])
		if e < 0 {
			return nil
		}
		return tag[q+1 : q+1+e]
	}
}

// tagPattern holds the byte patterns childText looks for, built once per element name.
type tagPattern struct{ open, close []byte }

func tagPat(name string) tagPattern {
	return tagPattern{open: []byte("<" + name), close: []byte("</" + name)}
}

var tagBody = tagPat("body")

// childText returns the text of the first <name>...</name> inside el (any depth), or nil.
func childText(el []byte, t tagPattern) []byte {
	for i := 1; i < len(el); {
		k := bytes.Index(el[i:], t.open)
		if k < 0 {
			return nil
		}
		p := i + k + len(t.open)
		i = p
		if p >= len(el) {
			return nil
		}
		switch el[p] {
		case '>', '/', ' ', '\t', '\r', '\n':
		default:
			continue // a longer name such as <bodyx>
		}
		e, closed, ok := tagEnd(el, p-len(t.open))
		if !ok {
			return nil
		}
		if closed {
			return []byte{}
		}
		c := bytes.Index(el[e:], t.close)
		if c < 0 {
			return nil
		}
		return el[e : e+c]
	}
	return nil
}
