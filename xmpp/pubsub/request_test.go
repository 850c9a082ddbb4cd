package pubsub

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"parley.im/parley/xmpp/form"
	"parley.im/parley/xmpp/stanza"
)

const (
	open_  = "<pubsub xmlns='" + NS + "'>"
	owner_ = "<pubsub xmlns='" + NSOwner + "'>"
	close_ = "</pubsub>"
)

// condition returns the defined and the pubsub#errors condition of err, which must be a *stanza.Error.
func condition(t *testing.T, err error) (string, string) {
	t.Helper()
	var se *stanza.Error
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want a *stanza.Error", err, err)
	}
	app := ""
	if len(se.App) > 0 {
		if !bytes.Contains(se.App, []byte("xmlns='"+NSErrors+"'")) {
			t.Errorf("application condition %s not in %s", se.App, NSErrors)
		}
		app = strings.TrimPrefix(string(se.App[:bytes.IndexByte(se.App, ' ')]), "<")
	}
	return se.Condition, app
}

func mustParse(t *testing.T, raw string) *Request {
	t.Helper()
	r, err := ParseRequest([]byte(raw), Limits{})
	if err != nil {
		t.Fatalf("ParseRequest(%s): %v", raw, err)
	}
	return r
}

func TestParsePublishOMEMO(t *testing.T) {
	// Odd but valid spelling: double quotes, a character reference, CDATA, whitespace and a prefixed child
	// whose prefix the payload declares. All of it must come back untouched.
	payload := "<devices xmlns=\"urn:xmpp:omemo:2\" xmlns:x='urn:example:x'>\n  <device id='12345' label='Gajim &#x263A; &amp; co'/>" +
		"<x:ext><![CDATA[<not a tag>]]></x:ext>\t</devices>"
	raw := open_ + "<publish node='urn:xmpp:omemo:2:devices'><item id='current'>" + payload + "</item></publish>" +
		"<publish-options><x xmlns='jabber:x:data' type='submit'>" +
		"<field var='FORM_TYPE' type='hidden'><value>" + NSPublishOptions + "</value></field>" +
		"<field var='pubsub#access_model'><value>open</value></field>" +
		"<field var='pubsub#max_items'><value>max</value></field></x></publish-options>" + close_
	in := []byte(raw)
	r, err := ParseRequest(in, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Op != OpPublish || r.Node != NodeOMEMODevices || !r.ValidFor("set") || r.ValidFor("get") {
		t.Errorf("request = %+v", r)
	}
	if len(r.Items) != 1 || r.Items[0].ID != "current" || string(r.Items[0].Payload) != payload {
		t.Fatalf("items = %+v, want the payload byte for byte:\n%s", r.Items, payload)
	}
	if r.Options == nil || r.Options.Type != "submit" || r.Options.FormType() != NSPublishOptions {
		t.Fatalf("options = %+v", r.Options)
	}
	want := []form.Field{{Var: form.FormType, Values: []string{NSPublishOptions}},
		{Var: FieldAccessModel, Values: []string{"open"}}, {Var: FieldMaxItems, Values: []string{"max"}}}
	if !slices.EqualFunc(r.Options.Fields, want, func(a, b form.Field) bool {
		return a.Var == b.Var && slices.Equal(a.Values, b.Values)
	}) {
		t.Errorf("option fields = %+v, want %+v", r.Options.Fields, want)
	}
	// The request owns its bytes.
	for i := range in {
		in[i] = 'X'
	}
	if string(r.Items[0].Payload) != payload {
		t.Errorf("payload changed with the input: %q", r.Items[0].Payload)
	}
}

func TestParsePublishVariants(t *testing.T) {
	// Legacy OMEMO bundle node, no item id (the server assigns one), whitespace around everything.
	r := mustParse(t, "\n "+open_+"\n<publish node='eu.siacs.conversations.axolotl.bundles:4223'>\n"+
		"<item><bundle xmlns='eu.siacs.conversations.axolotl'/></item>\n</publish>\n"+close_+"\n")
	if r.Node != BundlesLegacyPrefix+"4223" || len(r.Items) != 1 || r.Items[0].ID != "" ||
		string(r.Items[0].Payload) != "<bundle xmlns='eu.siacs.conversations.axolotl'/>" || r.Options != nil {
		t.Errorf("request = %+v", r)
	}
	// A prefixed pubsub element is the same request.
	r = mustParse(t, "<ps:pubsub xmlns:ps='"+NS+"'><ps:publish node='n'><ps:item id='a'><p xmlns='urn:p'/></ps:item></ps:publish></ps:pubsub>")
	if r.Op != OpPublish || r.Node != "n" || len(r.Items) != 1 || r.Items[0].ID != "a" {
		t.Errorf("prefixed request = %+v", r)
	}
	// Foreign extension elements are skipped.
	r = mustParse(t, open_+"<publish node='n'><item id='a'><p xmlns='urn:p'/></item></publish><ext xmlns='urn:ext'/>"+close_)
	if r.Op != OpPublish {
		t.Errorf("request with an extension = %+v", r)
	}
}

func TestParseOtherRequests(t *testing.T) {
	r := mustParse(t, open_+"<retract node='urn:xmpp:avatar:data' notify='true'><item id='a'/><item id='b'/></retract>"+close_)
	if r.Op != OpRetract || r.Node != "urn:xmpp:avatar:data" || !r.Notify || len(r.Items) != 2 || r.Items[1].ID != "b" ||
		r.Items[0].Payload != nil || !r.ValidFor("set") {
		t.Errorf("retract = %+v", r)
	}
	r = mustParse(t, open_+"<retract node='n' notify='0'><item id='a'/></retract>"+close_)
	if r.Notify {
		t.Errorf("retract notify='0' = %+v", r)
	}
	r = mustParse(t, open_+"<items node='urn:xmpp:omemo:2:bundles' max_items='2'/>"+close_)
	if r.Op != OpItems || r.MaxItems != 2 || len(r.Items) != 0 || !r.ValidFor("get") || r.ValidFor("set") {
		t.Errorf("items = %+v", r)
	}
	r = mustParse(t, open_+"<items node='urn:xmpp:omemo:2:bundles'><item id='31415'/><item id='2718'/></items>"+close_)
	if r.MaxItems != 0 || len(r.Items) != 2 || r.Items[0].ID != "31415" {
		t.Errorf("items by id = %+v", r)
	}
	r = mustParse(t, open_+"<subscribe node='n' jid='bob@example.net/x'/>"+close_)
	if r.Op != OpSubscribe || r.JID != "bob@example.net/x" {
		t.Errorf("subscribe = %+v", r)
	}
	r = mustParse(t, open_+"<unsubscribe node='n' jid='bob@example.net' subid='s1'/>"+close_)
	if r.Op != OpUnsubscribe || r.JID != "bob@example.net" || r.SubID != "s1" {
		t.Errorf("unsubscribe = %+v", r)
	}
	r = mustParse(t, open_+"<create node='n'/><configure><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='pubsub#max_items'><value>5</value></field></x></configure>"+close_)
	if r.Op != OpCreate || r.Config == nil || len(r.Config.Fields) != 1 {
		t.Errorf("create = %+v", r)
	}
	r = mustParse(t, owner_+"<configure node='n'/>"+close_)
	if r.Op != OpConfigure || r.Config != nil || !r.ValidFor("get") || r.ValidFor("set") {
		t.Errorf("configure get = %+v", r)
	}
	r = mustParse(t, owner_+"<configure node='n'><x xmlns='jabber:x:data' type='submit'><title>t</title>"+
		"<field var='pubsub#roster_groups_allowed'><value>friends &amp; family</value><value>work</value></field>"+
		"</x></configure>"+close_)
	if r.Op != OpConfigure || r.Config == nil || !r.ValidFor("set") || r.ValidFor("get") {
		t.Fatalf("configure set = %+v", r)
	}
	if f := r.Config.Field(FieldRosterGroups); f == nil || !slices.Equal(f.Values, []string{"friends & family", "work"}) {
		t.Errorf("roster groups field = %+v", f)
	}
	r = mustParse(t, owner_+"<delete node='n'/>"+close_)
	if r.Op != OpDelete || r.Node != "n" {
		t.Errorf("delete = %+v", r)
	}
	r = mustParse(t, owner_+"<purge node='n'/>"+close_)
	if r.Op != OpPurge || r.Node != "n" {
		t.Errorf("purge = %+v", r)
	}
}

func TestParseRequestErrors(t *testing.T) {
	many := open_ + "<items node='n'>" + strings.Repeat("<item id='x'/>", 129) + "</items>" + close_
	for _, c := range []struct {
		name, raw string
		cond, app string
	}{
		{"not xml", "<pubsub", "bad-request", ""},
		{"empty", "", "bad-request", ""},
		{"other namespace", "<pubsub xmlns='urn:other'><items node='n'/></pubsub>", "bad-request", ""},
		{"no namespace", "<pubsub><items node='n'/></pubsub>", "bad-request", ""},
		{"not pubsub", "<query xmlns='" + NS + "'/>", "bad-request", ""},
		{"two elements", open_ + "<items node='n'/>" + close_ + open_ + close_, "bad-request", ""},
		{"trailing text", open_ + "<items node='n'/>" + close_ + "x", "bad-request", ""},
		{"comment", open_ + "<!-- c --><items node='n'/>" + close_, "bad-request", ""},
		{"processing instruction", open_ + "<?pi x?><items node='n'/>" + close_, "bad-request", ""},
		{"undeclared prefix", open_ + "<x:items node='n'/>" + close_, "bad-request", ""},
		{"unknown entity", open_ + "<items node='&foo;'/>" + close_, "bad-request", ""},
		{"too deep", open_ + "<publish node='n'><item><p xmlns='urn:p'>" + strings.Repeat("<a>", 40) +
			strings.Repeat("</a>", 40) + "</p></item></publish>" + close_, "bad-request", ""},
		{"too large", open_ + "<items node='" + strings.Repeat("n", 300<<10) + "'/>" + close_, "policy-violation", ""},
		{"no action", open_ + close_, "bad-request", ""},
		{"two actions", open_ + "<items node='n'/><retract node='n'><item id='a'/></retract>" + close_, "bad-request", ""},
		{"unsupported", open_ + "<affiliations/>" + close_, "feature-not-implemented", ""},
		{"owner op in pubsub namespace", open_ + "<purge node='n'/>" + close_, "feature-not-implemented", ""},
		{"pubsub op in owner namespace", owner_ + "<items node='n'/>" + close_, "feature-not-implemented", ""},
		{"publish without node", open_ + "<publish><item><p xmlns='urn:p'/></item></publish>" + close_, "bad-request", "nodeid-required"},
		{"items without node", open_ + "<items/>" + close_, "bad-request", "nodeid-required"},
		{"delete without node", owner_ + "<delete/>" + close_, "bad-request", "nodeid-required"},
		{"publish without item", open_ + "<publish node='n'/>" + close_, "bad-request", "item-required"},
		{"publish of two items", open_ + "<publish node='n'><item id='a'><p xmlns='urn:p'/></item><item id='b'><p xmlns='urn:p'/></item></publish>" + close_, "bad-request", "invalid-payload"},
		{"item without payload", open_ + "<publish node='n'><item id='a'> </item></publish>" + close_, "bad-request", "payload-required"},
		{"two payloads", open_ + "<publish node='n'><item id='a'><p xmlns='urn:p'/><q xmlns='urn:q'/></item></publish>" + close_, "bad-request", "invalid-payload"},
		{"payload without namespace", open_ + "<publish node='n'><item id='a'><p/></item></publish>" + close_, "bad-request", "invalid-payload"},
		{"payload relying on an outer prefix", "<pubsub xmlns='" + NS + "' xmlns:o='urn:o'><publish node='n'><item id='a'><p xmlns='urn:p'><o:x/></p></item></publish>" + close_, "bad-request", "invalid-payload"},
		{"payload with an outer-prefixed root", "<pubsub xmlns='" + NS + "' xmlns:o='urn:o'><publish node='n'><item id='a'><o:p xmlns='urn:p'/></item></publish>" + close_, "bad-request", "invalid-payload"},
		{"payload using the stream prefix", open_ + "<publish node='n'><item id='a'><p xmlns='urn:p'><stream:x/></p></item></publish>" + close_, "bad-request", "invalid-payload"},
		{"publish-options twice", open_ + "<publish node='n'><item><p xmlns='urn:p'/></item></publish><publish-options/><publish-options/>" + close_, "bad-request", ""},
		{"publish-options without publish", open_ + "<items node='n'/><publish-options/>" + close_, "bad-request", ""},
		{"publish-options of type form", open_ + "<publish node='n'><item><p xmlns='urn:p'/></item></publish><publish-options><x xmlns='jabber:x:data' type='form'/></publish-options>" + close_, "bad-request", ""},
		{"two forms", open_ + "<publish node='n'><item><p xmlns='urn:p'/></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'/><x xmlns='jabber:x:data' type='submit'/></publish-options>" + close_, "bad-request", ""},
		{"field twice", owner_ + "<configure node='n'><x xmlns='jabber:x:data' type='submit'><field var='a'/><field var='a'/></x></configure>" + close_, "bad-request", ""},
		{"field without var", owner_ + "<configure node='n'><x xmlns='jabber:x:data' type='submit'><field/></x></configure>" + close_, "bad-request", ""},
		{"configure without create", open_ + "<items node='n'/><configure/>" + close_, "bad-request", ""},
		{"retract without item", open_ + "<retract node='n'/>" + close_, "bad-request", "item-required"},
		{"retract item without id", open_ + "<retract node='n'><item/></retract>" + close_, "bad-request", ""},
		{"items item without id", open_ + "<items node='n'><item/></items>" + close_, "bad-request", ""},
		{"max_items zero", open_ + "<items node='n' max_items='0'/>" + close_, "bad-request", ""},
		{"max_items text", open_ + "<items node='n' max_items='ten'/>" + close_, "bad-request", ""},
		{"too many ids", many, "policy-violation", ""},
		{"long id", open_ + "<items node='n'><item id='" + strings.Repeat("i", 1025) + "'/></items>" + close_, "policy-violation", ""},
		{"subscribe without jid", open_ + "<subscribe node='n'/>" + close_, "bad-request", "jid-required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseRequest([]byte(c.raw), Limits{})
			if err == nil {
				t.Fatalf("ParseRequest succeeded: %+v", r)
			}
			cond, app := condition(t, err)
			if cond != c.cond || app != c.app {
				t.Errorf("error %s/%s, want %s/%s (%v)", cond, app, c.cond, c.app, err)
			}
		})
	}
}

func TestParseRequestLimits(t *testing.T) {
	raw := open_ + "<items node='n'><item id='a'/><item id='b'/><item id='c'/></items>" + close_
	if _, err := ParseRequest([]byte(raw), Limits{MaxIDs: 3}); err != nil {
		t.Errorf("3 ids with MaxIDs 3: %v", err)
	}
	_, err := ParseRequest([]byte(raw), Limits{MaxIDs: 2})
	if cond, _ := condition(t, err); cond != "policy-violation" {
		t.Errorf("3 ids with MaxIDs 2: %v", err)
	}
	_, err = ParseRequest([]byte(raw), Limits{MaxBytes: len(raw) - 1})
	if cond, _ := condition(t, err); cond != "policy-violation" {
		t.Errorf("request above MaxBytes: %v", err)
	}
	if _, err := ParseRequest([]byte(raw), Limits{MaxBytes: len(raw)}); err != nil {
		t.Errorf("request of exactly MaxBytes: %v", err)
	}
	_, err = ParseRequest([]byte(open_+"<items node='nnnn'/>"+close_), Limits{MaxIDLen: 3})
	if cond, _ := condition(t, err); cond != "policy-violation" {
		t.Errorf("node above MaxIDLen: %v", err)
	}
}

func TestFeatures(t *testing.T) {
	f := Features()
	if !slices.IsSorted(f[1:]) || f[0] != NS || !slices.Contains(f, NS+"#publish-options") {
		t.Errorf("Features = %q", f)
	}
	for _, x := range f[1:] {
		if !strings.HasPrefix(x, NS+"#") {
			t.Errorf("feature %q outside %s", x, NS)
		}
	}
}

func TestOpString(t *testing.T) {
	if OpPublish.String() != "publish" || OpPurge.String() != "purge" || Op(99).String() != "op(99)" {
		t.Errorf("Op names: %v %v %v", OpPublish, OpPurge, Op(99))
	}
}
