package pubsub

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"parley.im/parley/xmpp/stanza"
)

// Form is a submitted XEP-0004 data form, reduced to what pubsub reads: its type, FORM_TYPE and fields in
// document order.
//
// It is produced by parseForm, the package's one entry to form parsing. That is a minimal parser kept
// internal on purpose: when xmpp/form (XEP-0004, on branch wip/form) lands on main, parseForm is the one
// function to replace with a call to it.
type Form struct {
	Type     string  // the form's type attribute: "submit" or "cancel" ("form" and "result" are refused)
	FormType string  // the value of the hidden FORM_TYPE field, "" if absent
	Fields   []Field // every field except FORM_TYPE
}

// Field is one field of a submitted form.
type Field struct {
	Var    string
	Values []string
}

// Field returns the field named v and whether the form has it.
func (f *Form) Field(v string) (Field, bool) {
	for _, x := range f.Fields {
		if x.Var == v {
			return x, true
		}
	}
	return Field{}, false
}

// maxFormFields and maxFieldValues bound what one submitted form may hold; a node configuration has about a
// dozen fields, each with one value or a few (roster groups).
const (
	maxFormFields  = 64
	maxFieldValues = 256
)

// parseForm reads the <x xmlns='jabber:x:data'/> element raw, which the stream scanner has validated.
func parseForm(raw []byte) (*Form, *stanza.Error) {
	f := &Form{Type: stanza.ChildAttr(raw, "type")}
	switch f.Type {
	case "submit", "cancel":
	default:
		return nil, stanza.Errorf("bad-request", "data form type must be submit or cancel")
	}
	var bad *stanza.Error
	stanza.Children(inner(raw), func(local, ns string, el []byte) bool {
		if local != "field" || (ns != "" && ns != NSData) {
			return true // <title/>, <instructions/> and foreign elements carry nothing for us
		}
		fd := Field{Var: stanza.ChildAttr(el, "var")}
		if fd.Var == "" {
			bad = stanza.Errorf("bad-request", "data form field without var")
			return false
		}
		stanza.Children(inner(el), func(local, ns string, v []byte) bool {
			if local != "value" || (ns != "" && ns != NSData) {
				return true
			}
			if len(fd.Values) == maxFieldValues {
				bad = stanza.Errorf("policy-violation", "too many values in a data form field")
				return false
			}
			fd.Values = append(fd.Values, text(inner(v)))
			return true
		})
		if bad != nil {
			return false
		}
		if fd.Var == "FORM_TYPE" {
			if len(fd.Values) > 0 {
				f.FormType = fd.Values[0]
			}
			return true
		}
		for _, x := range f.Fields {
			if x.Var == fd.Var {
				bad = stanza.Errorf("bad-request", "data form field "+fd.Var+" given twice")
				return false
			}
		}
		if len(f.Fields) == maxFormFields {
			bad = stanza.Errorf("policy-violation", "too many data form fields")
			return false
		}
		f.Fields = append(f.Fields, fd)
		return true
	})
	if bad != nil {
		return nil, bad
	}
	return f, nil
}

// inner returns the content of the element raw, between its start and end tags ("" when self-closing).
func inner(raw []byte) []byte {
	end := stanza.StartTagEnd(raw)
	if end < 0 || end >= len(raw) || raw[end-1] == '/' {
		return nil
	}
	i := bytes.LastIndexByte(raw, '<')
	if i <= end {
		return nil
	}
	return raw[end+1 : i]
}

// text returns the character data of validated inner XML: entity and character references decoded, CDATA
// sections unwrapped, child elements skipped.
func text(b []byte) string {
	if bytes.IndexAny(b, "&<") < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == '<' && bytes.HasPrefix(b[i:], []byte("<![CDATA[")):
			k := bytes.Index(b[i+9:], []byte("]]>"))
			if k < 0 {
				return string(append(out, b[i+9:]...))
			}
			out = append(out, b[i+9:i+9+k]...)
			i += 9 + k + 3
		case c == '<':
			k := bytes.IndexByte(b[i:], '>')
			if k < 0 {
				return string(out)
			}
			i += k + 1
		case c == '&':
			k := bytes.IndexByte(b[i:], ';')
			if k < 0 {
				return string(append(out, b[i:]...))
			}
			out = appendEntity(out, b[i+1:i+k])
			i += k + 1
		default:
			out = append(out, c)
			i++
		}
	}
	return string(out)
}

// appendEntity appends what the reference &ent; stands for (the scanner allows only the predefined five and
// character references).
func appendEntity(out, ent []byte) []byte {
	switch string(ent) {
	case "lt":
		return append(out, '<')
	case "gt":
		return append(out, '>')
	case "amp":
		return append(out, '&')
	case "apos":
		return append(out, '\'')
	case "quot":
		return append(out, '"')
	}
	if len(ent) > 1 && ent[0] == '#' {
		var n uint64
		var err error
		if ent[1] == 'x' {
			n, err = strconv.ParseUint(string(ent[2:]), 16, 32)
		} else {
			n, err = strconv.ParseUint(string(ent[1:]), 10, 32)
		}
		if err == nil && utf8.ValidRune(rune(n)) {
			return utf8.AppendRune(out, rune(n))
		}
	}
	return out
}
