// Package stream frames an XMPP stream (RFC 6120 section 4) into top-level elements without building a tree: it
// validates well-formedness of the restricted XML XMPP allows and reads only the envelope of each stanza.
//
// A Reader scans every byte once, keeping its state between reads, and hands out each top-level element as the bytes
// the peer sent (a slice of its read buffer) plus the envelope: name, namespace, to, from, type, id, xml:lang and
// offsets for rewriting. Payloads are validated (tags, attributes, references, UTF-8, namespaces) but not decoded.
package stream

import (
	"fmt"
	"io"
)

// Defaults for zero fields of Limits.
const (
	DefaultMaxElement = 262144
	DefaultMaxDepth   = 64
	DefaultMaxAttrs   = 64
	// DefaultBuffer is the size of the read buffer of an idle reader. The buffer grows for large elements, up to
	// MaxElement, and drops back to this size once it is empty, so idle sessions do not pin large buffers.
	DefaultBuffer = 1024
)

// Limits bound what one peer can make the Reader hold. Exceeding a limit is a policy-violation.
type Limits struct {
	MaxElement int // max bytes of one top-level element (and of the stream header); default 262144 when 0
	MaxDepth   int // max nesting depth inside a top-level element, which itself is depth 1; default 64 when 0
	MaxAttrs   int // max attributes per element; default 64 when 0
	Buffer     int // read buffer size while idle; default DefaultBuffer when 0
}

// NSDecl is a namespace prefix declaration.
type NSDecl struct{ Prefix, URI string }

// Header is the stream header the peer sent.
type Header struct {
	To, From, ID, Version, Lang string
	NS                          string // the default namespace: jabber:client, jabber:server, ...
	Prefix                      string // the prefix of the stream element, usually "stream"
}

// Element is one top-level (depth 1) element of the stream. It and its slices are valid only until the next call to
// a method of the Reader that returned it.
type Element struct {
	Raw   []byte // the complete element exactly as received, start tag to end tag or the self-closing tag
	Local string // local name, such as "message", "iq", "presence", "starttls", "auth", "r", "a", "enable"
	// NS is the element's namespace: its own xmlns, else its prefix's binding, else the stream's default namespace.
	// Well-known namespaces are interned, so the common case does not allocate.
	NS string
	// To, From, Type, ID and Lang are the envelope attributes with references decoded and whitespace normalized;
	// nil when absent. Without references they are slices of Raw.
	To, From, Type, ID, Lang []byte
	NameEnd                  int  // index just after the element name in the start tag ("<message" -> 8)
	StartEnd                 int  // index of the '>' ending the start tag, or of the '/' of a self-closing tag
	SelfClosing              bool // the element is one self-closing tag
	// ToSpan and FromSpan are the [start,end) offsets of the to and from attributes including their leading
	// whitespace, such as ` from='a@b'`; {-1,-1} when absent.
	ToSpan, FromSpan [2]int
	// InnerStart and InnerEnd delimit the content between start and end tags. Both are StartEnd when SelfClosing.
	InnerStart, InnerEnd int
	// Inherited lists the prefixes the element uses that were declared only on the stream header. Whoever forwards
	// Raw outside this stream adds these declarations to its start tag. Usually nil.
	Inherited []NSDecl

	hdr   []NSDecl // the stream header's declarations, for Child
	hdrNS string   // the stream's default namespace
}

// Reader frames a stream. It is not safe for concurrent use.
type Reader struct {
	src  io.Reader
	rerr error // a read error that came with data, returned at the next read
	err  error // final: an *Error, or io.EOF after the stream close tag

	maxEl, maxDepth, maxAttrs, idle int

	buf    []byte
	large  *[]byte // buf, when it is a large buffer from the pool
	small  []byte  // the small buffer, kept while buf is a large one
	base   int64   // stream offset of buf[0]
	start  int     // start of the unit being scanned (element, header, XML declaration)
	pos    int     // scan position; buf[start:pos] has been scanned
	end    int     // end of buffered data
	elEnd  int     // end of the last element returned, while haveEl
	haveEl bool

	// Scanner state. Offsets are relative to start so that compacting the buffer keeps them valid.
	st, ret    state // ret: where to go after a reference
	hdrDone    bool
	declOK     bool // an XML declaration may still come
	inDecl     bool // the tag being scanned is the XML declaration
	needStart  bool // the next name character must be a NameStartChar
	sawSpace   bool // whitespace since the last attribute value
	quote      byte
	brackets   uint8 // consecutive ']' seen in text or CDATA
	colon      int   // offset of the colon in the name being scanned, -1 if none
	k          int   // bytes matched of a fixed string or of an end tag's name
	tagName    int
	tagNameEnd int
	tagColon   int
	slash      int
	tokEnd     int // end of the previous token inside a start tag: where an attribute's leading space begins
	ltPos      int // the '<' of the tag being scanned
	entStart   int
	entVal     rune
	entDigits  int

	attrs      []attr    // attributes of the start tag being scanned
	open       []openTag // open elements inside the current top-level element
	ns         []binding // declarations made inside the current top-level element
	hdr        []NSDecl  // declarations made on the stream header; Prefix "" is the default namespace
	hdrNS      string
	streamName []byte // qualified name of the stream element, for the close tag
	scratch    []byte // decoded attribute values of the current element
	inh        []NSDecl
	env        [5]ref // to, from, type, id, xml:lang of the current top-level element
	lastNS     string // caches for names that are not interned
	lastLocal  string
	header     Header
	el         Element
}

// NewReader returns a Reader of the stream src sends. Zero fields of lim take their defaults.
func NewReader(src io.Reader, lim Limits) *Reader {
	r := &Reader{src: src, maxEl: lim.MaxElement, maxDepth: lim.MaxDepth, maxAttrs: lim.MaxAttrs, idle: lim.Buffer}
	if r.maxEl <= 0 {
		r.maxEl = DefaultMaxElement
	}
	r.maxEl = min(r.maxEl, 1<<30) // offsets inside an element are int32
	if r.maxDepth <= 0 {
		r.maxDepth = DefaultMaxDepth
	}
	if r.maxAttrs <= 0 {
		r.maxAttrs = DefaultMaxAttrs
	}
	if r.idle <= 0 {
		r.idle = DefaultBuffer
	}
	// No buffer yet: the first read takes one from the pool (see Park).
	r.st = stProlog
	r.declOK = true
	return r
}

// SetSource replaces the underlying reader, after STARTTLS. It returns ErrBufferedData, and keeps the old source, if
// anything other than whitespace was buffered beyond the last element: pipelining before TLS is an attack and the
// caller closes the connection. Buffered whitespace is dropped.
func (r *Reader) SetSource(src io.Reader) error {
	r.discard()
	for _, c := range r.buf[r.start:r.end] {
		if !isSpace(c) {
			return ErrBufferedData
		}
	}
	r.start = r.end
	if len(r.buf) > r.idle {
		r.shrink()
	}
	r.pos = r.start
	r.src, r.rerr = src, nil
	return nil
}

// Restart forgets the stream header and its namespace declarations so that the next call must be Header, as after
// SASL success (RFC 6120 section 4.3.3). Buffered bytes are kept: the peer may have sent the new header already.
func (r *Reader) Restart() {
	r.discard()
	r.pos = r.start
	r.st = stProlog
	r.hdrDone, r.declOK, r.inDecl = false, true, false
	r.hdr, r.hdrNS = r.hdr[:0], ""
	r.open, r.ns, r.attrs = r.open[:0], r.ns[:0], r.attrs[:0]
	if r.err == io.EOF {
		r.err = nil
	}
}

// Buffered returns how many bytes are buffered and not yet returned as part of the header or an element.
func (r *Reader) Buffered() int {
	if r.haveEl {
		return r.end - r.elEnd
	}
	return r.end - r.start
}

// Header reads an optional XML declaration (version 1.0 and encoding UTF-8 only) and the stream open tag. It must be
// the first call, and the first after Restart.
func (r *Reader) Header() (Header, error) {
	if r.err != nil {
		return Header{}, r.err
	}
	if r.hdrDone {
		return Header{}, errHeaderTwice
	}
	r.discard()
	for {
		ev, err := r.scan()
		if err != nil {
			r.err = err
			return Header{}, err
		}
		if ev == evHeader {
			r.start = r.pos
			return r.header, nil
		}
		if err := r.fill(); err != nil {
			return Header{}, err
		}
	}
}

// Next returns the next top-level element, skipping whitespace between elements. At the stream close tag it returns
// io.EOF; if the peer's data ends before that, it returns an error that wraps io.ErrUnexpectedEOF. Errors of the
// source are returned wrapped; after a timeout Next may be called again and continues where it stopped. The element
// and its slices are valid until the next call to a method of r.
func (r *Reader) Next() (*Element, error) {
	if r.err != nil {
		return nil, r.err
	}
	if !r.hdrDone {
		return nil, errNoHeader
	}
	r.discard()
	for {
		ev, err := r.scan()
		if err != nil {
			r.err = err
			return nil, err
		}
		switch ev {
		case evElement:
			return r.finish(), nil
		case evClose:
			r.start = r.pos
			r.err = io.EOF
			return nil, io.EOF
		}
		if err := r.fill(); err != nil {
			return nil, err
		}
	}
}

// TryNext returns the next top-level element if it is complete among the bytes already read, without reading
// more: ok is false when it would have to wait for the source. A later Next continues where it stopped.
func (r *Reader) TryNext() (el *Element, ok bool, err error) {
	if r.err != nil {
		return nil, false, r.err
	}
	if !r.hdrDone {
		return nil, false, errNoHeader
	}
	r.discard()
	ev, err := r.scan()
	if err != nil {
		r.err = err
		return nil, false, err
	}
	switch ev {
	case evElement:
		return r.finish(), true, nil
	case evClose:
		r.start = r.pos
		r.err = io.EOF
		return nil, false, io.EOF
	}
	return nil, false, nil
}

// discard drops the element returned last.
func (r *Reader) discard() {
	if !r.haveEl {
		return
	}
	r.haveEl = false
	r.start = r.elEnd
	// Clear every slice into the buffer: an idle Reader must not keep a large buffer alive through them after
	// handing it back to the pool.
	e := &r.el
	e.Raw, e.To, e.From, e.Type, e.ID, e.Lang, e.Inherited = nil, nil, nil, nil, nil, nil, nil
}

// finish fills in the parts of r.el that point into the buffer, now that the element is complete.
func (r *Reader) finish() *Element {
	e := &r.el
	raw := r.buf[r.start:r.pos:r.pos]
	e.Raw = raw
	e.To = r.envBytes(envTo, raw)
	e.From = r.envBytes(envFrom, raw)
	e.Type = r.envBytes(envType, raw)
	e.ID = r.envBytes(envID, raw)
	e.Lang = r.envBytes(envLang, raw)
	e.Inherited = nil
	if len(r.inh) > 0 {
		e.Inherited = r.inh
	}
	e.hdr, e.hdrNS = r.hdr, r.hdrNS
	r.elEnd, r.haveEl = r.pos, true
	return e
}

func (r *Reader) envBytes(i int, raw []byte) []byte {
	f := r.env[i]
	switch f.where {
	case inRaw:
		return raw[f.off:f.end:f.end]
	case inScratch:
		return r.scratch[f.off:f.end:f.end]
	}
	return nil
}

// fill reads more bytes from the source, making room first.
func (r *Reader) fill() error {
	if err := r.rerr; err != nil {
		r.rerr = nil
		return r.readErr(err)
	}
	if r.start == r.end {
		r.trim()
	}
	if r.buf == nil {
		r.unpark()
	}
	switch {
	case len(r.buf) > r.idle && r.end-r.start <= r.idle/2:
		// A large element has been returned and little or nothing of the next is here: go back to the small
		// buffer before waiting, so that an idle session does not pin the large one.
		r.shrink()
	case r.start == r.end:
		r.base += int64(r.end)
		r.start, r.pos, r.end = 0, 0, 0
	case r.end == len(r.buf) && r.start > 0:
		n := copy(r.buf, r.buf[r.start:r.end])
		r.base += int64(r.start)
		r.pos -= r.start
		r.start, r.end = 0, n
	case r.end == len(r.buf):
		// The unit fills the buffer: grow, up to what the limit can require. scan reports a policy-violation
		// before the unit could need more.
		if !r.grow() {
			return r.fail(PolicyViolation, "element too large", r.end)
		}
	}
	for range 100 {
		n, err := r.src.Read(r.buf[r.end:])
		if n > 0 {
			r.end += n
			r.rerr = err
			return nil
		}
		if err != nil {
			return r.readErr(err)
		}
	}
	return r.readErr(io.ErrNoProgress)
}

// trim drops the scanner's stacks when an unusual element left them large, so that an idle session keeps only small
// ones. It is called between elements, when they are empty.
func (r *Reader) trim() {
	if cap(r.attrs) > 16 {
		r.attrs = nil
	}
	if cap(r.open) > 16 {
		r.open = nil
	}
	if cap(r.ns) > 16 {
		r.ns = nil
	}
	if cap(r.inh) > 8 {
		r.inh = nil
	}
	if cap(r.scratch) > 1024 {
		r.scratch = nil
	}
}

func (r *Reader) readErr(err error) error {
	if err == io.EOF {
		// Only the stream close tag ends a stream properly.
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("stream: %w", err)
}

func (r *Reader) fail(cond, reason string, p int) *Error {
	return &Error{Condition: cond, Reason: reason, Offset: r.base + int64(p)}
}
