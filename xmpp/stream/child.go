package stream

import "bytes"

// Child finds the first direct child element of e with the given local name and namespace, such as ("body",
// "jabber:client") or ("received", "urn:xmpp:receipts"). start and end delimit the child in e.Raw, from its '<' to
// just after its end tag (or self-closing tag). It rescans e's content, without allocating unless a namespace
// declaration it has to compare holds references. For an element that did not come from a Reader it never panics
// but may not find anything.
func (e *Element) Child(local, ns string) (start, end int, ok bool) {
	raw := e.Raw
	lo, hi := e.InnerStart, e.InnerEnd
	if lo < 0 || hi > len(raw) || lo > hi || e.StartEnd < 0 || e.StartEnd > lo {
		return 0, 0, false
	}
	depth, found := 0, false
	for i := lo; i < hi; {
		j := bytes.IndexByte(raw[i:hi], '<')
		if j < 0 {
			break
		}
		i += j
		rest := raw[i:hi]
		switch {
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			k := bytes.Index(rest, []byte("]]>"))
			if k < 0 {
				return 0, 0, false
			}
			i += k + 3
		case len(rest) > 1 && rest[1] == '/':
			k := bytes.IndexByte(rest, '>')
			if k < 0 || depth == 0 {
				return 0, 0, false
			}
			i += k + 1
			if depth--; depth == 0 && found {
				return start, i, true
			}
		default:
			n := tagEnd(rest)
			if n < 0 {
				return 0, 0, false
			}
			tag, self := rest[1:n], rest[n-1] == '/'
			if self {
				tag = tag[:len(tag)-1]
			}
			if depth == 0 && e.childIs(tag, local, ns) {
				if self {
					return i, i + n + 1, true
				}
				found, start = true, i
			}
			if !self {
				depth++
			}
			i += n + 1
		}
	}
	return 0, 0, false
}

// childIs reports whether the start tag tag (without '<' and '>') of a child of e is {ns}local.
func (e *Element) childIs(tag []byte, local, ns string) bool {
	nameEnd := 0
	for nameEnd < len(tag) && !isSpace(tag[nameEnd]) {
		nameEnd++
	}
	name := tag[:nameEnd]
	var pfx []byte
	if c := bytes.IndexByte(name, ':'); c >= 0 {
		pfx, name = name[:c], name[c+1:]
	}
	if string(name) != local {
		return false
	}
	if v, ok := findDecl(tag[nameEnd:], pfx); ok {
		return attrEq(v, ns)
	}
	top := e.Raw[:e.StartEnd]
	if e.NameEnd > 0 && e.NameEnd <= len(top) {
		if v, ok := findDecl(top[e.NameEnd:], pfx); ok {
			return attrEq(v, ns)
		}
	}
	switch {
	case len(pfx) == 0:
		return e.hdrNS == ns
	case string(pfx) == "xml":
		return ns == nsXML
	}
	for _, d := range e.hdr {
		if d.Prefix == string(pfx) {
			return d.URI == ns
		}
	}
	return false
}

// TagEnd returns the index of the '>' that ends the tag at the start of b, skipping quoted values, or -1. Like
// Child it expects bytes a Reader accepted; xmpp/stanza uses it to rescan stored and forwarded elements.
func TagEnd(b []byte) int { return tagEnd(b) }

func tagEnd(b []byte) int {
	var quote byte
	for i, c := range b {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '>':
			return i
		}
	}
	return -1
}

// findDecl finds the declaration of pfx (empty: the default namespace) among the attributes in b.
func findDecl(b, pfx []byte) ([]byte, bool) {
	for i := 0; ; {
		name, val, next := nextAttr(b, i)
		if next < 0 {
			return nil, false
		}
		i = next
		if len(pfx) == 0 {
			if string(name) == "xmlns" {
				return val, true
			}
		} else if len(name) == 6+len(pfx) && string(name[:6]) == "xmlns:" && string(name[6:]) == string(pfx) {
			return val, true
		}
	}
}

// NextAttr returns the attribute starting at or after b[i] (after optional whitespace) in a start tag without its
// '<' and name, its raw value (between the quotes, references not decoded; see DecodeAttr) and the index just
// past its closing quote, or next -1 when there is no further attribute.
func NextAttr(b []byte, i int) (name, val []byte, next int) { return nextAttr(b, i) }

func nextAttr(b []byte, i int) (name, val []byte, next int) {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	n := i
	for i < len(b) && b[i] != '=' && !isSpace(b[i]) {
		i++
	}
	name = b[n:i]
	for i < len(b) && (isSpace(b[i]) || b[i] == '=') {
		i++
	}
	if i >= len(b) || len(name) == 0 || (b[i] != '\'' && b[i] != '"') {
		return nil, nil, -1
	}
	q := b[i]
	v := i + 1
	k := bytes.IndexByte(b[v:], q)
	if k < 0 {
		return nil, nil, -1
	}
	return name, b[v : v+k], v + k + 1
}

// attrEq reports whether the raw attribute value v decodes to s.
func attrEq(v []byte, s string) bool {
	if bytes.IndexByte(v, '&') < 0 && !bytes.ContainsAny(v, "\t\n\r") {
		return string(v) == s
	}
	var tmp [128]byte
	return string(decodeAttr(tmp[:0], v)) == s
}
