package form

import "parley.im/parley/xmpp/stream"

// Append appends the form as an <x xmlns='jabber:x:data'/> element. Every attribute value and text is
// escaped with stream.EscapeString, so the output is well-formed whatever the strings hold (characters XML
// cannot carry become U+FFFD). Empty values are written (<value></value>): a field of a form may be
// present and empty. A field with no values, options or description is self-closing.
func (f *Form) Append(b []byte) []byte {
	b = append(b, "<x xmlns='"+NS+"'"...)
	if f.Type != "" {
		b = appendAttr(b, "type", f.Type)
	}
	b = append(b, '>')
	if f.Title != "" {
		b = appendText(b, "title", f.Title)
	}
	for _, in := range f.Instructions {
		b = appendText(b, "instructions", in)
	}
	for i := range f.Fields {
		b = f.Fields[i].append(b)
	}
	return append(b, "</x>"...)
}

// Build returns the form's bytes (Append to nil).
func (f *Form) Build() []byte { return f.Append(nil) }

func (fl *Field) append(b []byte) []byte {
	b = append(b, "<field"...)
	if fl.Var != "" {
		b = appendAttr(b, "var", fl.Var)
	}
	if fl.Type != "" {
		b = appendAttr(b, "type", fl.Type)
	}
	if fl.Label != "" {
		b = appendAttr(b, "label", fl.Label)
	}
	if fl.Desc == "" && !fl.Required && len(fl.Values) == 0 && len(fl.Options) == 0 && len(fl.Extra) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	if fl.Desc != "" {
		b = appendText(b, "desc", fl.Desc)
	}
	if fl.Required {
		b = append(b, "<required/>"...)
	}
	for _, v := range fl.Values {
		b = appendText(b, "value", v)
	}
	for _, o := range fl.Options {
		b = append(b, "<option"...)
		if o.Label != "" {
			b = appendAttr(b, "label", o.Label)
		}
		b = append(b, '>')
		b = appendText(b, "value", o.Value)
		b = append(b, "</option>"...)
	}
	b = append(b, fl.Extra...)
	return append(b, "</field>"...)
}

func appendAttr(b []byte, name, value string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, "='"...)
	b = stream.EscapeString(b, value)
	return append(b, '\'')
}

func appendText(b []byte, name, text string) []byte {
	b = append(b, '<')
	b = append(b, name...)
	b = append(b, '>')
	b = stream.EscapeString(b, text)
	b = append(b, "</"...)
	b = append(b, name...)
	return append(b, '>')
}
