package push

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/form"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

const (
	formPublishOptions = "http://jabber.org/protocol/pubsub#publish-options"

	// keyPrefix starts the key-value keys of registrations; the rest is a hash of the app server's JID and node,
	// so that enabling and disabling one registration never rewrites another.
	keyPrefix = "push/"

	maxNode        = 1023 // bytes of a node name
	maxOptionsSize = 4096 // bytes of the serialized publish-options form
	maxFields      = 32
)

// Registration is one enabled app server of an account, as stored (JSON) under keyPrefix.
type Registration struct {
	// JID and Node name the XMPP Push Service node to publish to; JID is normalized.
	JID  string `json:"jid"`
	Node string `json:"node"`
	// Options is the publish-options data form of the enable request, re-serialized by the server; empty
	// when the request had none.
	Options string `json:"options,omitempty"`
	// Resource is the resource of the session that enabled it: while a session with that resource is
	// connected, its device needs no notification.
	Resource string    `json:"resource,omitempty"`
	Enabled  time.Time `json:"enabled"`
}

func (r Registration) key() string {
	h := sha256.Sum256([]byte(r.JID + "\x00" + r.Node))
	return keyPrefix + hex.EncodeToString(h[:16])
}

// registrations returns owner's registrations, oldest first.
func (m *Module) registrations(ctx context.Context, owner jid.JID) ([]Registration, error) {
	keys, err := m.kv.Keys(ctx, owner.String(), keyPrefix)
	if err != nil {
		return nil, fmt.Errorf("push: %w", err)
	}
	regs := make([]Registration, 0, len(keys))
	for _, k := range keys {
		v, err := m.kv.Value(ctx, owner.String(), k)
		if errors.Is(err, storage.ErrNotFound) {
			continue // disabled meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("push: %w", err)
		}
		var r Registration
		if err := json.Unmarshal(v, &r); err != nil || r.JID == "" {
			m.log.Error("ignoring unreadable push registration", "owner", owner.String(), "key", k, "err", err)
			continue
		}
		regs = append(regs, r)
	}
	sortByAge(regs)
	return regs, nil
}

func sortByAge(regs []Registration) {
	for i := 1; i < len(regs); i++ {
		for j := i; j > 0 && regs[j].Enabled.Before(regs[j-1].Enabled); j-- {
			regs[j], regs[j-1] = regs[j-1], regs[j]
		}
	}
}

func (m *Module) put(ctx context.Context, owner jid.JID, r Registration) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	if err := m.kv.PutValue(ctx, owner.String(), r.key(), b); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	return nil
}

// remove deletes a registration and forgets its throttle state.
func (m *Module) remove(ctx context.Context, owner jid.JID, r Registration) error {
	if err := m.kv.DeleteValue(ctx, owner.String(), r.key()); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	m.forget(owner, regKey{r.JID, r.Node})
	return nil
}

type enableXML struct {
	JID   string       `xml:"jid,attr"`
	Node  string       `xml:"node,attr"`
	Forms []*form.Form `xml:"jabber:x:data x"`
}

// enable handles <enable xmlns='urn:xmpp:push:0' jid='...' node='...'/> (XEP-0357 section 5).
func (m *Module) enable(ctx context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() {
		return nil, stanza.ErrForbidden
	}
	var e enableXML
	if err := xml.Unmarshal(iq.Payload, &e); err != nil {
		if errors.Is(err, form.ErrTooLarge) {
			return nil, stanza.Errorf("not-acceptable", "publish options too large")
		}
		return nil, stanza.ErrBadRequest
	}
	svc, err := parseService(e.JID)
	if err != nil {
		return nil, err
	}
	if e.Node == "" {
		return nil, stanza.Errorf("bad-request", "the node attribute is required")
	}
	if len(e.Node) > maxNode {
		return nil, stanza.Errorf("not-acceptable", "node too long")
	}
	if len(e.Forms) > 1 {
		return nil, stanza.Errorf("bad-request", "at most one publish-options form")
	}
	var opts string
	if len(e.Forms) == 1 {
		if opts, err = publishOptions(e.Forms[0]); err != nil {
			return nil, err
		}
	}
	owner := iq.From.Bare()
	r := Registration{JID: svc.String(), Node: e.Node, Options: opts, Resource: iq.From.Resourcepart(), Enabled: m.clock.Now().UTC()}
	regs, err := m.registrations(ctx, owner)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, old := range regs {
		if old.JID != r.JID || old.Node != r.Node {
			n++
		}
	}
	// The same JID and node again replaces the old one (the last publish options win, XEP-0357 section 5). One
	// more than the cap evicts the oldest: stale registrations of reinstalled apps must not lock a user out.
	for i := 0; n >= m.cfg.MaxRegistrations && i < len(regs); i++ {
		old := regs[i]
		if old.JID == r.JID && old.Node == r.Node {
			continue
		}
		if err := m.remove(ctx, owner, old); err != nil {
			return nil, err
		}
		m.log.Info("push registration replaced by a newer one", "owner", owner.String(), "jid", old.JID, "node", old.Node)
		n--
	}
	if err := m.put(ctx, owner, r); err != nil {
		return nil, err
	}
	m.seen(owner) // the client that asked is online
	m.Enabled.Add(1)
	return nil, nil
}

// disable handles <disable xmlns='urn:xmpp:push:0' jid='...' node='...'/> (XEP-0357 section 6): without a
// node, every node of that JID. Disabling what is not enabled succeeds, so a client may retry.
func (m *Module) disable(ctx context.Context, iq *module.IQ) ([]byte, error) {
	if !iq.ToSelf() {
		return nil, stanza.ErrForbidden
	}
	var d struct {
		JID  string  `xml:"jid,attr"`
		Node *string `xml:"node,attr"`
	}
	if err := xml.Unmarshal(iq.Payload, &d); err != nil {
		return nil, stanza.ErrBadRequest
	}
	svc, err := parseService(d.JID)
	if err != nil {
		return nil, err
	}
	owner := iq.From.Bare()
	regs, err := m.registrations(ctx, owner)
	if err != nil {
		return nil, err
	}
	for _, r := range regs {
		if r.JID != svc.String() || (d.Node != nil && *d.Node != r.Node) {
			continue
		}
		if err := m.remove(ctx, owner, r); err != nil {
			return nil, err
		}
		m.Disabled.Add(1)
	}
	return nil, nil
}

func parseService(s string) (jid.JID, error) {
	if s == "" {
		return jid.JID{}, stanza.Errorf("bad-request", "the jid attribute is required")
	}
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, stanza.ErrJIDMalformed
	}
	return j, nil
}

// publishOptions checks the enable request's form and serializes it anew: the client's bytes may lean on
// namespace prefixes declared outside the form, and are not ours to forward unchecked. Only var, type and
// values of each field are kept.
func publishOptions(f *form.Form) (string, error) {
	if len(f.Fields) > maxFields {
		return "", stanza.Errorf("not-acceptable", "too many publish options")
	}
	out := form.Form{Type: form.TypeSubmit, Fields: make([]form.Field, 1, len(f.Fields)+1)}
	// FORM_TYPE without a type attribute, as XEP-0357's examples write it.
	out.Fields[0] = form.Field{Var: form.FormType, Values: []string{formPublishOptions}}
	for _, fd := range f.Fields {
		if fd.Var == form.FormType {
			if len(fd.Values) != 1 || strings.TrimSpace(fd.Values[0]) != formPublishOptions {
				return "", stanza.Errorf("bad-request", "the form is not "+formPublishOptions)
			}
			continue
		}
		if fd.Var == "" {
			continue // fixed fields carry no option
		}
		out.Fields = append(out.Fields, form.Field{Var: fd.Var, Type: fd.Type, Values: fd.Values})
	}
	b := out.Build()
	if len(b) > maxOptionsSize {
		return "", stanza.Errorf("not-acceptable", "publish options too large")
	}
	return string(b), nil
}
