package pubsub

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/form"
)

// submitted returns a submitted form with the given var, value pairs (no FORM_TYPE).
func submitted(fields ...string) *form.Form {
	f := &form.Form{Type: form.TypeSubmit}
	for i := 0; i+1 < len(fields); i += 2 {
		f.Fields = append(f.Fields, form.Field{Var: fields[i], Values: []string{fields[i+1]}})
	}
	return f
}

// typed returns f with a FORM_TYPE field first.
func typed(formType string, f *form.Form) *form.Form {
	f.Fields = append([]form.Field{{Var: form.FormType, Type: form.Hidden, Values: []string{formType}}}, f.Fields...)
	return f
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.AccessModel != AccessPresence || c.MaxItems != 1 || !c.PersistItems || !c.NotifyRetract ||
		!c.DeliverPayloads || c.SendLast != SendLastOnSubPresence {
		t.Errorf("DefaultConfig = %+v", c)
	}
	if err := c.Validate(0); err != nil {
		t.Errorf("DefaultConfig().Validate: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*Config)
		max  int
		ok   bool
	}{
		{"max", func(c *Config) { c.MaxItems = MaxItemsMax }, 10, true},
		{"at the limit", func(c *Config) { c.MaxItems = 10 }, 10, true},
		{"above the limit", func(c *Config) { c.MaxItems = 11 }, 10, false},
		{"no limit", func(c *Config) { c.MaxItems = 1 << 20 }, 0, true},
		{"negative", func(c *Config) { c.MaxItems = -1 }, 0, false},
		{"authorize", func(c *Config) { c.AccessModel = "authorize" }, 0, false},
		{"send_last", func(c *Config) { c.SendLast = "sometimes" }, 0, false},
		{"long title", func(c *Config) { c.Title = strings.Repeat("t", maxTitle+1) }, 0, false},
	} {
		cfg := DefaultConfig()
		c.mod(&cfg)
		if err := cfg.Validate(c.max); (err == nil) != c.ok {
			t.Errorf("%s: Validate = %v, want ok %v", c.name, err, c.ok)
		}
	}
}

func TestConfigApply(t *testing.T) {
	base := DefaultConfig()
	f := submitted(FieldAccessModel, "whitelist", FieldMaxItems, "max", FieldPersistItems, "false",
		FieldNotifyRetract, "0", FieldNotifyDelete, "false", FieldDeliverPayloads, "0", FieldSendLast, "never",
		FieldTitle, "Devices")
	f = typed(NSNodeConfig, f)
	f.Fields = append(f.Fields, form.Field{Var: FieldRosterGroups, Values: []string{"a", "b"}})
	got, err := base.Apply(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{AccessModel: AccessWhitelist, MaxItems: MaxItemsMax, SendLast: SendLastNever, Title: "Devices",
		RosterGroups: []string{"a", "b"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Apply = %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(base, DefaultConfig()) {
		t.Errorf("Apply changed its receiver: %+v", base)
	}
	got, err = base.Apply(submitted(FieldMaxItems, "7", FieldPersistItems, "true"), 7)
	if err != nil || got.MaxItems != 7 || !got.PersistItems {
		t.Errorf("Apply max_items 7 = %+v, %v", got, err)
	}

	for _, c := range []struct {
		name string
		f    *form.Form
		cond string
	}{
		{"unknown field", submitted("pubsub#type", "x"), "not-acceptable"},
		{"bad access model", submitted(FieldAccessModel, "authorize"), "not-acceptable"},
		{"bad max_items", submitted(FieldMaxItems, "0"), "not-acceptable"},
		{"max_items text", submitted(FieldMaxItems, "many"), "not-acceptable"},
		{"max_items above the limit", submitted(FieldMaxItems, "11"), "not-acceptable"},
		{"bad boolean", submitted(FieldPersistItems, "yes"), "not-acceptable"},
		{"bad send_last", submitted(FieldSendLast, "always"), "not-acceptable"},
		{"two values", &form.Form{Type: "submit", Fields: []form.Field{{Var: FieldAccessModel, Values: []string{"open", "roster"}}}}, "not-acceptable"},
		{"no value", &form.Form{Type: "submit", Fields: []form.Field{{Var: FieldAccessModel}}}, "not-acceptable"},
		{"other FORM_TYPE", typed(NSPublishOptions, submitted()), "bad-request"},
	} {
		got, err := base.Apply(c.f, 10)
		if err == nil {
			t.Errorf("%s: Apply = %+v, want an error", c.name, got)
			continue
		}
		if cond, _ := condition(t, err); cond != c.cond {
			t.Errorf("%s: %v, want %s", c.name, err, c.cond)
		}
		if !reflect.DeepEqual(got, base) {
			t.Errorf("%s: a failed Apply returned %+v, want the configuration unchanged", c.name, got)
		}
	}
}

func TestPublishConfig(t *testing.T) {
	cur := DefaultConfig()
	cur.AccessModel, cur.MaxItems = AccessOpen, MaxItemsMax

	got, err := PublishConfig(cur, true, nil, 0)
	if err != nil || !reflect.DeepEqual(got, cur) {
		t.Errorf("no options: %+v, %v", got, err)
	}
	// Existing node: matching options (in any spelling of the same value) leave it as it is.
	for _, f := range []*form.Form{
		submitted(FieldAccessModel, "open"),
		typed(NSPublishOptions, submitted(FieldAccessModel, "open", FieldMaxItems, "max")),
		submitted(FieldPersistItems, "true", FieldDeliverPayloads, "1"),
		typed(NSPublishOptions, submitted()),
	} {
		got, err := PublishConfig(cur, true, f, 100)
		if err != nil || !reflect.DeepEqual(got, cur) {
			t.Errorf("matching options %+v: %+v, %v", f.Fields, got, err)
		}
	}
	// Existing node: any difference, or anything that cannot be compared, is precondition-not-met.
	for _, f := range []*form.Form{
		submitted(FieldAccessModel, "presence"),
		submitted(FieldAccessModel, "open", FieldMaxItems, "1"),
		submitted(FieldPersistItems, "false"),
		submitted(FieldSendLast, "never"),
		submitted("pubsub#unknown", "x"),
		submitted(FieldMaxItems, "bogus"),
		submitted(FieldMaxItems, "200"), // above the limit: it cannot be the node's value
	} {
		_, err := PublishConfig(cur, true, f, 100)
		if !errors.Is(err, ErrPreconditionNotMet) {
			t.Errorf("mismatching options %+v: err = %v, want precondition-not-met", f.Fields, err)
			continue
		}
		if cond, app := condition(t, err); cond != "conflict" || app != "precondition-not-met" {
			t.Errorf("precondition error = %s/%s", cond, app)
		}
	}
	// New node: the options become its configuration, on top of the defaults.
	got, err = PublishConfig(DefaultConfig(), false, submitted(FieldAccessModel, "open", FieldMaxItems, "max"), 100)
	want := DefaultConfig()
	want.AccessModel, want.MaxItems = AccessOpen, MaxItemsMax
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("new node: %+v, %v; want %+v", got, err, want)
	}
	if _, err := PublishConfig(DefaultConfig(), false, submitted("pubsub#unknown", "x"), 0); !errors.Is(err, ErrPreconditionNotMet) {
		t.Errorf("new node with an unknown option: %v, want precondition-not-met", err)
	}
	_, err = PublishConfig(cur, true, typed(NSNodeConfig, submitted()), 0)
	if cond, _ := condition(t, err); cond != "bad-request" {
		t.Errorf("options of another FORM_TYPE: %v", err)
	}
}

func TestConfigRecord(t *testing.T) {
	c := DefaultConfig()
	c.AccessModel, c.MaxItems, c.Title, c.RosterGroups = AccessRoster, 5, "t", []string{"g"}
	n := c.Record("alice@example.net", "urn:xmpp:avatar:data")
	if n.Owner != "alice@example.net" || n.Node != "urn:xmpp:avatar:data" || n.AccessModel != "roster" || n.MaxItems != 5 {
		t.Errorf("Record = %+v", n)
	}
	back, err := ConfigOf(n)
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Errorf("ConfigOf(Record) = %+v, %v; want %+v", back, err, c)
	}
	c.PersistItems = false
	if n := c.Record("a", "b"); n.MaxItems != 1 {
		t.Errorf("Record of a non-persistent node: MaxItems %d, want 1 (the last item)", n.MaxItems)
	}
	// Fields missing from a stored configuration keep their defaults.
	back, err = ConfigOf(storage.PubSubNode{Config: []byte(`{"access_model":"open"}`)})
	want := DefaultConfig()
	want.AccessModel = AccessOpen
	if err != nil || !reflect.DeepEqual(back, want) {
		t.Errorf("ConfigOf of a partial record = %+v, %v", back, err)
	}
	back, err = ConfigOf(storage.PubSubNode{AccessModel: "open", MaxItems: 3})
	if err != nil || back.AccessModel != AccessOpen || back.MaxItems != 3 {
		t.Errorf("ConfigOf without Config bytes = %+v, %v", back, err)
	}
	if _, err := ConfigOf(storage.PubSubNode{Config: []byte("{")}); err == nil {
		t.Errorf("ConfigOf of garbage succeeded")
	}
}

// TestConfigureFormRoundTrip checks that the form a module sends for configure, once submitted back
// unchanged, gives the same configuration.
func TestConfigureFormRoundTrip(t *testing.T) {
	c := DefaultConfig()
	c.AccessModel, c.MaxItems, c.Title, c.RosterGroups = AccessRoster, MaxItemsMax, "a <b> & 'c'", []string{"x&y", "z"}
	c.NotifyRetract = false
	b := AppendConfigureForm(nil, "node'1", c)
	for _, s := range []string{"<pubsub xmlns='" + NSOwner + "'><configure node='node&apos;1'>", "<value>max</value>",
		"type='form'"} {
		if !bytes.Contains(b, []byte(s)) {
			t.Errorf("configure form lacks %s:\n%s", s, b)
		}
	}
	// Submit it back.
	sub := bytes.Replace(b, []byte("type='form'"), []byte("type='submit'"), 1)
	r, err := ParseRequest(sub, Limits{})
	if err != nil {
		t.Fatalf("parsing the submitted configure form: %v\n%s", err, sub)
	}
	got, err := DefaultConfig().Apply(r.Config, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("round trip = %+v\nwant %+v", got, c)
	}
}
