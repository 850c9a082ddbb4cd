// Package form implements XEP-0004: Data Forms, the <x xmlns='jabber:x:data'/> element that MUC room
// configuration, MAM queries, push publish options and disco#info extensions (XEP-0128) are written in.
//
// A Form is built by the server (Append writes it with every value escaped) or parsed from what a client sent
// (Parse, ParseAll, or a struct field of type *Form decoded by encoding/xml). Parsed input is untrusted: Limits
// bound the number of fields, values and options and the size of each text, so that a form cannot make the
// server hold more than a small multiple of what it parses. What a field means is the caller's business:
// this package knows the form types, the field types, FORM_TYPE (XEP-0068) and the boolean syntax.
package form

import (
	"errors"
	"strings"
)

// NS is the data forms namespace.
const NS = "jabber:x:data"

// Form types (XEP-0004 section 3.1).
const (
	TypeForm   = "form"   // the server asks for values
	TypeSubmit = "submit" // the client answers a form
	TypeCancel = "cancel" // the client declines to answer
	TypeResult = "result" // data returned, as in disco#info extensions
)

// Field types (XEP-0004 section 3.3). A field without a type is text-single.
const (
	Boolean     = "boolean"
	Fixed       = "fixed"
	Hidden      = "hidden"
	JIDMulti    = "jid-multi"
	JIDSingle   = "jid-single"
	ListMulti   = "list-multi"
	ListSingle  = "list-single"
	TextMulti   = "text-multi"
	TextPrivate = "text-private"
	TextSingle  = "text-single"
)

// FormType is the var of the hidden field that names what a form is for (XEP-0068).
const FormType = "FORM_TYPE"

// Form is one data form. Multi-item results (<reported/> and <item/>) are not modelled: Parse skips them.
type Form struct {
	// Type is form, submit, cancel or result; Parse keeps what the sender wrote, "" when it wrote none.
	Type         string
	Title        string
	Instructions []string
	Fields       []Field
}

// Field is one field of a form.
type Field struct {
	Var      string
	Type     string // one of the field type constants, "" for the default (text-single)
	Label    string
	Desc     string
	Required bool
	Values   []string
	Options  []Option // for list-single and list-multi
	// Extra is XML the server writes inside the field after its values and options, such as a XEP-0122
	// <validate/>. Append copies it as it is, so it must be well-formed and never come from a client; Parse
	// leaves it empty.
	Extra []byte
}

// Option is one choice of a list field.
type Option struct {
	Label, Value string
}

// New returns a form of type typ whose first field is the hidden FORM_TYPE field with value formType.
func New(typ, formType string) *Form {
	return &Form{Type: typ, Fields: []Field{{Var: FormType, Type: Hidden, Values: []string{formType}}}}
}

// Add appends a field and returns f, so that a form can be written as one expression.
func (f *Form) Add(fl Field) *Form {
	f.Fields = append(f.Fields, fl)
	return f
}

// Field returns the first field named v, or nil.
func (f *Form) Field(v string) *Field {
	for i := range f.Fields {
		if f.Fields[i].Var == v {
			return &f.Fields[i]
		}
	}
	return nil
}

// FormType returns the value of the FORM_TYPE field, whitespace trimmed; "" when there is none or it does
// not hold exactly one value.
func (f *Form) FormType() string {
	fl := f.Field(FormType)
	if fl == nil || len(fl.Values) != 1 {
		return ""
	}
	return strings.TrimSpace(fl.Values[0])
}

// Value returns the first value of the field, "" when it has none.
func (fl *Field) Value() string {
	if len(fl.Values) == 0 {
		return ""
	}
	return fl.Values[0]
}

// Bool returns the field's value as a boolean. A field without a value is false (XEP-0004 section 3.3); more
// than one value, or one that is not a boolean, is invalid (ok false).
func (fl *Field) Bool() (v, ok bool) {
	switch len(fl.Values) {
	case 0:
		return false, true
	case 1:
		return ParseBool(fl.Values[0])
	}
	return false, false
}

// ParseBool reads an XEP-0004 boolean: "1" or "true", "0" or "false" (the xs:boolean lexical space),
// surrounding whitespace ignored. ok is false for anything else.
func ParseBool(s string) (v, ok bool) {
	switch strings.TrimSpace(s) {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

// FormatBool returns "1" or "0", the form XEP-0004's examples use.
func FormatBool(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// Errors of Parse. Both are wrapped with detail; test with errors.Is.
var (
	// ErrMalformed is returned for input that is not XML or not a data form.
	ErrMalformed = errors.New("form: malformed data form")
	// ErrTooLarge is returned when a form exceeds its Limits.
	ErrTooLarge = errors.New("form: data form too large")
)
