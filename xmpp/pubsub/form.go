package pubsub

import (
	"bytes"
	"errors"

	"parley.im/parley/xmpp/form"
	"parley.im/parley/xmpp/stanza"
)

// formLimits bound a submitted form in a pubsub request: a node configuration has about a dozen fields,
// each with one value or a few (roster groups).
var formLimits = form.Limits{MaxFields: 64, MaxValues: 512, MaxText: 4096}

// parseForms returns the single submitted data form among the children of the element el (a
// <publish-options/>, a <configure/>), nil if there is none. Only the pubsub meaning is checked here, the
// syntax is xmpp/form's: the form must be of type submit or cancel and name each var once.
func parseForms(el []byte) (*form.Form, *stanza.Error) {
	forms, err := form.ParseAll(el, formLimits)
	switch {
	case errors.Is(err, form.ErrTooLarge):
		return nil, stanza.Errorf("policy-violation", "data form too large")
	case err != nil:
		return nil, stanza.Errorf("bad-request", "malformed data form")
	case len(forms) == 0:
		return nil, nil
	case len(forms) > 1:
		return nil, stanza.Errorf("bad-request", "more than one data form")
	}
	f := forms[0]
	if f.Type != form.TypeSubmit && f.Type != form.TypeCancel {
		return nil, stanza.Errorf("bad-request", "data form type must be submit or cancel")
	}
	for i, fl := range f.Fields {
		if fl.Var == "" {
			return nil, stanza.Errorf("bad-request", "data form field without var")
		}
		for _, prev := range f.Fields[:i] {
			if prev.Var == fl.Var {
				return nil, stanza.Errorf("bad-request", "data form field "+fl.Var+" given twice")
			}
		}
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
