package stream

// state is where the scanner is in the grammar. Every state can stop at any byte and resume when more bytes arrive,
// so each byte is looked at once (the only exception: an incomplete multi-byte UTF-8 sequence at the end of the
// buffer, at most three bytes, is looked at again).
type state uint8

const (
	stProlog    state = iota // before the stream header: whitespace, XML declaration
	stTop                    // between top-level elements
	stLt                     // after '<'
	stBang                   // after "<!"
	stBangDash               // after "<!-"
	stCDOpen                 // matching "[CDATA[" after "<!"
	stCDATA                  // inside a CDATA section
	stPI                     // after "<?" where an XML declaration may come, matching "xml"
	stName                   // the name of a start tag
	stTag                    // inside a start tag, between attributes
	stAttrName               // an attribute name
	stAttrEq                 // after an attribute name, before '='
	stAttrQuote              // after '=', before the quote
	stAttrVal                // inside an attribute value
	stEmptyEnd               // after the '/' of a self-closing tag
	stDeclEnd                // after the '?' ending the XML declaration
	stEndName                // the name of an end tag
	stEndSpace               // after the name of an end tag, before '>'
	stText                   // character data inside an element
	stEntity                 // after '&'
	stEntName                // the name of an entity reference
	stCharRef                // after "&#"
	stCharDec                // the digits of a decimal character reference
	stCharHex                // the digits of a hexadecimal character reference
	stClosed                 // after the stream close tag
)

// event is what scan completed.
type event uint8

const (
	evMore    event = iota // nothing yet: read more
	evHeader               // the stream header
	evElement              // a top-level element
	evClose                // the stream close tag
)

// Attribute flags.
const (
	fRef  uint8 = 1 << iota // the value holds a reference
	fNorm                   // the value holds literal whitespace that normalization turns into spaces
)

// attr is an attribute of the start tag being scanned; offsets relative to the element start. It is kept small
// (32 bytes) because a session keeps the slice of them for as long as it lives.
type attr struct {
	ws, name, nameEnd, colon int32 // ws: start of the whitespace before the attribute
	val, valEnd              int32
	ns                       nsID // the namespace of a prefixed attribute
	flags                    uint8
	decl                     bool // a namespace declaration
}

type openTag struct {
	name, nameEnd int // the qualified name, for matching the end tag
	nb            int // len(Reader.ns) before the element's own declarations
}

// binding is a namespace declaration inside the current top-level element: prefix in the raw bytes (empty for the
// default namespace), URI in the raw bytes or, when it had to be decoded, in scratch.
type binding struct {
	pfx, pfxEnd int
	uri         ref
}

// ref locates bytes of the current element.
type ref struct {
	where    uint8 // inNone, inRaw, inScratch
	off, end int
}

const (
	inNone uint8 = iota
	inRaw
	inScratch
)

const (
	envTo = iota
	envFrom
	envType
	envID
	envLang
)

// limit is how far the unit starting at r.start may be scanned: to the end of the data or to MaxElement bytes.
func (r *Reader) limit() int {
	if l := r.start + r.maxEl; l < r.end {
		return l
	}
	return r.end
}

// scan advances over the buffered bytes until it completes a unit, needs more bytes, or finds an error.
func (r *Reader) scan() (event, error) {
	buf := r.buf[:r.end]
	p, st := r.pos, r.st
	lim := r.limit()
	var err *Error
loop:
	for p < lim {
		c := buf[p]
		switch st {
		case stTop:
			if isSpace(c) {
				// Keepalives are dropped as they are scanned, so they never count against the limit.
				for p++; p < lim && isSpace(buf[p]); p++ {
				}
				r.start = p
				lim = r.limit()
				continue
			}
			if c != '<' {
				err = r.fail(NotWellFormed, "character data at stream level", p)
				break loop
			}
			r.start, r.ltPos = p, 0
			lim = r.limit()
			st = stLt
			p++

		case stProlog:
			switch {
			case isSpace(c):
				p++
				r.start = p
				lim = r.limit()
			case c == '<':
				r.start, r.ltPos = p, 0
				lim = r.limit()
				st = stLt
				p++
			case r.base+int64(p) == 0 && c == 0xEF: // UTF-8 byte order mark
				if lim-p < 3 {
					if lim == r.end && (lim-p < 2 || buf[p+1] == 0xBB) {
						break loop
					}
					err = r.fail(NotWellFormed, "bad byte order mark", p)
					break loop
				}
				if buf[p+1] != 0xBB || buf[p+2] != 0xBF {
					err = r.fail(NotWellFormed, "bad byte order mark", p)
					break loop
				}
				p += 3
				r.start = p
				lim = r.limit()
			case r.base+int64(p) == 0 && (c == 0xFE || c == 0xFF || c == 0):
				err = r.fail(UnsupportedEncoding, "stream is not UTF-8", p)
				break loop
			default:
				err = r.fail(NotWellFormed, "character data before the stream header", p)
				break loop
			}

		case stLt:
			switch {
			case c == '/':
				if !r.hdrDone {
					err = r.fail(NotWellFormed, "end tag before the stream header", p)
					break loop
				}
				r.k = 0
				st = stEndName
				p++
			case c == '!':
				st = stBang
				p++
			case c == '?':
				if r.hdrDone || !r.declOK {
					err = r.fail(RestrictedXML, "processing instruction", p)
					break loop
				}
				r.k = 0
				st = stPI
				p++
			default:
				if !r.hdrDone {
					r.declOK = false
				}
				r.attrs = r.attrs[:0]
				r.tagName = p - r.start
				r.colon, r.needStart = -1, true
				st = stName // the name scanner checks c
			}

		case stBang:
			switch {
			case c == '-':
				st = stBangDash
				p++
			case c == '[':
				if len(r.open) == 0 {
					err = r.fail(NotWellFormed, "CDATA section at stream level", p)
					break loop
				}
				r.k = 0
				st = stCDOpen
				p++
			case c >= 'A' && c <= 'Z':
				err = r.fail(RestrictedXML, "document type declaration", p)
				break loop
			default:
				err = r.fail(NotWellFormed, "bad markup declaration", p)
				break loop
			}

		case stBangDash:
			if c == '-' {
				err = r.fail(RestrictedXML, "comment", p)
			} else {
				err = r.fail(NotWellFormed, "bad markup declaration", p)
			}
			break loop

		case stCDOpen:
			if c != "CDATA["[r.k] {
				err = r.fail(NotWellFormed, "bad CDATA section", p)
				break loop
			}
			p++
			if r.k++; r.k == 6 {
				r.brackets = 0
				st = stCDATA
			}

		case stCDATA:
			q := p
			for q < lim && class[buf[q]]&clCData != 0 {
				q++
			}
			if q > p {
				p, r.brackets = q, 0
				continue
			}
			switch {
			case c == ']':
				if r.brackets < 2 {
					r.brackets++
				}
				p++
			case c == '>':
				p++
				if r.brackets == 2 {
					st = stText
				}
				r.brackets = 0
			case c < 0x80:
				err = r.fail(NotWellFormed, "control character", p)
				break loop
			default:
				n := 0
				if n, err = r.char(buf[p:lim], p); err != nil || n == 0 {
					break loop
				}
				p += n
				r.brackets = 0
			}

		case stPI:
			if r.k < 3 {
				if c != "xml"[r.k] {
					err = r.fail(RestrictedXML, "processing instruction", p)
					break loop
				}
				r.k++
				p++
				continue
			}
			if !isSpace(c) {
				err = r.fail(RestrictedXML, "processing instruction", p)
				break loop
			}
			r.inDecl = true
			r.attrs = r.attrs[:0]
			r.tokEnd, r.sawSpace = p-r.start, true
			st = stTag
			p++

		case stName:
			var more bool
			if p, more, err = r.name(buf, p, lim); err != nil || more {
				break loop
			}
			c = buf[p]
			if r.needStart {
				err = r.fail(NotWellFormed, "bad element name", p)
				break loop
			}
			r.tagNameEnd, r.tagColon = p-r.start, r.colon
			switch {
			case isSpace(c):
				r.tokEnd, r.sawSpace = p-r.start, true
				st = stTag
				p++
			case c == '>':
				var ev event
				if ev, st, err = r.startTag(p, false); err != nil {
					break loop
				}
				p++
				if ev != evMore {
					r.pos, r.st = p, st
					return ev, nil
				}
			case c == '/':
				r.slash = p - r.start
				st = stEmptyEnd
				p++
			default:
				err = r.fail(NotWellFormed, "bad character in element name", p)
				break loop
			}

		case stTag:
			switch {
			case isSpace(c):
				r.sawSpace = true
				p++
			case c == '>' && !r.inDecl:
				var ev event
				if ev, st, err = r.startTag(p, false); err != nil {
					break loop
				}
				p++
				if ev != evMore {
					r.pos, r.st = p, st
					return ev, nil
				}
			case c == '/' && !r.inDecl:
				r.slash = p - r.start
				st = stEmptyEnd
				p++
			case c == '?' && r.inDecl:
				st = stDeclEnd
				p++
			default:
				if !r.sawSpace {
					err = r.fail(NotWellFormed, "no whitespace before attribute", p)
					break loop
				}
				if len(r.attrs) >= r.maxAttrs {
					err = r.fail(PolicyViolation, "too many attributes", p)
					break loop
				}
				r.attrs = append(r.attrs, attr{ws: int32(r.tokEnd), name: int32(p - r.start), colon: -1})
				r.colon, r.needStart = -1, true
				st = stAttrName
			}

		case stAttrName:
			var more bool
			if p, more, err = r.name(buf, p, lim); err != nil || more {
				break loop
			}
			c = buf[p]
			if r.needStart {
				err = r.fail(NotWellFormed, "bad attribute name", p)
				break loop
			}
			a := &r.attrs[len(r.attrs)-1]
			a.nameEnd, a.colon = int32(p-r.start), int32(r.colon)
			switch {
			case isSpace(c):
				st = stAttrEq
			case c == '=':
				st = stAttrQuote
			default:
				err = r.fail(NotWellFormed, "bad character in attribute name", p)
				break loop
			}
			p++

		case stAttrEq:
			switch {
			case isSpace(c):
			case c == '=':
				st = stAttrQuote
			default:
				err = r.fail(NotWellFormed, "attribute without value", p)
				break loop
			}
			p++

		case stAttrQuote:
			switch {
			case isSpace(c):
			case c == '\'' || c == '"':
				r.quote = c
				r.attrs[len(r.attrs)-1].val = int32(p + 1 - r.start)
				st = stAttrVal
			default:
				err = r.fail(NotWellFormed, "unquoted attribute value", p)
				break loop
			}
			p++

		case stAttrVal:
			for p < lim && class[buf[p]]&clAttr != 0 {
				p++
			}
			if p == lim {
				break loop
			}
			switch c = buf[p]; {
			case c == r.quote:
				a := &r.attrs[len(r.attrs)-1]
				a.valEnd = int32(p - r.start)
				p++
				r.tokEnd, r.sawSpace = p-r.start, false
				st = stTag
			case c == '\'' || c == '"':
				p++
			case c == '&':
				r.attrs[len(r.attrs)-1].flags |= fRef
				r.entStart, r.ret = p-r.start, stAttrVal
				st = stEntity
				p++
			case c == '\t' || c == '\n' || c == '\r':
				r.attrs[len(r.attrs)-1].flags |= fNorm
				p++
			case c == '<':
				err = r.fail(NotWellFormed, "'<' in attribute value", p)
				break loop
			case c < 0x80:
				err = r.fail(NotWellFormed, "control character", p)
				break loop
			default:
				n := 0
				if n, err = r.char(buf[p:lim], p); err != nil || n == 0 {
					break loop
				}
				p += n
			}

		case stEmptyEnd:
			if c != '>' {
				err = r.fail(NotWellFormed, "'/' not followed by '>'", p)
				break loop
			}
			var ev event
			if ev, st, err = r.startTag(p, true); err != nil {
				break loop
			}
			p++
			if ev != evMore {
				r.pos, r.st = p, st
				return ev, nil
			}

		case stDeclEnd:
			if c != '>' {
				err = r.fail(NotWellFormed, "bad XML declaration", p)
				break loop
			}
			if err = r.decl(); err != nil {
				break loop
			}
			p++
			r.start = p
			lim = r.limit()
			st = stProlog

		case stEndName:
			var want []byte
			if len(r.open) == 0 {
				want = r.streamName
			} else {
				o := r.open[len(r.open)-1]
				want = buf[r.start+o.name : r.start+o.nameEnd]
			}
			k := r.k
			for p < lim {
				c = buf[p]
				if c == '>' || isSpace(c) {
					break
				}
				if k >= len(want) || want[k] != c {
					err = r.fail(NotWellFormed, "end tag does not match start tag", p)
					break loop
				}
				k++
				p++
			}
			r.k = k
			if p == lim {
				break loop
			}
			if k != len(want) {
				err = r.fail(NotWellFormed, "end tag does not match start tag", p)
				break loop
			}
			st = stEndSpace

		case stEndSpace:
			if isSpace(c) {
				p++
				continue
			}
			if c != '>' {
				err = r.fail(NotWellFormed, "bad end tag", p)
				break loop
			}
			p++
			if len(r.open) == 0 {
				r.pos, r.st = p, stClosed
				return evClose, nil
			}
			o := r.open[len(r.open)-1]
			r.open = r.open[:len(r.open)-1]
			r.ns = r.ns[:o.nb]
			if len(r.open) == 0 {
				r.el.InnerEnd = r.ltPos
				r.pos, r.st = p, stTop
				return evElement, nil
			}
			r.brackets = 0
			st = stText

		case stText:
			q := p
			for q < lim && class[buf[q]]&clText != 0 {
				q++
			}
			if q > p {
				p, r.brackets = q, 0
				continue
			}
			switch {
			case c == '<':
				r.ltPos = p - r.start
				st = stLt
			case c == '&':
				r.entStart, r.ret = p-r.start, stText
				st = stEntity
			case c == ']':
				if r.brackets < 2 {
					r.brackets++
				}
				p++
				continue
			case c == '>':
				if r.brackets == 2 {
					err = r.fail(NotWellFormed, "']]>' in character data", p)
					break loop
				}
			case c < 0x80:
				err = r.fail(NotWellFormed, "control character", p)
				break loop
			default:
				n := 0
				if n, err = r.char(buf[p:lim], p); err != nil || n == 0 {
					break loop
				}
				p += n - 1
			}
			r.brackets = 0
			p++

		case stEntity:
			if c == '#' {
				r.entVal, r.entDigits = 0, 0
				st = stCharRef
				p++
				continue
			}
			r.colon, r.needStart = -1, true
			st = stEntName

		case stEntName:
			var more bool
			if p, more, err = r.name(buf, p, lim); err != nil || more {
				break loop
			}
			if buf[p] != ';' || r.needStart {
				err = r.fail(NotWellFormed, "bad entity reference", p)
				break loop
			}
			switch string(buf[r.start+r.entStart+1 : p]) {
			case "lt", "gt", "amp", "apos", "quot":
			default:
				err = r.fail(RestrictedXML, "entity reference", r.start+r.entStart)
				break loop
			}
			st = r.ret
			p++

		case stCharRef:
			if c == 'x' {
				st = stCharHex
				p++
			} else {
				st = stCharDec
			}

		case stCharDec, stCharHex:
			if c == ';' {
				if r.entDigits == 0 || !isXMLChar(r.entVal) {
					err = r.fail(NotWellFormed, "bad character reference", p)
					break loop
				}
				st = r.ret
				p++
				continue
			}
			d := hexVal(c)
			base := rune(16)
			if st == stCharDec {
				base = 10
			}
			if d < 0 || d >= base {
				err = r.fail(NotWellFormed, "bad character reference", p)
				break loop
			}
			if r.entVal = r.entVal*base + d; r.entVal > 0x10FFFF {
				r.entVal = 0x110000 // stays invalid, cannot overflow
			}
			r.entDigits++
			p++

		default: // stClosed
			err = r.fail(NotWellFormed, "data after the stream close tag", p)
			break loop
		}
	}
	r.pos, r.st = p, st
	if err != nil {
		return evMore, err
	}
	if r.end-r.start >= r.maxEl {
		// The unit has used up the limit and is not complete.
		return evMore, r.fail(PolicyViolation, "element larger than the limit", r.start+r.maxEl)
	}
	return evMore, nil
}

// name consumes name characters of a (qualified) name from buf[p:lim], tracking the colon. It returns the index of
// the first byte that ends the name, or more when a multi-byte character is incomplete.
func (r *Reader) name(buf []byte, p, lim int) (int, bool, *Error) {
	for p < lim {
		c := buf[p]
		if c < 0x80 {
			switch cl := class[c]; {
			case cl&clNameStart != 0:
				r.needStart = false
			case cl&clName != 0:
				if r.needStart {
					return p, false, r.fail(NotWellFormed, "bad name start character", p)
				}
			case c == ':':
				if r.needStart || r.colon >= 0 {
					return p, false, r.fail(NotWellFormed, "bad qualified name", p)
				}
				r.colon, r.needStart = p-r.start, true
			default:
				return p, false, nil
			}
			p++
			continue
		}
		rn, n, res := decodeChar(buf[p:lim])
		switch {
		case res == charMore:
			// Wait for the rest of the character. If it was the limit that cut it off, scan reports that.
			return p, true, nil
		case res != charOK:
			return p, false, r.fail(NotWellFormed, "invalid UTF-8 or character", p)
		case isNameStartRune(rn):
			r.needStart = false
		case isNameRune(rn):
			if r.needStart {
				return p, false, r.fail(NotWellFormed, "bad name start character", p)
			}
		default:
			return p, false, nil
		}
		p += n
	}
	return p, true, nil
}

// char checks the multi-byte character at the start of b (b[0] is at p). It returns its length, or 0 when it is
// incomplete: scan then waits for more bytes, or reports a policy-violation if the limit cut it off.
func (r *Reader) char(b []byte, p int) (int, *Error) {
	_, n, res := decodeChar(b)
	switch res {
	case charOK:
		return n, nil
	case charMore:
		return 0, nil
	case charBadUTF8:
		return 0, r.fail(NotWellFormed, "invalid UTF-8", p)
	}
	return 0, r.fail(NotWellFormed, "character not allowed in XML", p)
}
