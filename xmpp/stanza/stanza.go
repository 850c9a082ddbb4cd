// Package stanza holds the server's view of a routed XMPP stanza (RFC 6120 section 8): its envelope, parsed once,
// and its bytes, forwarded as the sender wrote them (with the server's from stamped in).
//
// Nothing on the routing path unmarshals a stanza into a tree; modules that need a payload look at Payload or
// Raw. Builders here produce the stanzas the server itself writes: error replies and IQ results.
package stanza

import (
	"bytes"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/stream"
)

// Kind is the stanza kind: message, presence or iq.
type Kind uint8

// Stanza kinds.
const (
	Message Kind = iota + 1
	Presence
	IQ
)

// String returns the element name of the kind.
func (k Kind) String() string {
	switch k {
	case Message:
		return "message"
	case Presence:
		return "presence"
	case IQ:
		return "iq"
	}
	return "unknown"
}

// KindOf maps an element local name to its Kind, 0 if it is not a stanza.
func KindOf(local string) Kind {
	switch local {
	case "message":
		return Message
	case "presence":
		return Presence
	case "iq":
		return IQ
	}
	return 0
}

// Stanza is one stanza on its way through the server. Raw is owned by the stanza and never changed in place:
// edits build a new slice, so a Stanza may be queued to several sessions at once.
type Stanza struct {
	Kind Kind
	Type string // the type attribute; "" for normal messages and available presence
	ID   string
	From jid.JID
	To   jid.JID // zero when the stanza had no to (addressed to the sender's own account)
	Lang string

	Raw []byte // the whole element

	// InnerStart and InnerEnd delimit the element's content in Raw (equal for a self-closing element).
	InnerStart, InnerEnd int
}

// Payload returns the content between the start and end tag.
func (s *Stanza) Payload() []byte { return s.Raw[s.InnerStart:s.InnerEnd] }

// Is reports whether the stanza has kind k and type typ.
func (s *Stanza) Is(k Kind, typ string) bool { return s.Kind == k && s.Type == typ }

// IsIQRequest reports whether s is an iq of type get or set, which must be answered.
func (s *Stanza) IsIQRequest() bool { return s.Kind == IQ && (s.Type == "get" || s.Type == "set") }

// AppendChild returns a copy of s with child inserted as its last child element. A self-closing element is
// expanded.
func (s *Stanza) AppendChild(child []byte) *Stanza {
	c := *s
	if s.InnerStart == s.InnerEnd && isSelfClosing(s.Raw) {
		// <message .../> -> <message ...>child</message>
		end := len(s.Raw) - 2 // index of "/>"
		raw := make([]byte, 0, len(s.Raw)+len(child)+len(s.Kind.String())+3)
		raw = append(raw, s.Raw[:end]...)
		raw = append(raw, '>')
		c.InnerStart = len(raw)
		raw = append(raw, child...)
		c.InnerEnd = len(raw)
		raw = append(raw, "</"...)
		raw = append(raw, s.Kind.String()...)
		raw = append(raw, '>')
		c.Raw = raw
		return &c
	}
	raw := make([]byte, 0, len(s.Raw)+len(child))
	raw = append(raw, s.Raw[:s.InnerEnd]...)
	raw = append(raw, child...)
	c.InnerEnd = len(raw)
	raw = append(raw, s.Raw[s.InnerEnd:]...)
	c.Raw = raw
	return &c
}

// WithTo returns a copy of s whose to attribute is to (used to address a bare-JID stanza to each full JID is
// NOT needed by RFC 6121, but carbons and redirections rewrite it).
func (s *Stanza) WithTo(to jid.JID) *Stanza {
	c := *s
	c.To = to
	c.Raw, c.InnerStart, c.InnerEnd = rewriteAttr(s.Raw, s.InnerStart, s.InnerEnd, "to", to.String())
	return &c
}

func isSelfClosing(raw []byte) bool {
	return len(raw) >= 2 && raw[len(raw)-2] == '/' && raw[len(raw)-1] == '>'
}

// rewriteAttr replaces (or adds) attribute name on the root element of raw. It is not on the forwarding hot path
// (the c2s reader stamps from with the offsets its scanner found).
func rewriteAttr(raw []byte, innerStart, innerEnd int, name, value string) ([]byte, int, int) {
	startEnd := startTagEnd(raw)
	nameEnd := 1
	for nameEnd < len(raw) && !isSpace(raw[nameEnd]) && raw[nameEnd] != '>' && raw[nameEnd] != '/' {
		nameEnd++
	}
	spanStart, spanEnd, _ := findAttr(raw[:startEnd], name)
	out := make([]byte, 0, len(raw)+len(value)+len(name)+4)
	out = append(out, raw[:nameEnd]...)
	out = append(out, ' ')
	out = append(out, name...)
	out = append(out, "='"...)
	out = AppendEscape(out, value)
	out = append(out, '\'')
	delta := len(out) - nameEnd
	if spanStart >= 0 {
		out = append(out, raw[nameEnd:spanStart]...)
		out = append(out, raw[spanEnd:]...)
		delta -= spanEnd - spanStart
	} else {
		out = append(out, raw[nameEnd:]...)
	}
	return out, innerStart + delta, innerEnd + delta
}

// StartTagEnd returns the index of the '>' closing the root start tag of raw, skipping quoted attribute values
// (len(raw) if there is none).
func StartTagEnd(raw []byte) int { return startTagEnd(raw) }

// startTagEnd and findAttr rescan bytes the stream scanner accepted, with its helpers.
func startTagEnd(raw []byte) int {
	if i := stream.TagEnd(raw); i >= 0 {
		return i
	}
	return len(raw)
}

// findAttr finds attribute name in a start tag (from its '<', without the closing '>') and returns its span,
// including its leading whitespace, and its raw value; start is -1 when it is absent.
func findAttr(tag []byte, name string) (start, end int, val []byte) {
	i := 1
	for i < len(tag) && !isSpace(tag[i]) {
		i++
	}
	for {
		n, v, next := stream.NextAttr(tag, i)
		if next < 0 {
			return -1, -1, nil
		}
		if string(n) == name {
			return i, next, v
		}
		i = next
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// AppendEscape appends s escaped for use in XML text or a single- or double-quoted attribute value: it is
// stream.EscapeString, so tab, newline and carriage return survive attribute normalization and the output is
// well-formed whatever s holds.
func AppendEscape(dst []byte, s string) []byte { return stream.EscapeString(dst, s) }

// Build returns the bytes of a stanza of kind k with the given envelope and inner XML, attributes escaped.
// Zero JIDs and empty strings are left out.
func Build(k Kind, typ, id string, from, to jid.JID, inner []byte) []byte {
	name := k.String()
	fs, ts := from.String(), to.String()
	// Room for the tags and the four attributes, so that only escaping makes the buffer grow.
	b := make([]byte, 0, 2*len(name)+len(fs)+len(ts)+len(typ)+len(id)+len(inner)+40)
	b = append(b, '<')
	b = append(b, name...)
	b = appendAttr(b, "from", fs)
	b = appendAttr(b, "to", ts)
	b = appendAttr(b, "type", typ)
	b = appendAttr(b, "id", id)
	if len(inner) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	b = append(b, inner...)
	b = append(b, "</"...)
	b = append(b, name...)
	return append(b, '>')
}

// New builds a Stanza the server sends itself.
func New(k Kind, typ, id string, from, to jid.JID, inner []byte) *Stanza {
	raw := Build(k, typ, id, from, to, inner)
	s := &Stanza{Kind: k, Type: typ, ID: id, From: from, To: to, Raw: raw}
	if len(inner) == 0 {
		s.InnerStart, s.InnerEnd = len(raw)-2, len(raw)-2
	} else {
		s.InnerEnd = len(raw) - len(k.String()) - 3
		s.InnerStart = s.InnerEnd - len(inner)
	}
	return s
}

func appendAttr(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, "='"...)
	b = AppendEscape(b, value)
	return append(b, '\'')
}

// Result builds the iq result answering request, with optional inner XML.
func Result(request *Stanza, inner []byte) *Stanza {
	return New(IQ, "result", request.ID, request.To, request.From, inner)
}

// FirstChild finds the first child element in inner XML and returns its local name, namespace (its own xmlns, or
// the xmlns:prefix it declares; "" if it declares none) and its bytes. ok is false when there is no child element.
// It expects bytes the stream scanner already validated.
func FirstChild(inner []byte) (local, ns string, raw []byte, ok bool) {
	i := 0
	for {
		j := bytes.IndexByte(inner[i:], '<')
		if j < 0 {
			return "", "", nil, false
		}
		i += j
		if i+1 < len(inner) && inner[i+1] != '/' && inner[i+1] != '!' && inner[i+1] != '?' {
			break
		}
		i++
	}
	start := i
	end := elementEnd(inner, start)
	raw = inner[start:end]
	tagEnd := startTagEnd(raw)
	n := 1
	for n < tagEnd && !isSpace(raw[n]) && raw[n] != '/' && raw[n] != '>' {
		n++
	}
	qname, prefix := raw[1:n], ""
	if k := bytes.IndexByte(qname, ':'); k >= 0 {
		prefix, qname = string(qname[:k]), qname[k+1:]
	}
	name := internLocal(qname)
	attr := "xmlns"
	if prefix != "" {
		attr = "xmlns:" + prefix
	}
	if s, _, v := findAttr(raw[:tagEnd], attr); s >= 0 {
		ns = internNS(v)
	}
	return name, ns, raw, true
}

// elementEnd returns the index just past the element starting at start, counting nesting. The input is
// well-formed (the scanner checked it), so only tags need tracking; quoted attribute values and CDATA are skipped.
func elementEnd(b []byte, start int) int {
	depth := 0
	i := start
	for i < len(b) {
		if b[i] != '<' {
			i++
			continue
		}
		if bytes.HasPrefix(b[i:], []byte("<![CDATA[")) {
			k := bytes.Index(b[i:], []byte("]]>"))
			if k < 0 {
				return len(b)
			}
			i += k + 3
			continue
		}
		closing := i+1 < len(b) && b[i+1] == '/'
		e := i + startTagEnd(b[i:])
		if e >= len(b) {
			return len(b)
		}
		switch {
		case closing:
			depth--
		case b[e-1] == '/':
			// self-closing: no depth change
		default:
			depth++
		}
		i = e + 1
		if depth == 0 {
			return i
		}
	}
	return len(b)
}

// Embed returns the stanza's bytes fit to be nested inside another namespace (XEP-0297 forwarded in carbons and
// archive results): a root element that relied on the stream's default namespace gets xmlns='jabber:client'.
func (s *Stanza) Embed() []byte {
	return AppendWithNS(make([]byte, 0, len(s.Raw)+len(" xmlns='jabber:client'")), s.Raw, "jabber:client")
}

// AppendWithNS appends the element raw, adding xmlns='ns' to its start tag if the tag declares no default
// namespace of its own.
func AppendWithNS(b, raw []byte, ns string) []byte {
	if len(raw) < 2 || raw[0] != '<' {
		return append(b, raw...)
	}
	end := startTagEnd(raw)
	if st, _, _ := findAttr(raw[:end], "xmlns"); st >= 0 {
		return append(b, raw...)
	}
	n := 1
	for n < end && !isSpace(raw[n]) && raw[n] != '/' && raw[n] != '>' {
		n++
	}
	b = append(b, raw[:n]...)
	b = append(b, " xmlns='"...)
	b = AppendEscape(b, ns)
	b = append(b, '\'')
	return append(b, raw[n:]...)
}

// Children calls fn for each child element of inner XML with its local name, namespace (as FirstChild reports
// it) and bytes, until fn returns false.
func Children(inner []byte, fn func(local, ns string, raw []byte) bool) {
	off := 0
	for off < len(inner) {
		local, ns, raw, ok := FirstChild(inner[off:])
		if !ok {
			return
		}
		if !fn(local, ns, raw) {
			return
		}
		// raw is a subslice of inner, so the capacities tell where it ends (no search).
		off = cap(inner) - cap(raw) + len(raw)
	}
}

// WithoutChildren returns s without the child elements for which drop returns true (or s itself if none).
func (s *Stanza) WithoutChildren(drop func(local, ns string, raw []byte) bool) *Stanza {
	inner := s.Payload()
	var keep []byte
	changed := false
	last := 0
	Children(inner, func(local, ns string, raw []byte) bool {
		start := cap(inner) - cap(raw) // raw is a subslice of inner
		if drop(local, ns, raw) {
			keep = append(keep, inner[last:start]...)
			last = start + len(raw)
			changed = true
		}
		return true
	})
	if !changed {
		return s
	}
	keep = append(keep, inner[last:]...)
	c := *s
	raw := make([]byte, 0, len(s.Raw))
	raw = append(raw, s.Raw[:s.InnerStart]...)
	raw = append(raw, keep...)
	c.InnerEnd = len(raw)
	raw = append(raw, s.Raw[s.InnerEnd:]...)
	c.Raw = raw
	return &c
}

// ChildAttr returns the value of attribute name on the root element of raw ("" if absent).
func ChildAttr(raw []byte, name string) string {
	st, _, v := findAttr(raw[:startTagEnd(raw)], name)
	if st < 0 {
		return ""
	}
	return attrString(v)
}

// attrString returns the raw attribute value v decoded (stream.DecodeAttr), copied once when it needs no decoding.
func attrString(v []byte) string {
	for _, c := range v {
		if c == '&' || c == '\t' || c == '\n' || c == '\r' {
			return string(stream.DecodeAttr(make([]byte, 0, len(v)), v))
		}
	}
	return string(v)
}

// OriginID returns the sender's XEP-0359 origin-id, or the stanza id when it is long enough to be unique (short
// ids such as "1" are reused by clients after a restart and would wrongly match), or "".
func OriginID(s *Stanza) string {
	var id string
	if bytes.Contains(s.Payload(), []byte("urn:xmpp:sid:0")) {
		Children(s.Payload(), func(local, ns string, raw []byte) bool {
			if local == "origin-id" && ns == "urn:xmpp:sid:0" {
				id = ChildAttr(raw, "id")
				return false
			}
			return true
		})
	}
	if id == "" && len(s.ID) >= 16 {
		id = s.ID
	}
	return id
}
