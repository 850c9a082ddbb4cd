package form

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, fails only with its two errors, and that whatever it accepts
// survives Build and a second Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='with'><value>a@b</value></field></x>`,
		`<x xmlns='jabber:x:data' type='form'><title>t</title><instructions>i</instructions><field var='l' type='list-single' label='L'><desc>d</desc><required/><value>1</value><option label='One'><value>1</value></option></field></x>`,
		`<d:x xmlns:d='jabber:x:data'><d:field var='a'><d:value>&lt;&#x1F600;<![CDATA[]]]]></d:value></d:field></d:x>`,
		`<x xmlns='jabber:x:data'><reported><field var='r'/></reported><item><field var='r'><value>x</value></field></item></x>`,
		`<x xmlns='jabber:x:data'><field var='a' label='a&#9;b&#xD;'><value>line&#xA;two</value></field></x>`,
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxFields: 16, MaxValues: 64, MaxText: 256}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := Parse(raw, lim)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(got.Fields) > lim.MaxFields || got.count() > lim.MaxValues {
			t.Fatalf("limits not kept: %d fields, %d values", len(got.Fields), got.count())
		}
		b := got.Build()
		again, err := Parse(b, lim)
		if err != nil {
			t.Fatalf("built form does not parse: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(got, again) {
			t.Fatalf("round trip changed the form:\n%+v\n%+v\n%s", got, again, b)
		}
	})
}
