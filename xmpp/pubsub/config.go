package pubsub

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/form"
	"parley.im/parley/xmpp/stanza"
)

// AccessModel is a node's pubsub#access_model (XEP-0060 section 4.5): who may retrieve its items and receive
// its notifications.
type AccessModel string

// The access models this package supports. "authorize" is not: it needs an approval workflow that PEP does
// not use.
const (
	AccessOpen      AccessModel = "open"      // anyone, even without presence subscription
	AccessPresence  AccessModel = "presence"  // contacts subscribed to the owner's presence (from or both); PEP's default
	AccessRoster    AccessModel = "roster"    // contacts in one of RosterGroups
	AccessWhitelist AccessModel = "whitelist" // JIDs with a member, publisher or owner affiliation
)

// Valid reports whether m is a supported access model.
func (m AccessModel) Valid() bool {
	switch m {
	case AccessOpen, AccessPresence, AccessRoster, AccessWhitelist:
		return true
	}
	return false
}

// SendLast is pubsub#send_last_published_item: when a new subscriber gets the last item.
type SendLast string

// Values of SendLast.
const (
	SendLastNever         SendLast = "never"
	SendLastOnSub         SendLast = "on_sub"
	SendLastOnSubPresence SendLast = "on_sub_and_presence" // PEP (XEP-0163 section 4.3.4): also on each available presence
)

// Fields of the pubsub#node_config form (XEP-0060 section 16.4.4) that Config models.
const (
	FieldAccessModel     = "pubsub#access_model"
	FieldMaxItems        = "pubsub#max_items"
	FieldPersistItems    = "pubsub#persist_items"
	FieldNotifyRetract   = "pubsub#notify_retract"
	FieldNotifyDelete    = "pubsub#notify_delete"
	FieldDeliverPayloads = "pubsub#deliver_payloads"
	FieldSendLast        = "pubsub#send_last_published_item"
	FieldRosterGroups    = "pubsub#roster_groups_allowed"
	FieldTitle           = "pubsub#title"
)

// MaxItemsMax is the MaxItems value written "max" in forms: as many items as the server's per-node limit
// allows (OMEMO bundles, one item per device). It is storage.PubSubNode.MaxItems 0.
const MaxItemsMax = 0

// Config is the configuration of one node. The zero value is not useful; start from DefaultConfig.
type Config struct {
	AccessModel     AccessModel `json:"access_model"`
	RosterGroups    []string    `json:"roster_groups,omitempty"` // for AccessRoster
	MaxItems        int         `json:"max_items"`               // >= 1, or MaxItemsMax
	PersistItems    bool        `json:"persist_items"`
	NotifyRetract   bool        `json:"notify_retract"`
	NotifyDelete    bool        `json:"notify_delete"`
	DeliverPayloads bool        `json:"deliver_payloads"`
	SendLast        SendLast    `json:"send_last_published_item"`
	Title           string      `json:"title,omitempty"`
}

// DefaultConfig returns the configuration of a PEP node created without options (XEP-0163 section 4.3):
// access_model presence, max_items 1, persist_items, notify_retract, notify_delete, deliver_payloads, and
// send_last_published_item on_sub_and_presence.
func DefaultConfig() Config {
	return Config{
		AccessModel:     AccessPresence,
		MaxItems:        1,
		PersistItems:    true,
		NotifyRetract:   true,
		NotifyDelete:    true,
		DeliverPayloads: true,
		SendLast:        SendLastOnSubPresence,
	}
}

// maxTitle and maxRosterGroups bound what a configuration may hold.
const (
	maxTitle        = 1024
	maxRosterGroups = 64
)

// Validate reports whether c can be stored, with the per-node item limit maxItems of the module's
// configuration (0: none).
func (c Config) Validate(maxItems int) error {
	if !c.AccessModel.Valid() {
		return fmt.Errorf("pubsub: unsupported access model %q", c.AccessModel)
	}
	if c.MaxItems < 0 {
		return fmt.Errorf("pubsub: max_items %d is negative", c.MaxItems)
	}
	if maxItems > 0 && c.MaxItems > maxItems {
		return fmt.Errorf("pubsub: max_items %d above the limit %d", c.MaxItems, maxItems)
	}
	switch c.SendLast {
	case SendLastNever, SendLastOnSub, SendLastOnSubPresence:
	default:
		return fmt.Errorf("pubsub: unsupported send_last_published_item %q", c.SendLast)
	}
	if len(c.Title) > maxTitle || len(c.RosterGroups) > maxRosterGroups {
		return fmt.Errorf("pubsub: configuration too large")
	}
	return nil
}

// StoredMaxItems is the storage.PubSubNode.MaxItems for c. A node that does not persist items still keeps
// its last one, so that send_last_published_item (PEP's on_sub_and_presence) has something to send.
func (c Config) StoredMaxItems() int {
	if !c.PersistItems {
		return 1
	}
	return c.MaxItems
}

// Record returns the storage record of the node owner/node with configuration c.
func (c Config) Record(owner, node string) storage.PubSubNode {
	b, err := json.Marshal(c)
	if err != nil {
		panic("pubsub: encoding a Config: " + err.Error()) // a Config of plain fields always encodes
	}
	return storage.PubSubNode{Owner: owner, Node: node, AccessModel: string(c.AccessModel),
		MaxItems: c.StoredMaxItems(), Config: b}
}

// ConfigOf decodes the configuration of a stored node. Fields that a newer or older Parley did not store
// keep their DefaultConfig values.
func ConfigOf(n storage.PubSubNode) (Config, error) {
	c := DefaultConfig()
	if len(n.Config) == 0 {
		c.AccessModel, c.MaxItems = AccessModel(n.AccessModel), n.MaxItems
		return c, nil
	}
	if err := json.Unmarshal(n.Config, &c); err != nil {
		return Config{}, fmt.Errorf("pubsub: node %q: %w", n.Node, err)
	}
	return c, nil
}

// parseMaxItems reads a pubsub#max_items value: a positive integer or "max".
func parseMaxItems(v string) (int, bool) {
	if v == "max" {
		return MaxItemsMax, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// single returns the one value of f, or false.
func single(f form.Field) (string, bool) {
	if len(f.Values) != 1 {
		return "", false
	}
	return f.Values[0], true
}

// set applies one form field to c. It returns false for a field c does not model or a value it cannot take.
func (c *Config) set(f form.Field) bool {
	if f.Var == FieldRosterGroups {
		if len(f.Values) > maxRosterGroups {
			return false
		}
		c.RosterGroups = slices.Clone(f.Values)
		return true
	}
	v, ok := single(f)
	if !ok {
		return false
	}
	switch f.Var {
	case FieldAccessModel:
		m := AccessModel(v)
		if !m.Valid() {
			return false
		}
		c.AccessModel = m
	case FieldMaxItems:
		n, ok := parseMaxItems(v)
		if !ok {
			return false
		}
		c.MaxItems = n
	case FieldPersistItems, FieldNotifyRetract, FieldNotifyDelete, FieldDeliverPayloads:
		b, ok := form.ParseBool(v)
		if !ok {
			return false
		}
		*c.boolField(f.Var) = b
	case FieldSendLast:
		s := SendLast(v)
		switch s {
		case SendLastNever, SendLastOnSub, SendLastOnSubPresence:
			c.SendLast = s
		default:
			return false
		}
	case FieldTitle:
		if len(v) > maxTitle {
			return false
		}
		c.Title = v
	default:
		return false
	}
	return true
}

func (c *Config) boolField(name string) *bool {
	switch name {
	case FieldPersistItems:
		return &c.PersistItems
	case FieldNotifyRetract:
		return &c.NotifyRetract
	case FieldNotifyDelete:
		return &c.NotifyDelete
	}
	return &c.DeliverPayloads
}

// Apply returns c with the fields of a submitted pubsub#node_config form applied (an owner's configure
// request). A field this package does not model, or a value it cannot take, is a not-acceptable error naming
// the field; a FORM_TYPE other than pubsub#node_config is bad-request. maxItems is the module's per-node limit
// (0: none).
func (c Config) Apply(f *form.Form, maxItems int) (Config, error) {
	if ft := f.FormType(); ft != "" && ft != NSNodeConfig {
		return c, stanza.Errorf("bad-request", "FORM_TYPE must be "+NSNodeConfig)
	}
	return c.apply(f, maxItems)
}

// apply is Apply without the FORM_TYPE check.
func (c Config) apply(f *form.Form, maxItems int) (Config, error) {
	out := c
	out.RosterGroups = slices.Clone(c.RosterGroups)
	for _, fd := range f.Fields {
		if fd.Var == form.FormType {
			continue
		}
		if !out.set(fd) {
			return c, stanza.Errorf("not-acceptable", "unsupported value or field "+fd.Var)
		}
	}
	if maxItems > 0 && out.MaxItems > maxItems {
		return c, stanza.Errorf("not-acceptable", fmt.Sprintf("%s above the limit %d", FieldMaxItems, maxItems))
	}
	return out, nil
}

// PublishConfig applies XEP-0223 publish-options (opts, nil when the publish had none) and returns the
// configuration the publish goes on with:
//
//   - exists (the node is there, with configuration cur): every option must equal cur's value for that field,
//     else ErrPreconditionNotMet; cur is returned unchanged. Options never reconfigure an existing node.
//   - !exists: the options become the new node's configuration, applied on top of cur (the module's defaults).
//     An option this package cannot apply, or a value above maxItems, is ErrPreconditionNotMet too: the
//     publisher asked for a guarantee the node would not give.
//
// A FORM_TYPE other than pubsub#publish-options is bad-request.
func PublishConfig(cur Config, exists bool, opts *form.Form, maxItems int) (Config, error) {
	if opts == nil {
		return cur, nil
	}
	if ft := opts.FormType(); ft != "" && ft != NSPublishOptions {
		return cur, stanza.Errorf("bad-request", "FORM_TYPE must be "+NSPublishOptions)
	}
	want, err := cur.apply(opts, maxItems)
	if err != nil {
		return cur, ErrPreconditionNotMet
	}
	if !exists {
		return want, nil
	}
	for _, fd := range opts.Fields {
		if fd.Var != form.FormType && !cur.equalField(want, fd.Var) {
			return cur, ErrPreconditionNotMet
		}
	}
	return cur, nil
}

// equalField reports whether c and o agree on the form field name.
func (c Config) equalField(o Config, name string) bool {
	switch name {
	case FieldAccessModel:
		return c.AccessModel == o.AccessModel
	case FieldMaxItems:
		return c.MaxItems == o.MaxItems
	case FieldPersistItems, FieldNotifyRetract, FieldNotifyDelete, FieldDeliverPayloads:
		return *c.boolField(name) == *o.boolField(name)
	case FieldSendLast:
		return c.SendLast == o.SendLast
	case FieldRosterGroups:
		return slices.Equal(c.RosterGroups, o.RosterGroups)
	case FieldTitle:
		return c.Title == o.Title
	}
	return false
}

// AppendConfigureForm appends the owner's configure result for node (XEP-0060 section 8.2.1):
// <pubsub xmlns='...#owner'><configure node='...'><x type='form'>...</x></configure></pubsub>.
func AppendConfigureForm(b []byte, node string, c Config) []byte {
	maxItems := "max"
	if c.MaxItems != MaxItemsMax {
		maxItems = strconv.Itoa(c.MaxItems)
	}
	list := func(name, value string, options ...string) form.Field {
		fl := form.Field{Var: name, Type: form.ListSingle, Values: []string{value}}
		for _, o := range options {
			fl.Options = append(fl.Options, form.Option{Value: o})
		}
		return fl
	}
	boolean := func(name string, v bool) form.Field {
		return form.Field{Var: name, Type: form.Boolean, Values: []string{form.FormatBool(v)}}
	}
	f := form.New(form.TypeForm, NSNodeConfig).
		Add(list(FieldAccessModel, string(c.AccessModel),
			string(AccessOpen), string(AccessPresence), string(AccessRoster), string(AccessWhitelist))).
		Add(form.Field{Var: FieldMaxItems, Type: form.TextSingle, Values: []string{maxItems}}).
		Add(boolean(FieldPersistItems, c.PersistItems)).
		Add(boolean(FieldNotifyRetract, c.NotifyRetract)).
		Add(boolean(FieldNotifyDelete, c.NotifyDelete)).
		Add(boolean(FieldDeliverPayloads, c.DeliverPayloads)).
		Add(list(FieldSendLast, string(c.SendLast),
			string(SendLastNever), string(SendLastOnSub), string(SendLastOnSubPresence))).
		Add(form.Field{Var: FieldRosterGroups, Type: form.ListMulti, Values: slices.Clone(c.RosterGroups)}).
		Add(form.Field{Var: FieldTitle, Type: form.TextSingle, Values: []string{c.Title}})
	b = append(b, "<pubsub xmlns='"+NSOwner+"'><configure node='"...)
	b = stanza.AppendEscape(b, node)
	b = append(b, "'>"...)
	b = f.Append(b)
	return append(b, "</configure></pubsub>"...)
}
