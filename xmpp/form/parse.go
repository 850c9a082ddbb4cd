package form

import (
	"bytes"
	"encoding/xml"
	"fmt"
)

// Limits bound what Parse accepts. Zero fields take the defaults.
type Limits struct {
	// MaxFields is the number of <field/> elements. Default 256.
	MaxFields int
	// MaxValues is the number of values, options and instructions of the whole form together. Default 4096:
	// a MAM query may list many ids.
	MaxValues int
	// MaxText is the bytes of one value, label, description, title or instruction. Default 16384.
	MaxText int
}

// DefaultLimits are the limits of a zero Limits, and of a *Form decoded by encoding/xml. A form arrives in a
// stanza the stream reader already bounded (256 KiB by default); these keep what one form may hold well
// below what its bytes would allow.
var DefaultLimits = Limits{MaxFields: 256, MaxValues: 4096, MaxText: 16384}

func (l Limits) withDefaults() Limits {
	if l.MaxFields <= 0 {
		l.MaxFields = DefaultLimits.MaxFields
	}
	if l.MaxValues <= 0 {
		l.MaxValues = DefaultLimits.MaxValues
	}
	if l.MaxText <= 0 {
		l.MaxText = DefaultLimits.MaxText
	}
	return l
}

// Parse parses the bytes of one <x xmlns='jabber:x:data'/> element. The element must declare its namespace
// itself; a form inside a larger element that may lean on prefixes declared outside it is parsed with
// ParseAll on that element, or as a struct field. Errors wrap ErrMalformed or ErrTooLarge.
func Parse(raw []byte, lim Limits) (*Form, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != NS || t.Name.Local != "x" {
				return nil, fmt.Errorf("%w: root is {%s}%s", ErrMalformed, t.Name.Space, t.Name.Local)
			}
			return decode(d, t, lim.withDefaults())
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("%w: text before the form", ErrMalformed)
			}
		}
	}
}

// ParseAll parses the data forms that are direct children of the element raw (a MAM <query/>, a push
// <enable/>...), with prefixes declared on raw in scope. Forms share one budget of Limits.
func ParseAll(raw []byte, lim Limits) ([]*Form, error) {
	lim = lim.withDefaults()
	d := xml.NewDecoder(bytes.NewReader(raw))
	var forms []*Form
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Space == NS && t.Name.Local == "x" {
				f, err := decode(d, t, lim)
				if err != nil {
					return nil, err
				}
				forms = append(forms, f)
				lim.MaxFields -= len(f.Fields)
				lim.MaxValues -= f.count()
				depth--
			} else if depth == 2 {
				if err := d.Skip(); err != nil {
					return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
				}
				depth--
			}
		case xml.EndElement:
			if depth--; depth == 0 {
				if forms == nil {
					forms = []*Form{}
				}
				return forms, nil
			}
		}
	}
}

// UnmarshalXML decodes a form with DefaultLimits, so that a struct field `xml:"jabber:x:data x"` of type *Form
// or []*Form is bounded like Parse.
func (f *Form) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	g, err := decode(d, start, DefaultLimits)
	if err != nil {
		return err
	}
	*f = *g
	return nil
}

// count is what the form spends of MaxValues.
func (f *Form) count() int {
	n := len(f.Instructions)
	for i := range f.Fields {
		n += len(f.Fields[i].Values) + len(f.Fields[i].Options)
	}
	return n
}

// parser holds the budget left while one form is decoded.
type parser struct {
	d              *xml.Decoder
	fields, values int
	maxText        int
}

// decode reads the content of the <x/> element start, whose start tag d has just returned.
func decode(d *xml.Decoder, start xml.StartElement, lim Limits) (*Form, error) {
	p := &parser{d: d, fields: lim.MaxFields, values: lim.MaxValues, maxText: lim.MaxText}
	f := &Form{Type: attr(start, "type")}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return f, nil
		case xml.StartElement:
			if t.Name.Space != NS {
				// Extensions of a form (XEP-0221 media, ...) are no concern of this package.
				err = p.skip()
				break
			}
			switch t.Name.Local {
			case "title":
				f.Title, err = p.text()
			case "instructions":
				var s string
				if s, err = p.value(); err == nil {
					f.Instructions = append(f.Instructions, s)
				}
			case "field":
				if p.fields--; p.fields < 0 {
					return nil, fmt.Errorf("%w: more than %d fields", ErrTooLarge, lim.MaxFields)
				}
				var fl Field
				if fl, err = p.field(t); err == nil {
					f.Fields = append(f.Fields, fl)
				}
			default: // <reported/> and <item/> of multi-item results
				err = p.skip()
			}
		}
		if err != nil {
			return nil, err
		}
	}
}

func (p *parser) field(start xml.StartElement) (Field, error) {
	fl := Field{Var: attr(start, "var"), Type: attr(start, "type"), Label: attr(start, "label")}
	if err := p.check(fl.Label); err != nil {
		return fl, err
	}
	for {
		tok, err := p.d.Token()
		if err != nil {
			return fl, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return fl, nil
		case xml.StartElement:
			if t.Name.Space != NS {
				err = p.skip() // XEP-0122 <validate/>, XEP-0221 <media/>
				break
			}
			switch t.Name.Local {
			case "value":
				var s string
				if s, err = p.value(); err == nil {
					fl.Values = append(fl.Values, s)
				}
			case "option":
				var o Option
				if o, err = p.option(t); err == nil {
					fl.Options = append(fl.Options, o)
				}
			case "desc":
				fl.Desc, err = p.text()
			case "required":
				fl.Required = true
				err = p.skip()
			default:
				err = p.skip()
			}
		}
		if err != nil {
			return fl, err
		}
	}
}

func (p *parser) option(start xml.StartElement) (Option, error) {
	if p.values--; p.values < 0 {
		return Option{}, fmt.Errorf("%w: too many values", ErrTooLarge)
	}
	o := Option{Label: attr(start, "label")}
	if err := p.check(o.Label); err != nil {
		return o, err
	}
	seen := false
	for {
		tok, err := p.d.Token()
		if err != nil {
			return o, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return o, nil
		case xml.StartElement:
			if t.Name.Space == NS && t.Name.Local == "value" && !seen {
				seen = true
				o.Value, err = p.text()
			} else {
				err = p.skip()
			}
		}
		if err != nil {
			return o, err
		}
	}
}

// value reads a text element that counts against MaxValues.
func (p *parser) value() (string, error) {
	if p.values--; p.values < 0 {
		return "", fmt.Errorf("%w: too many values", ErrTooLarge)
	}
	return p.text()
}

// text reads the character data of the element just started, up to its end; child elements are an error
// (values are text).
func (p *parser) text() (string, error) {
	var b []byte
	for {
		tok, err := p.d.Token()
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(b)+len(t) > p.maxText {
				return "", fmt.Errorf("%w: a text longer than %d bytes", ErrTooLarge, p.maxText)
			}
			b = append(b, t...)
		case xml.StartElement:
			return "", fmt.Errorf("%w: element <%s/> in a text", ErrMalformed, t.Name.Local)
		case xml.EndElement:
			return string(b), nil
		}
	}
}

func (p *parser) check(s string) error {
	if len(s) > p.maxText {
		return fmt.Errorf("%w: a text longer than %d bytes", ErrTooLarge, p.maxText)
	}
	return nil
}

func (p *parser) skip() error {
	if err := p.d.Skip(); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

func attr(start xml.StartElement, name string) string {
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}
