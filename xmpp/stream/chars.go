package stream

import (
	"bytes"
	"unicode/utf8"
)

// Byte classes for the scanner's fast loops. A byte in a class can be consumed in that context without any further
// check; everything else takes the slow path.
const (
	clText      uint8 = 1 << iota // character data: not '<', '&', ']', '>' and not a control or non-ASCII byte
	clAttr                        // attribute value: not '<', '&', quotes, and not a control or non-ASCII byte
	clCData                       // CDATA section: not ']', '>', and not a control or non-ASCII byte
	clNameStart                   // ASCII NameStartChar other than ':'
	clName                        // ASCII NameChar other than ':'
)

var class = func() (t [256]uint8) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = clText | clAttr | clCData
	}
	for _, c := range []byte("\t\n\r") {
		t[c] = clText | clCData
	}
	for _, c := range []byte("<&]>") {
		t[c] &^= clText
	}
	for _, c := range []byte("<&'\"") {
		t[c] &^= clAttr
	}
	for _, c := range []byte("]>") {
		t[c] &^= clCData
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= clNameStart | clName
		t[c-'a'+'A'] |= clNameStart | clName
	}
	t['_'] |= clNameStart | clName
	for _, c := range []byte("0123456789-.") {
		t[c] |= clName
	}
	return t
}()

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// isNameStartRune reports whether a non-ASCII rune is a NameStartChar (XML 1.0 fifth edition, production [4]).
func isNameStartRune(r rune) bool {
	switch {
	case r < 0xC0:
		return false
	case r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF, r >= 0x370 && r <= 0x37D,
		r >= 0x37F && r <= 0x1FFF, r == 0x200C, r == 0x200D, r >= 0x2070 && r <= 0x218F,
		r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF, r >= 0xF900 && r <= 0xFDCF,
		r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		return true
	}
	return false
}

// isNameRune reports whether a non-ASCII rune is a NameChar (production [4a]).
func isNameRune(r rune) bool {
	return isNameStartRune(r) || r == 0xB7 || r >= 0x300 && r <= 0x36F || r == 0x203F || r == 0x2040
}

// isXMLChar reports whether r matches the Char production (production [2]).
func isXMLChar(r rune) bool {
	switch {
	case r < 0x20:
		return r == '\t' || r == '\n' || r == '\r'
	case r <= 0xD7FF:
		return true
	case r < 0xE000:
		return false
	case r <= 0xFFFD:
		return true
	}
	return r >= 0x10000 && r <= 0x10FFFF
}

// Results of decodeChar besides success.
const (
	charOK = iota
	charMore
	charBadUTF8
	charNotXML
)

// decodeChar checks the multi-byte UTF-8 sequence at b[0]. It returns its length, or charMore when b holds only part
// of it: the scanner then stops before the lead byte and rescans at most three bytes once more arrive.
func decodeChar(b []byte) (rune, int, int) {
	if !utf8.FullRune(b) {
		return 0, 0, charMore
	}
	r, n := utf8.DecodeRune(b)
	if r == utf8.RuneError && n == 1 {
		return 0, 0, charBadUTF8
	}
	if r == 0xFFFE || r == 0xFFFF {
		return 0, 0, charNotXML
	}
	return r, n, charOK
}

// DecodeAttr appends the raw value v of an attribute (as NextAttr returns it) decoded as an XML processor
// reports it: references replaced and literal whitespace normalized to spaces.
func DecodeAttr(dst, v []byte) []byte { return decodeAttr(dst, v) }

// decodeAttr appends the value of an attribute as an XML processor reports it: entity and character references
// replaced and literal whitespace normalized to spaces (XML 1.0 section 3.3.3). v must already have passed the
// scanner; anything it does not recognize is copied through.
func decodeAttr(dst, v []byte) []byte {
	for i := 0; i < len(v); {
		c := v[i]
		switch c {
		case '\r':
			dst = append(dst, ' ')
			i++
			if i < len(v) && v[i] == '\n' { // a line end is one character after end-of-line handling
				i++
			}
		case '\t', '\n':
			dst = append(dst, ' ')
			i++
		case '&':
			j := bytes.IndexByte(v[i:], ';')
			if j < 0 {
				return append(dst, v[i:]...)
			}
			ent := v[i+1 : i+j]
			i += j + 1
			switch string(ent) {
			case "lt":
				dst = append(dst, '<')
			case "gt":
				dst = append(dst, '>')
			case "amp":
				dst = append(dst, '&')
			case "apos":
				dst = append(dst, '\'')
			case "quot":
				dst = append(dst, '"')
			default:
				if r, ok := charRef(ent); ok {
					dst = utf8.AppendRune(dst, r)
				} else {
					dst = append(dst, '&')
					dst = append(dst, ent...)
					dst = append(dst, ';')
				}
			}
		default:
			dst = append(dst, c)
			i++
		}
	}
	return dst
}

// charRef parses the inside of a character reference ("#65", "#x41").
func charRef(ent []byte) (rune, bool) {
	if len(ent) < 2 || ent[0] != '#' {
		return 0, false
	}
	ent = ent[1:]
	base := rune(10)
	if ent[0] == 'x' {
		base, ent = 16, ent[1:]
	}
	if len(ent) == 0 {
		return 0, false
	}
	var r rune
	for _, c := range ent {
		d := hexVal(c)
		if d < 0 || d >= base {
			return 0, false
		}
		r = r*base + d
		if r > 0x10FFFF {
			return 0, false
		}
	}
	return r, isXMLChar(r)
}

func hexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return rune(c-'A') + 10
	}
	return -1
}

// Escape appends s to dst escaped for use in an attribute value (either quote) or in character data. Tab, newline
// and carriage return become character references so that they survive attribute normalization; bytes that are not
// valid UTF-8 and characters XML does not allow become U+FFFD, so the output is always well-formed. It converts s
// to a string (a copy beyond 32 bytes); the server's builders use EscapeString.
func Escape(dst []byte, s []byte) []byte { return EscapeString(dst, string(s)) }

// EscapeString is Escape for a string: the form the server's builders use, which never allocates beyond
// growing dst. (A generic version over string and []byte allocated a copy of each string it appended.)
func EscapeString(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		// Copy the run of bytes that need no escaping at once.
		j := i
		for j < len(s) && class[s[j]]&clAttr != 0 && s[j] != '>' {
			j++
		}
		dst = append(dst, s[i:j]...)
		if i = j; i == len(s) {
			break
		}
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, s[i:i+n]...)
			}
			i += n
			continue
		}
		switch c {
		case '&':
			dst = append(dst, "&amp;"...)
		case '<':
			dst = append(dst, "&lt;"...)
		case '>':
			dst = append(dst, "&gt;"...)
		case '\'':
			dst = append(dst, "&apos;"...)
		case '"':
			dst = append(dst, "&quot;"...)
		case '\t':
			dst = append(dst, "&#x9;"...)
		case '\n':
			dst = append(dst, "&#xA;"...)
		case '\r':
			dst = append(dst, "&#xD;"...)
		default: // other control characters cannot appear in XML 1.0 at all
			dst = append(dst, "\uFFFD"...)
		}
		i++
	}
	return dst
}
