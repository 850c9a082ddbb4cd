package stream

import "bytes"

// Namespaces the Reader knows by name.
const (
	NSStream = "http://etherx.jabber.org/streams"
	nsXML    = "http://www.w3.org/XML/1998/namespace"
	nsXMLNS  = "http://www.w3.org/2000/xmlns/"
)

// uriVal is a namespace name: bytes of the current element (b) or a string kept since the header (s).
type uriVal struct {
	b   []byte
	s   string
	str bool
}

func (u uriVal) eq(v uriVal) bool {
	switch {
	case u.str && v.str:
		return u.s == v.s
	case u.str:
		return u.s == string(v.b)
	case v.str:
		return string(u.b) == v.s
	}
	return bytes.Equal(u.b, v.b)
}

func (u uriVal) is(s string) bool {
	if u.str {
		return u.s == s
	}
	return string(u.b) == s
}

// startTag processes the start tag whose '>' is at p, now that all its attributes are known. It returns the event it
// completes, if any, and the state to continue in.
func (r *Reader) startTag(p int, self bool) (event, state, *Error) {
	if !r.hdrDone {
		return r.headerTag(self)
	}
	depth := len(r.open)
	if depth >= r.maxDepth {
		return evMore, 0, r.fail(PolicyViolation, "elements nested too deep", r.start+r.tagName)
	}
	top := depth == 0
	if top {
		r.scratch, r.inh, r.env = r.scratch[:0], r.inh[:0], [5]ref{}
	}
	raw := r.buf[r.start:r.end]
	nb := len(r.ns)
	if err := r.declare(raw, true); err != nil {
		return evMore, 0, err
	}
	var ns uriVal
	if r.tagColon >= 0 {
		id, ok := r.lookup(raw, raw[r.tagName:r.tagColon])
		if !ok {
			return evMore, 0, r.fail(NotWellFormed, "undeclared element prefix", r.start+r.tagName)
		}
		r.inherit(id)
		ns = r.uri(raw, id)
	} else if top {
		if id, ok := r.lookup(raw, nil); ok {
			ns = r.uri(raw, id)
		}
	}
	if err := r.resolveAttrs(raw); err != nil {
		return evMore, 0, err
	}
	if top {
		r.topElement(raw, ns, p-r.start, self)
	}
	if self {
		r.ns = r.ns[:nb]
		if top {
			return evElement, stTop, nil
		}
		return evMore, stText, nil
	}
	r.open = append(r.open, openTag{name: r.tagName, nameEnd: r.tagNameEnd, nb: nb})
	r.brackets = 0
	return evMore, stText, nil
}

// declare checks the namespace declarations among the attributes and, for elements, pushes them onto r.ns.
func (r *Reader) declare(raw []byte, push bool) *Error {
	for i := range r.attrs {
		a := &r.attrs[i]
		var pfx []byte
		switch {
		case a.colon < 0 && string(raw[a.name:a.nameEnd]) == "xmlns":
		case a.colon >= 0 && string(raw[a.name:a.colon]) == "xmlns":
			pfx = raw[a.colon+1 : a.nameEnd]
		default:
			continue
		}
		a.decl = true
		v := r.value(raw, a)
		uri := r.refBytes(raw, v)
		switch {
		case string(pfx) == "xmlns":
			return r.fail(NotWellFormed, "the xmlns prefix cannot be declared", r.start+int(a.name))
		case string(pfx) == "xml":
			if string(uri) != nsXML {
				return r.fail(NotWellFormed, "the xml prefix cannot be rebound", r.start+int(a.name))
			}
		case string(uri) == nsXML || string(uri) == nsXMLNS:
			return r.fail(NotWellFormed, "reserved namespace name", r.start+int(a.val))
		case len(pfx) > 0 && len(uri) == 0:
			return r.fail(NotWellFormed, "prefix declared with an empty namespace", r.start+int(a.name))
		}
		if push {
			r.ns = append(r.ns, binding{pfx: int(a.nameEnd) - len(pfx), pfxEnd: int(a.nameEnd), uri: v})
		} else {
			r.hdr = append(r.hdr, NSDecl{Prefix: internPrefix(pfx), URI: r.internNS(uri)})
		}
	}
	return nil
}

// resolveAttrs resolves the prefixes of attributes and rejects duplicates (XML 1.0 section 3.1 and, by expanded
// name, Namespaces in XML section 6.3).
func (r *Reader) resolveAttrs(raw []byte) *Error {
	as := r.attrs
	for i := range as {
		a := &as[i]
		if a.decl || a.colon < 0 {
			continue
		}
		id, ok := r.lookup(raw, raw[a.name:a.colon])
		if !ok {
			return r.fail(NotWellFormed, "undeclared attribute prefix", r.start+int(a.name))
		}
		r.inherit(id)
		a.ns = id
	}
	for i := 1; i < len(as); i++ {
		a := &as[i]
		name := raw[a.name:a.nameEnd]
		for j := range i {
			b := &as[j]
			if string(raw[b.name:b.nameEnd]) == string(name) {
				return r.fail(NotWellFormed, "duplicate attribute", r.start+int(a.name))
			}
			if a.colon >= 0 && b.colon >= 0 && !a.decl && !b.decl &&
				string(raw[a.colon+1:a.nameEnd]) == string(raw[b.colon+1:b.nameEnd]) &&
				r.uri(raw, a.ns).eq(r.uri(raw, b.ns)) {
				return r.fail(NotWellFormed, "duplicate attribute", r.start+int(a.name))
			}
		}
	}
	return nil
}

// nsID identifies an in-scope namespace declaration while a start tag is processed: an index into Reader.ns (>= 0),
// the predeclared xml prefix, or a declaration on the stream header (nsHeader-h for Reader.hdr[h]).
type nsID int32

const (
	nsXMLID  nsID = -1
	nsHeader nsID = -2
)

// lookup finds the declaration in scope for pfx (nil or empty: the default namespace).
func (r *Reader) lookup(raw, pfx []byte) (nsID, bool) {
	if string(pfx) == "xml" {
		return nsXMLID, true
	}
	for i := len(r.ns) - 1; i >= 0; i-- {
		if b := &r.ns[i]; string(raw[b.pfx:b.pfxEnd]) == string(pfx) {
			return nsID(i), true
		}
	}
	for i := range r.hdr {
		if r.hdr[i].Prefix == string(pfx) {
			return nsHeader - nsID(i), true
		}
	}
	return 0, false
}

// uri returns the namespace name of a declaration lookup found.
func (r *Reader) uri(raw []byte, id nsID) uriVal {
	switch {
	case id >= 0:
		return uriVal{b: r.refBytes(raw, r.ns[id].uri)}
	case id == nsXMLID:
		return uriVal{s: nsXML, str: true}
	}
	return uriVal{s: r.hdr[nsHeader-id].URI, str: true}
}

// inherit records that the element uses id, if it is a declaration of the stream header.
func (r *Reader) inherit(id nsID) {
	if id > nsHeader || !r.hdrDone {
		return
	}
	d := r.hdr[nsHeader-id]
	for _, x := range r.inh {
		if x.Prefix == d.Prefix {
			return
		}
	}
	r.inh = append(r.inh, d)
}

// value locates the value of a, decoding it into scratch if it holds references or whitespace to normalize.
func (r *Reader) value(raw []byte, a *attr) ref {
	if a.flags == 0 {
		return ref{where: inRaw, off: int(a.val), end: int(a.valEnd)}
	}
	off := len(r.scratch)
	r.scratch = decodeAttr(r.scratch, raw[a.val:a.valEnd])
	return ref{where: inScratch, off: off, end: len(r.scratch)}
}

func (r *Reader) refBytes(raw []byte, f ref) []byte {
	if f.where == inScratch {
		return r.scratch[f.off:f.end]
	}
	return raw[f.off:f.end]
}

// topElement records the envelope of a top-level element.
func (r *Reader) topElement(raw []byte, ns uriVal, gt int, self bool) {
	e := &r.el
	local := r.tagName
	if r.tagColon >= 0 {
		local = r.tagColon + 1
	}
	e.Local = r.internLocal(raw[local:r.tagNameEnd])
	if ns.str {
		e.NS = ns.s
	} else {
		e.NS = r.internNS(ns.b)
	}
	e.NameEnd = r.tagNameEnd
	e.SelfClosing = self
	if self {
		e.StartEnd, e.InnerStart, e.InnerEnd = r.slash, r.slash, r.slash
	} else {
		e.StartEnd, e.InnerStart = gt, gt+1
	}
	e.ToSpan, e.FromSpan = [2]int{-1, -1}, [2]int{-1, -1}
	for i := range r.attrs {
		a := &r.attrs[i]
		switch {
		case a.decl:
		case a.colon < 0:
			switch string(raw[a.name:a.nameEnd]) {
			case "to":
				r.env[envTo] = r.value(raw, a)
				e.ToSpan = [2]int{int(a.ws), int(a.valEnd) + 1}
			case "from":
				r.env[envFrom] = r.value(raw, a)
				e.FromSpan = [2]int{int(a.ws), int(a.valEnd) + 1}
			case "type":
				r.env[envType] = r.value(raw, a)
			case "id":
				r.env[envID] = r.value(raw, a)
			}
		case string(raw[a.name:a.nameEnd]) == "xml:lang":
			r.env[envLang] = r.value(raw, a)
		}
	}
}

// headerTag processes the stream open tag.
func (r *Reader) headerTag(self bool) (event, state, *Error) {
	raw := r.buf[r.start:r.end]
	r.hdr, r.ns, r.open, r.scratch = r.hdr[:0], r.ns[:0], r.open[:0], r.scratch[:0]
	if err := r.declare(raw, false); err != nil {
		return evMore, 0, err
	}
	var pfx []byte
	local := r.tagName
	if r.tagColon >= 0 {
		pfx, local = raw[r.tagName:r.tagColon], r.tagColon+1
	}
	id, ok := r.lookup(raw, pfx)
	if !ok && pfx != nil {
		return evMore, 0, r.fail(InvalidNamespace, "stream prefix not declared", r.start+r.tagName)
	}
	if !ok || !r.uri(raw, id).is(NSStream) {
		return evMore, 0, r.fail(InvalidNamespace, "stream element not in "+NSStream, r.start+r.tagName)
	}
	if string(raw[local:r.tagNameEnd]) != "stream" {
		return evMore, 0, r.fail(BadFormat, "root element is not stream", r.start+r.tagName)
	}
	if self {
		return evMore, 0, r.fail(BadFormat, "empty stream element", r.start+r.slash)
	}
	if err := r.resolveAttrs(raw); err != nil {
		return evMore, 0, err
	}
	var h Header
	for i := range r.attrs {
		a := &r.attrs[i]
		if a.decl {
			continue
		}
		var f *string
		switch string(raw[a.name:a.nameEnd]) {
		case "to":
			f = &h.To
		case "from":
			f = &h.From
		case "id":
			f = &h.ID
		case "version":
			f = &h.Version
		case "xml:lang":
			f = &h.Lang
		default:
			continue
		}
		*f = string(r.refBytes(raw, r.value(raw, a)))
	}
	if id, ok := r.lookup(raw, nil); ok {
		h.NS = r.uri(raw, id).s
	}
	h.Prefix = internPrefix(pfx)
	r.hdrNS = h.NS
	r.streamName = append(r.streamName[:0], raw[r.tagName:r.tagNameEnd]...)
	r.header, r.hdrDone = h, true
	return evHeader, stTop, nil
}

// decl checks the XML declaration (XML 1.0 section 2.8) just scanned.
func (r *Reader) decl() *Error {
	raw := r.buf[r.start:r.end]
	as := r.attrs
	name := func(i int) string { return string(raw[as[i].name:as[i].nameEnd]) }
	val := func(i int) []byte { return raw[as[i].val:as[i].valEnd] }
	for i := range as {
		if as[i].flags != 0 {
			return r.fail(NotWellFormed, "reference or whitespace in the XML declaration", r.start+int(as[i].val))
		}
	}
	if len(as) == 0 || name(0) != "version" {
		return r.fail(NotWellFormed, "XML declaration without version", r.start)
	}
	if string(val(0)) != "1.0" {
		return r.fail(BadFormat, "XML version other than 1.0", r.start+int(as[0].val))
	}
	i := 1
	if i < len(as) && name(i) == "encoding" {
		if !bytes.EqualFold(val(i), []byte("UTF-8")) {
			return r.fail(UnsupportedEncoding, "encoding other than UTF-8", r.start+int(as[i].val))
		}
		i++
	}
	if i < len(as) && name(i) == "standalone" {
		if v := string(val(i)); v != "yes" && v != "no" {
			return r.fail(NotWellFormed, "bad standalone value", r.start+int(as[i].val))
		}
		i++
	}
	if i != len(as) {
		return r.fail(NotWellFormed, "unexpected attribute in the XML declaration", r.start+int(as[i].name))
	}
	r.declOK, r.inDecl = false, false
	r.attrs = r.attrs[:0]
	return nil
}

// internNS returns b as a string, without allocating for the namespaces XMPP uses at the top level.
func (r *Reader) internNS(b []byte) string {
	switch string(b) {
	case "":
		return ""
	case "jabber:client":
		return "jabber:client"
	case "jabber:server":
		return "jabber:server"
	case "jabber:component:accept":
		return "jabber:component:accept"
	case NSStream:
		return NSStream
	case "urn:ietf:params:xml:ns:xmpp-tls":
		return "urn:ietf:params:xml:ns:xmpp-tls"
	case "urn:ietf:params:xml:ns:xmpp-sasl":
		return "urn:ietf:params:xml:ns:xmpp-sasl"
	case "urn:ietf:params:xml:ns:xmpp-bind":
		return "urn:ietf:params:xml:ns:xmpp-bind"
	case "urn:ietf:params:xml:ns:xmpp-session":
		return "urn:ietf:params:xml:ns:xmpp-session"
	case "urn:xmpp:sm:3":
		return "urn:xmpp:sm:3"
	case "urn:xmpp:sm:2":
		return "urn:xmpp:sm:2"
	case "urn:xmpp:csi:0":
		return "urn:xmpp:csi:0"
	case "urn:xmpp:sasl:2":
		return "urn:xmpp:sasl:2"
	case "urn:xmpp:bind:0":
		return "urn:xmpp:bind:0"
	case "urn:xmpp:fast:0":
		return "urn:xmpp:fast:0"
	case "http://jabber.org/protocol/compress":
		return "http://jabber.org/protocol/compress"
	case "jabber:server:dialback":
		return "jabber:server:dialback"
	}
	if string(b) != r.lastNS {
		r.lastNS = string(b)
	}
	return r.lastNS
}

// internLocal returns b as a string, without allocating for the names of top-level elements XMPP defines.
func (r *Reader) internLocal(b []byte) string {
	switch string(b) {
	case "message":
		return "message"
	case "presence":
		return "presence"
	case "iq":
		return "iq"
	case "r":
		return "r"
	case "a":
		return "a"
	case "starttls":
		return "starttls"
	case "auth":
		return "auth"
	case "authenticate":
		return "authenticate"
	case "response":
		return "response"
	case "abort":
		return "abort"
	case "enable":
		return "enable"
	case "resume":
		return "resume"
	case "active":
		return "active"
	case "inactive":
		return "inactive"
	case "error":
		return "error"
	case "compress":
		return "compress"
	case "handshake":
		return "handshake"
	case "result":
		return "result"
	case "verify":
		return "verify"
	}
	if string(b) != r.lastLocal {
		r.lastLocal = string(b)
	}
	return r.lastLocal
}

func internPrefix(b []byte) string {
	switch string(b) {
	case "":
		return ""
	case "stream":
		return "stream"
	case "db":
		return "db"
	}
	return string(b)
}
