package websocket

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"

	"parley.im/parley/xmpp/stream"
)

const (
	// NSFraming is the namespace of RFC 7395's <open/> and <close/>.
	NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	nsStream  = "http://etherx.jabber.org/streams"
	nsClient  = "jabber:client"
	nsXML     = "http://www.w3.org/XML/1998/namespace"

	// closeMsg is what the server's </stream:stream> becomes.
	closeMsg = "<close xmlns='" + NSFraming + "'/>"
	// streamHeaderStart begins the stream header that a client's <open/> becomes for the c2s reader. It declares
	// jabber:client as the default namespace, so stanzas are accepted with or without their own
	// xmlns='jabber:client' (RFC 7395 section 3.3.3 has clients declare it; some omit it).
	streamHeaderStart = "<stream:stream xmlns='" + nsClient + "' xmlns:stream='" + nsStream + "'"
	// streamClose is what a client's <close/> becomes.
	streamClose = "</stream:stream>"
)

// ---- Incoming: client messages to the byte stream the c2s reader expects ----

// framingElement is a client's <open/> or <close/>.
type framingElement struct {
	XMLName xml.Name
	To      string `xml:"to,attr"`
	From    string `xml:"from,attr"`
	Version string `xml:"version,attr"`
	Lang    string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
}

// maxFramingMessage bounds an <open/> or <close/> message: anything longer is passed on untranslated, and the
// stream reader refuses it.
const maxFramingMessage = 4096

// firstName returns the local name of the first start tag in b (after whitespace). complete is false when b
// ends before the name does.
func firstName(b []byte) (local []byte, complete bool) {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i == len(b) {
		return nil, false
	}
	if b[i] != '<' {
		return nil, true
	}
	i++
	start := i
	for i < len(b) && !isSpace(b[i]) && b[i] != '/' && b[i] != '>' {
		i++
	}
	if i == len(b) {
		return nil, false
	}
	name := b[start:i]
	if j := bytes.IndexByte(name, ':'); j >= 0 {
		name = name[j+1:]
	}
	return name, true
}

// isFramingName reports whether a message whose first element has this local name may be an <open/> or
// <close/> that needs translating.
func isFramingName(local []byte) bool {
	return string(local) == "open" || string(local) == "close"
}

// translateIn turns one complete client message that is an RFC 7395 <open/> into a stream header and a <close/>
// into the stream close tag. ok is false for anything else, which is passed to the reader unchanged (and, if it
// is a malformed <open/>, refused by it with a stream error).
func translateIn(msg []byte) (out []byte, ok bool) {
	var f framingElement
	if err := xml.Unmarshal(msg, &f); err != nil || f.XMLName.Space != NSFraming {
		return nil, false
	}
	switch f.XMLName.Local {
	case "close":
		return []byte(streamClose), true
	case "open":
		out = append(out, streamHeaderStart...)
		for _, a := range [...]struct{ name, val string }{{"to", f.To}, {"from", f.From}, {"version", f.Version}, {"xml:lang", f.Lang}} {
			if a.val == "" {
				continue
			}
			out = append(out, ' ')
			out = append(out, a.name...)
			out = append(out, "='"...)
			out = stream.Escape(out, []byte(a.val))
			out = append(out, '\'')
		}
		return append(out, '>'), true
	}
	return nil, false
}

// ---- Outgoing: the server's byte stream to one WebSocket message per top-level element ----

// errOutput is returned when the server's own output is not a well-formed stream; it ends the connection.
var errOutput = errors.New("websocket: server output is not a well-formed XML stream")

type scanState uint8

const (
	sTop        scanState = iota // between top-level items
	sLt                          // after '<'
	sPI                          // <? ... ?>
	sBang                        // after "<!"
	sComment                     // <!-- ... -->
	sCDATA                       // <![CDATA[ ... ]]>
	sTagName                     // start tag name
	sInTag                       // between attributes
	sAttrName                    // attribute name
	sAttrEq                      // after an attribute name, before '='
	sAttrValue0                  // after '=', before the quote
	sAttrValue                   // inside a quoted value
	sSlash                       // after '/' in a start tag
	sEndName                     // end tag
	sText                        // character data inside an element
)

// nsDecl is a namespace declaration of the server's stream header, kept as it was written.
type nsDecl struct {
	prefix string // "" for the default namespace
	raw    []byte // the value, still escaped, without its quotes
	quote  byte
}

// splitter turns the server's XML stream into RFC 7395 messages: the stream header becomes <open/>, the close
// tag <close/>, and every top-level element is emitted whole, as one message, with the namespace declarations
// it inherited from the stream header added to its start tag (xmlns='jabber:client' on stanzas,
// xmlns:stream on <stream:features/> and <stream:error/>) so that it stands alone as an XML document. It
// trusts its input to be the server's own well-formed output, but never panics or buffers more than max bytes
// on any input.
//
// It scans each byte once: an element that arrives over several writes is not rescanned.
type splitter struct {
	max int
	err error

	own  []byte // pending bytes of an unfinished item, owned
	data []byte // what is being scanned: own, or the caller's slice when nothing was pending

	pos       int // next byte of data to scan
	itemStart int // where the current top-level item starts in data
	tagStart  int // the '<' of the current tag
	mark      int // start of the current attribute name, end tag name, or comment/CDATA/PI body
	nameStart int // start of the current start tag's name
	nameEnd   int
	state     scanState
	quote     byte
	depth     int

	// The tag being scanned.
	tagPrefixed bool
	tagXmlns    bool // declares a default namespace

	// The current top-level element.
	rootNameEnd int
	rootDecl    uint64 // header declarations (bit i = decls[i]) the root declares itself
	needDecl    uint64 // header declarations the element uses
	needDefault bool   // an unprefixed element has no default namespace declared in the element
	defStack    []bool // default namespace declared within the element, per open depth

	decls   []nsDecl // the last stream header's declarations
	scratch []byte
}

func newSplitter(max int) *splitter {
	return &splitter{max: max, decls: []nsDecl{
		{prefix: "", raw: []byte(nsClient), quote: '\''},
		{prefix: "stream", raw: []byte(nsStream), quote: '\''},
	}}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isNameEnd(c byte) bool { return isSpace(c) || c == '/' || c == '>' || c == '=' || c == '<' }

// write scans p and calls emit for each complete message. Bytes of an unfinished element are kept for the next
// call. An error is final.
func (s *splitter) write(p []byte, emit func([]byte) error) error {
	if s.err != nil {
		return s.err
	}
	owned := len(s.own) > 0
	if owned {
		s.own = append(s.own, p...)
		s.data = s.own
	} else {
		s.data = p
	}
	err := s.scan(emit)
	if err == nil && len(s.data)-s.itemStart > s.max {
		err = s.fail("element larger than the limit")
	}
	// Keep what is left of an unfinished item, shifted to the start of own.
	shift := s.itemStart
	rest := s.data[shift:]
	if owned {
		if shift > 0 { // an unfinished element stays where it is: no copy per write
			n := copy(s.own, rest)
			s.own = s.own[:n]
		}
	} else {
		s.own = append(s.own[:0], rest...)
	}
	if len(s.own) == 0 && cap(s.own) > 64<<10 {
		s.own = nil // do not pin the buffer of a large element
	}
	s.data = nil
	s.pos -= shift
	s.tagStart -= shift
	s.mark -= shift
	s.nameStart -= shift
	s.nameEnd -= shift
	s.rootNameEnd -= shift
	s.itemStart = 0
	if err != nil {
		s.err = err
		s.own = nil
	}
	return err
}

func (s *splitter) fail(why string) error {
	return fmt.Errorf("%w: %s at offset %d", errOutput, why, s.pos)
}

// scan advances through s.data from s.pos.
func (s *splitter) scan(emit func([]byte) error) error {
	d := s.data
	for s.pos < len(d) {
		if s.pos-s.itemStart > s.max {
			return s.fail("element larger than the limit")
		}
		c := d[s.pos]
		switch s.state {
		case sTop:
			if isSpace(c) {
				s.pos++
				s.itemStart = s.pos
				continue
			}
			if c != '<' {
				return s.fail("text between top-level elements")
			}
			s.itemStart, s.tagStart = s.pos, s.pos
			s.state = sLt
			s.pos++
		case sLt:
			switch {
			case c == '?':
				s.state, s.mark = sPI, s.pos+1
				s.pos++
			case c == '!':
				s.state = sBang
				s.pos++
			case c == '/':
				s.state, s.mark = sEndName, s.pos+1
				s.pos++
			case isNameEnd(c):
				return s.fail("empty tag name")
			default:
				s.state, s.nameStart = sTagName, s.pos
				s.tagPrefixed, s.tagXmlns = false, false
			}
		case sPI:
			i := bytes.Index(d[s.pos:], []byte("?>"))
			if i < 0 {
				s.pos = max(s.mark, len(d)-1)
				return nil
			}
			s.pos += i + 2
			s.endMarkup()
		case sBang:
			rest := d[s.pos:]
			switch {
			case bytes.HasPrefix(rest, []byte("--")):
				s.state, s.pos = sComment, s.pos+2
				s.mark = s.pos
			case bytes.HasPrefix(rest, []byte("[CDATA[")):
				if s.depth == 0 {
					return s.fail("character data between top-level elements")
				}
				s.state, s.pos = sCDATA, s.pos+7
				s.mark = s.pos
			case bytes.HasPrefix([]byte("--"), rest) || bytes.HasPrefix([]byte("[CDATA["), rest):
				return nil // need more bytes to tell
			default:
				return s.fail("markup declaration")
			}
		case sComment:
			i := bytes.Index(d[s.pos:], []byte("-->"))
			if i < 0 {
				s.pos = max(s.mark, len(d)-2)
				return nil
			}
			s.pos += i + 3
			s.endMarkup()
		case sCDATA:
			i := bytes.Index(d[s.pos:], []byte("]]>"))
			if i < 0 {
				s.pos = max(s.mark, len(d)-2)
				return nil
			}
			s.pos += i + 3
			s.state = sText
		case sTagName:
			if !isNameEnd(c) {
				if c == ':' {
					s.tagPrefixed = true
				}
				s.pos++
				continue
			}
			if c == '=' || c == '<' {
				return s.fail("bad tag name")
			}
			s.nameEnd = s.pos
			if s.depth == 0 {
				s.rootNameEnd, s.rootDecl, s.needDecl, s.needDefault = s.pos, 0, 0, false
			}
			s.usePrefix(d[s.nameStart:s.nameEnd])
			s.state = sInTag
		case sInTag:
			switch {
			case isSpace(c):
				s.pos++
			case c == '/':
				s.state = sSlash
				s.pos++
			case c == '>':
				s.pos++
				if err := s.startTagEnd(false, emit); err != nil {
					return err
				}
			case c == '=' || c == '<' || c == '"' || c == '\'':
				return s.fail("bad attribute")
			default:
				if !isSpace(d[s.pos-1]) {
					return s.fail("no space before an attribute")
				}
				s.state, s.mark = sAttrName, s.pos
			}
		case sAttrName:
			if !isNameEnd(c) {
				s.pos++
				continue
			}
			if c != '=' && !isSpace(c) {
				return s.fail("attribute without a value")
			}
			s.attrName(d[s.mark:s.pos])
			s.state = sAttrEq
		case sAttrEq:
			switch {
			case isSpace(c):
				s.pos++
			case c == '=':
				s.state = sAttrValue0
				s.pos++
			default:
				return s.fail("attribute without a value")
			}
		case sAttrValue0:
			switch {
			case isSpace(c):
				s.pos++
			case c == '"' || c == '\'':
				s.quote, s.state = c, sAttrValue
				s.pos++
			default:
				return s.fail("unquoted attribute value")
			}
		case sAttrValue:
			i := bytes.IndexByte(d[s.pos:], s.quote)
			val := d[s.pos:]
			if i >= 0 {
				val = val[:i]
			}
			if bytes.IndexByte(val, '<') >= 0 {
				return s.fail("< in an attribute value")
			}
			if i < 0 {
				s.pos = len(d)
				return nil
			}
			s.pos += i + 1
			s.state = sInTag
		case sSlash:
			if c != '>' {
				return s.fail("/ not followed by >")
			}
			s.pos++
			if err := s.startTagEnd(true, emit); err != nil {
				return err
			}
		case sEndName:
			if c != '>' {
				if c == '<' {
					return s.fail("bad end tag")
				}
				s.pos++
				continue
			}
			name := bytes.TrimRight(d[s.mark:s.pos], " \t\r\n")
			s.pos++
			if len(name) == 0 {
				return s.fail("empty end tag")
			}
			if s.depth == 0 {
				if !isStreamName(name) {
					return s.fail("end tag without a start tag")
				}
				s.state, s.itemStart = sTop, s.pos
				if err := emit([]byte(closeMsg)); err != nil {
					return err
				}
				continue
			}
			s.depth--
			s.defStack = s.defStack[:s.depth]
			if s.depth == 0 {
				if err := s.emitElement(emit); err != nil {
					return err
				}
				continue
			}
			s.state = sText
		case sText:
			i := bytes.IndexByte(d[s.pos:], '<')
			if i < 0 {
				s.pos = len(d)
				return nil
			}
			s.pos += i
			s.tagStart = s.pos
			s.state = sLt
			s.pos++
		}
	}
	return nil
}

// endMarkup ends a comment or processing instruction: dropped at the top level, part of the element inside one.
func (s *splitter) endMarkup() {
	if s.depth == 0 {
		s.state, s.itemStart = sTop, s.pos
		return
	}
	s.state = sText
}

// isStreamName reports whether a tag at the top level is the stream element (stream:stream as the server
// writes it, or any prefix, or none).
func isStreamName(name []byte) bool {
	if i := bytes.IndexByte(name, ':'); i >= 0 {
		name = name[i+1:]
	}
	return string(name) == "stream"
}

// declaresStreamNS reports whether the start tag binds the prefix of name (or the default namespace) to the
// streams namespace, as a stream header does.
func declaresStreamNS(tag, name []byte) bool {
	want := "xmlns"
	if i := bytes.IndexByte(name, ':'); i >= 0 {
		want = "xmlns:" + string(name[:i])
	}
	found := false
	attrs(tag, func(n, raw []byte, _ byte) {
		if string(n) == want && string(raw) == nsStream {
			found = true
		}
	})
	return found
}

// usePrefix records that the current element uses the prefix of name, if the stream header declares it.
func (s *splitter) usePrefix(name []byte) {
	i := bytes.IndexByte(name, ':')
	if i <= 0 {
		return
	}
	if k := s.declIndex(name[:i]); k >= 0 {
		s.needDecl |= 1 << k
	}
}

func (s *splitter) declIndex(prefix []byte) int {
	for k, d := range s.decls {
		if d.prefix != "" && d.prefix == string(prefix) {
			return k
		}
	}
	return -1
}

// attrName notes a namespace declaration or a prefixed attribute on the current tag.
func (s *splitter) attrName(name []byte) {
	switch {
	case string(name) == "xmlns":
		s.tagXmlns = true
	case bytes.HasPrefix(name, []byte("xmlns:")):
		if s.depth == 0 {
			if k := s.declIndex(name[6:]); k >= 0 {
				s.rootDecl |= 1 << k
			}
		}
	case bytes.HasPrefix(name, []byte("xml:")):
	default:
		s.usePrefix(name)
	}
}

// startTagEnd handles the '>' of a start tag; s.pos is just past it.
func (s *splitter) startTagEnd(selfClosing bool, emit func([]byte) error) error {
	name := s.data[s.nameStart:s.nameEnd]
	if s.depth == 0 && !selfClosing && isStreamName(name) && declaresStreamNS(s.data[s.tagStart:s.pos], name) {
		s.state, s.itemStart = sTop, s.pos
		return s.header(emit)
	}
	inScope := s.tagXmlns || (s.depth > 0 && s.defStack[s.depth-1])
	if !s.tagPrefixed && !inScope {
		s.needDefault = true
	}
	if selfClosing {
		if s.depth == 0 {
			return s.emitElement(emit)
		}
		s.state = sText
		return nil
	}
	s.defStack = append(s.defStack, inScope)
	s.depth++
	s.state = sText
	return nil
}

// attrs calls fn for each attribute of the start tag in tag (which the scanner accepted).
func attrs(tag []byte, fn func(name, raw []byte, quote byte)) {
	i := 1
	for i < len(tag) && !isNameEnd(tag[i]) {
		i++
	}
	for i < len(tag) {
		for i < len(tag) && (isSpace(tag[i]) || tag[i] == '/' || tag[i] == '>') {
			i++
		}
		start := i
		for i < len(tag) && !isNameEnd(tag[i]) {
			i++
		}
		name := tag[start:i]
		for i < len(tag) && tag[i] != '"' && tag[i] != '\'' {
			i++
		}
		if i >= len(tag) || len(name) == 0 {
			return
		}
		q := tag[i]
		i++
		end := bytes.IndexByte(tag[i:], q)
		if end < 0 {
			return
		}
		fn(name, tag[i:i+end], q)
		i += end + 1
	}
}

// header turns the stream header data[tagStart:pos] into <open/> and remembers its namespace declarations.
func (s *splitter) header(emit func([]byte) error) error {
	tag := s.data[s.tagStart:s.pos]
	s.decls = s.decls[:0]
	b := append(s.scratch[:0], "<open xmlns='"+NSFraming+"'"...)
	attrs(tag, func(name, raw []byte, q byte) {
		switch {
		case string(name) == "xmlns":
			s.addDecl("", raw, q)
		case bytes.HasPrefix(name, []byte("xmlns:")):
			s.addDecl(string(name[6:]), raw, q)
		default:
			b = append(b, ' ')
			b = append(b, name...)
			b = append(b, '=', q)
			b = append(b, raw...)
			b = append(b, q)
		}
	})
	b = append(b, "/>"...)
	s.scratch = b
	return emit(b)
}

func (s *splitter) addDecl(prefix string, raw []byte, q byte) {
	if len(s.decls) >= 64 {
		return
	}
	for _, d := range s.decls {
		if d.prefix == prefix {
			return
		}
	}
	s.decls = append(s.decls, nsDecl{prefix: prefix, raw: append([]byte(nil), raw...), quote: q})
}

// emitElement sends the top-level element data[itemStart:pos], adding the header declarations it relies on.
func (s *splitter) emitElement(emit func([]byte) error) error {
	el := s.data[s.itemStart:s.pos]
	s.state, s.itemStart = sTop, s.pos
	s.defStack = s.defStack[:0]
	need := s.needDecl &^ s.rootDecl
	var def *nsDecl
	if s.needDefault {
		for k := range s.decls {
			if s.decls[k].prefix == "" {
				def = &s.decls[k]
			}
		}
	}
	if need == 0 && def == nil {
		return emit(el)
	}
	at := s.rootNameEnd - (s.pos - len(el))
	b := append(s.scratch[:0], el[:at]...)
	if def != nil {
		b = append(b, " xmlns="...)
		b = append(b, def.quote)
		b = append(b, def.raw...)
		b = append(b, def.quote)
	}
	for k, d := range s.decls {
		if need&(1<<k) == 0 || d.prefix == "" {
			continue
		}
		b = append(b, " xmlns:"...)
		b = append(b, d.prefix...)
		b = append(b, '=', d.quote)
		b = append(b, d.raw...)
		b = append(b, d.quote)
	}
	b = append(b, el[at:]...)
	err := emit(b)
	if cap(b) > 64<<10 {
		b = nil // a large stanza's buffer is not kept for the connection's lifetime
	}
	s.scratch = b[:0]
	return err
}
