package form

import (
	"encoding/xml"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestBuild(t *testing.T) {
	f := New(TypeForm, "urn:example:config").
		Add(Field{Var: "name", Type: TextSingle, Label: "Name <&'\">", Values: []string{"a&b"}}).
		Add(Field{Var: "empty", Type: TextSingle, Values: []string{""}}).
		Add(Field{Var: "none", Type: JIDSingle}).
		Add(Field{Var: "pick", Type: ListSingle, Label: "Pick", Values: []string{"1"},
			Options: []Option{{Label: "One", Value: "1"}, {Value: "2"}}}).
		Add(Field{Var: "ids", Type: ListMulti, Extra: []byte("<validate xmlns='http://jabber.org/protocol/xdata-validate'/>")})
	f.Title, f.Instructions = "T", []string{"line\tone"}
	want := "<x xmlns='jabber:x:data' type='form'><title>T</title><instructions>line&#x9;one</instructions>" +
		"<field var='FORM_TYPE' type='hidden'><value>urn:example:config</value></field>" +
		"<field var='name' type='text-single' label='Name &lt;&amp;&apos;&quot;&gt;'><value>a&amp;b</value></field>" +
		"<field var='empty' type='text-single'><value></value></field>" +
		"<field var='none' type='jid-single'/>" +
		"<field var='pick' type='list-single' label='Pick'><value>1</value><option label='One'><value>1</value></option><option><value>2</value></option></field>" +
		"<field var='ids' type='list-multi'><validate xmlns='http://jabber.org/protocol/xdata-validate'/></field></x>"
	if got := string(f.Build()); got != want {
		t.Errorf("Build:\n got %s\nwant %s", got, want)
	}
	if got := string(f.Append([]byte("<q>"))); got != "<q>"+want {
		t.Errorf("Append does not extend its buffer: %s", got)
	}
}

// Characters XML cannot carry never make a form ill-formed.
func TestBuildIsWellFormed(t *testing.T) {
	f := &Form{Type: TypeResult, Fields: []Field{{Var: "a\x00", Values: []string{"\xff\x01 ]]> </x>"}}}}
	var v struct{}
	if err := xml.Unmarshal(f.Build(), &v); err != nil {
		t.Fatalf("%s: %v", f.Build(), err)
	}
	g, err := Parse(f.Build(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Fields[0].Values[0]; got != "\uFFFD\uFFFD ]]> </x>" {
		t.Errorf("value = %q", got)
	}
}

func TestParse(t *testing.T) {
	raw := `<x xmlns='jabber:x:data' type='submit'><title>t</title><instructions>i1</instructions><instructions>i2</instructions>` +
		`<field var='FORM_TYPE' type='hidden'><value> urn:a </value></field>` +
		`<field var='b' type='boolean' label='B'><desc>d</desc><required/><value>true</value></field>` +
		`<field var='m'><value>1</value><value>2</value><validate xmlns='http://jabber.org/protocol/xdata-validate'><open/></validate></field>` +
		`<field var='l' type='list-single'><option label='O'><value>v</value></option></field>` +
		`<reported><field var='r'/></reported><item><field var='r'><value>x</value></field></item>` +
		`<other xmlns='urn:ext'><field var='not-ours'/></other>` +
		`<field var='esc'><value>&lt;&amp;&#x41;<![CDATA[<c>]]></value></field></x>`
	f, err := Parse([]byte(raw), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := &Form{Type: TypeSubmit, Title: "t", Instructions: []string{"i1", "i2"}, Fields: []Field{
		{Var: FormType, Type: Hidden, Values: []string{" urn:a "}},
		{Var: "b", Type: Boolean, Label: "B", Desc: "d", Required: true, Values: []string{"true"}},
		{Var: "m", Values: []string{"1", "2"}},
		{Var: "l", Type: ListSingle, Options: []Option{{Label: "O", Value: "v"}}},
		{Var: "esc", Values: []string{"<&A<c>"}},
	}}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", f, want)
	}
	if f.FormType() != "urn:a" {
		t.Errorf("FormType = %q", f.FormType())
	}
	if v, ok := f.Field("b").Bool(); !v || !ok {
		t.Errorf("b = %v, %v", v, ok)
	}
	if f.Field("missing") != nil || f.Field("m").Value() != "1" {
		t.Error("Field lookups")
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		lim       Limits
		want      error
	}{
		{"not xml", `<x xmlns='jabber:x:data'><field>`, Limits{}, ErrMalformed},
		{"other namespace", `<x xmlns='urn:other'/>`, Limits{}, ErrMalformed},
		{"no namespace", `<x/>`, Limits{}, ErrMalformed},
		{"element in a value", `<x xmlns='jabber:x:data'><field var='a'><value><b/></value></field></x>`, Limits{}, ErrMalformed},
		{"empty", ``, Limits{}, ErrMalformed},
		{"fields", `<x xmlns='jabber:x:data'>` + strings.Repeat(`<field var='a'/>`, 3) + `</x>`, Limits{MaxFields: 2}, ErrTooLarge},
		{"default fields", `<x xmlns='jabber:x:data'>` + strings.Repeat(`<field var='a'/>`, DefaultLimits.MaxFields+1) + `</x>`, Limits{}, ErrTooLarge},
		{"values", `<x xmlns='jabber:x:data'><field var='a'>` + strings.Repeat(`<value/>`, 3) + `</field></x>`, Limits{MaxValues: 2}, ErrTooLarge},
		{"options count as values", `<x xmlns='jabber:x:data'><field var='a'><value/>` + strings.Repeat(`<option><value/></option>`, 2) + `</field></x>`, Limits{MaxValues: 2}, ErrTooLarge},
		{"long value", `<x xmlns='jabber:x:data'><field var='a'><value>` + strings.Repeat("v", 11) + `</value></field></x>`, Limits{MaxText: 10}, ErrTooLarge},
		{"long value in pieces", `<x xmlns='jabber:x:data'><field var='a'><value>vvvvvv<![CDATA[vvvvv]]></value></field></x>`, Limits{MaxText: 10}, ErrTooLarge},
		{"long label", `<x xmlns='jabber:x:data'><field var='a' label='` + strings.Repeat("l", 11) + `'/></x>`, Limits{MaxText: 10}, ErrTooLarge},
	} {
		_, err := Parse([]byte(tc.raw), tc.lim)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// A form inside another element may use a prefix declared there.
func TestParseAll(t *testing.T) {
	raw := `<enable xmlns='urn:xmpp:push:0' xmlns:d='jabber:x:data'><d:x type='submit'><d:field var='a'><d:value>1</d:value></d:field></d:x>` +
		`<other><x xmlns='jabber:x:data'/></other><x xmlns='jabber:x:data' type='result'/></enable>`
	forms, err := ParseAll([]byte(raw), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(forms) != 2 || forms[0].Type != TypeSubmit || forms[0].Field("a").Value() != "1" || forms[1].Type != TypeResult {
		t.Fatalf("forms = %+v", forms)
	}
	forms, err = ParseAll([]byte(`<query xmlns='urn:a'/>`), Limits{})
	if err != nil || len(forms) != 0 {
		t.Fatalf("no forms: %v, %v", forms, err)
	}
	// The budget is shared by all forms of the element.
	two := `<q><x xmlns='jabber:x:data'><field var='a'/><field var='b'/></x><x xmlns='jabber:x:data'><field var='c'/></x></q>`
	if _, err := ParseAll([]byte(two), Limits{MaxFields: 2}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("shared budget: err = %v", err)
	}
}

func TestUnmarshalXML(t *testing.T) {
	var q struct {
		Forms []*Form `xml:"jabber:x:data x"`
	}
	raw := `<query xmlns:d='jabber:x:data'><d:x type='submit'><d:field var='a'><d:value>1</d:value></d:field></d:x></query>`
	if err := xml.Unmarshal([]byte(raw), &q); err != nil {
		t.Fatal(err)
	}
	if len(q.Forms) != 1 || q.Forms[0].Field("a").Value() != "1" {
		t.Fatalf("forms = %+v", q.Forms)
	}
	big := `<query><x xmlns='jabber:x:data'>` + strings.Repeat(`<field/>`, DefaultLimits.MaxFields+1) + `</x></query>`
	if err := xml.Unmarshal([]byte(big), &q); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the default limits: err = %v", err)
	}
}

func TestBool(t *testing.T) {
	for _, tc := range []struct {
		values []string
		v, ok  bool
	}{
		{nil, false, true},
		{[]string{"1"}, true, true},
		{[]string{"true"}, true, true},
		{[]string{" true\n"}, true, true},
		{[]string{"0"}, false, true},
		{[]string{"false"}, false, true},
		{[]string{"yes"}, false, false},
		{[]string{"TRUE"}, false, false},
		{[]string{""}, false, false},
		{[]string{"1", "1"}, false, false},
	} {
		fl := Field{Values: tc.values}
		if v, ok := fl.Bool(); v != tc.v || ok != tc.ok {
			t.Errorf("Bool(%q) = %v, %v; want %v, %v", tc.values, v, ok, tc.v, tc.ok)
		}
	}
	if FormatBool(true) != "1" || FormatBool(false) != "0" {
		t.Error("FormatBool")
	}
}

func TestFormTypeNeedsOneValue(t *testing.T) {
	f := &Form{Fields: []Field{{Var: FormType, Values: []string{"a", "b"}}}}
	if f.FormType() != "" {
		t.Errorf("FormType = %q", f.FormType())
	}
}
