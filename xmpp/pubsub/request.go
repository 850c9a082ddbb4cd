package pubsub

import (
	"bytes"
	"strconv"

	"parley.im/parley/xmpp/form"
	"parley.im/parley/xmpp/stanza"
	"parley.im/parley/xmpp/stream"
)

// Op is the action of a pubsub request.
type Op uint8

// The requests ParseRequest understands. The first six are in the pubsub namespace, the last three in
// pubsub#owner.
const (
	OpPublish     Op = iota + 1 // set: <publish node><item id?>payload</item></publish>, optional <publish-options/>
	OpRetract                   // set: <retract node notify?><item id/>...</retract>
	OpItems                     // get: <items node max_items?><item id/>...</items>
	OpCreate                    // set: <create node/>, optional <configure><x/></configure>
	OpSubscribe                 // set: <subscribe node jid/>
	OpUnsubscribe               // set: <unsubscribe node jid subid?/>
	OpConfigure                 // get (no form) or set (a submitted form): <configure node/> in pubsub#owner
	OpDelete                    // set: <delete node/> in pubsub#owner
	OpPurge                     // set: <purge node/> in pubsub#owner
)

var opNames = [...]string{"", "publish", "retract", "items", "create", "subscribe", "unsubscribe", "configure",
	"delete", "purge"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Item is one <item/> of a request. Payload is nil except in a publish.
type Item struct {
	ID      string // "" when a publish leaves the id to the server
	Payload []byte // the payload element exactly as sent (a copy), self-contained: it declares its namespace
}

// Request is a parsed pubsub request. Its slices are copies: it does not keep the input.
type Request struct {
	Op       Op
	Node     string
	Items    []Item     // publish: exactly one; retract: at least one, with ids; items: the requested ids, if any
	MaxItems int        // items: the max_items attribute, 0 if absent
	Notify   bool       // retract: notify='true'
	Options  *form.Form // publish: the publish-options form, nil if none
	Config   *form.Form // configure: the submitted form (nil for a get); create: the <configure/> form, if any
	JID      string     // subscribe, unsubscribe: the jid attribute, as sent (the module parses and checks it)
	SubID    string     // unsubscribe: the subid attribute
}

// ValidFor reports whether the request may come in an iq of type typ ("get" or "set").
func (r *Request) ValidFor(typ string) bool {
	switch r.Op {
	case OpItems:
		return typ == "get"
	case OpConfigure:
		return (typ == "get") == (r.Config == nil) && (typ == "get" || typ == "set")
	}
	return typ == "set"
}

// Limits bound what ParseRequest accepts from a peer. Zero fields take the defaults.
type Limits struct {
	MaxBytes int // the <pubsub/> element; default 256 KiB (the c2s element limit is the first bound)
	MaxDepth int // nesting inside it; default 32
	MaxIDs   int // item ids in one retract or items request; default 128
	MaxIDLen int // bytes of a node name or item id; default 1024
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 256 << 10
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = 32
	}
	if l.MaxIDs <= 0 {
		l.MaxIDs = 128
	}
	if l.MaxIDLen <= 0 {
		l.MaxIDLen = 1024
	}
	return l
}

// scanHeader is the stream header the checks scan elements under: it declares the client namespace as the
// default, so an element that declares no namespace of its own shows up as jabber:client.
var scanHeader = []byte("<stream:stream xmlns='jabber:client' xmlns:stream='" + stream.NSStream + "'>")

// check validates raw as one XML element with the stream scanner (RFC 6120 restricted XML: no comments,
// processing instructions or DTDs; declared prefixes; limits) and returns its envelope. Each call has its own
// Reader over its own buffer, so the Element stays valid after check returns.
func check(raw []byte, maxBytes, maxDepth int) (*stream.Element, bool) {
	buf := make([]byte, 0, len(scanHeader)+len(raw))
	buf = append(append(buf, scanHeader...), raw...)
	r := stream.NewReader(bytes.NewReader(buf), stream.Limits{MaxElement: max(maxBytes, len(scanHeader)) + 64,
		MaxDepth: maxDepth})
	if _, err := r.Header(); err != nil {
		return nil, false
	}
	el, err := r.Next()
	if err != nil || len(el.Raw) != len(raw) {
		return nil, false // invalid, or not exactly one element
	}
	return el, true
}

// ParseRequest parses the <pubsub/> child of an iq (in the pubsub or pubsub#owner namespace), bytes from an
// untrusted peer. It checks them itself with the stream scanner, so it does not rely on the caller having
// done so. Errors are *stanza.Error values to answer with: bad-request (with the XEP-0060 condition such as
// nodeid-required or invalid-payload where there is one), feature-not-implemented for requests this package
// does not model (affiliations, subscriptions lists, default configuration), policy-violation for limits.
//
// A published payload must be one element that declares its own default namespace (xmlns='...') and uses
// no prefix declared outside itself, so that its bytes stay correct when they are stored and later put
// into a notification or an items result unchanged.
func ParseRequest(raw []byte, lim Limits) (*Request, error) {
	lim = lim.withDefaults()
	raw = bytes.TrimSpace(raw)
	if len(raw) > lim.MaxBytes {
		return nil, stanza.Errorf("policy-violation", "pubsub request too large")
	}
	el, ok := check(raw, lim.MaxBytes, lim.MaxDepth)
	if !ok {
		return nil, stanza.Errorf("bad-request", "malformed pubsub element")
	}
	if el.Local != "pubsub" || (el.NS != NS && el.NS != NSOwner) {
		return nil, stanza.Errorf("bad-request", "not a pubsub element")
	}
	owner := el.NS == NSOwner
	p := parser{lim: lim}
	var req *Request
	var action []byte
	var options, configure []byte
	stanza.Children(raw[el.InnerStart:el.InnerEnd], func(local, ns string, c []byte) bool {
		if ns != "" && ns != el.NS {
			return true // an extension element: not ours to read
		}
		var op Op
		switch {
		case !owner && local == "publish-options":
			if options != nil {
				p.fail(stanza.Errorf("bad-request", "publish-options given twice"))
				return false
			}
			options = c
			return true
		case !owner && local == "configure":
			if configure != nil {
				p.fail(stanza.Errorf("bad-request", "configure given twice"))
				return false
			}
			configure = c
			return true
		case !owner && local == "options":
			return true // subscription options: the module ignores them (PEP has none)
		case !owner && local == "publish":
			op = OpPublish
		case !owner && local == "retract":
			op = OpRetract
		case !owner && local == "items":
			op = OpItems
		case !owner && local == "create":
			op = OpCreate
		case !owner && local == "subscribe":
			op = OpSubscribe
		case !owner && local == "unsubscribe":
			op = OpUnsubscribe
		case owner && local == "configure":
			op = OpConfigure
		case owner && local == "delete":
			op = OpDelete
		case owner && local == "purge":
			op = OpPurge
		default:
			p.fail(Errorf("feature-not-implemented", "", "unsupported pubsub request <"+local+"/>"))
			return false
		}
		if req != nil {
			p.fail(stanza.Errorf("bad-request", "more than one pubsub action"))
			return false
		}
		req, action = &Request{Op: op}, c
		return true
	})
	if p.err != nil {
		return nil, p.err
	}
	if req == nil {
		return nil, stanza.Errorf("bad-request", "no pubsub action")
	}
	if options != nil && req.Op != OpPublish {
		return nil, stanza.Errorf("bad-request", "publish-options without publish")
	}
	if configure != nil && req.Op != OpCreate {
		return nil, stanza.Errorf("bad-request", "configure without create")
	}
	p.parse(req, action, options, configure)
	if p.err != nil {
		return nil, p.err
	}
	return req, nil
}

// parser carries the first error of a parse.
type parser struct {
	lim Limits
	err *stanza.Error
}

func (p *parser) fail(e *stanza.Error) {
	if p.err == nil {
		p.err = e
	}
}

// attr returns the attribute name of el's root, failing the parse if it is longer than MaxIDLen.
func (p *parser) attr(el []byte, name string) string {
	v := stanza.ChildAttr(el, name)
	if len(v) > p.lim.MaxIDLen {
		p.fail(stanza.Errorf("policy-violation", name+" too long"))
	}
	return v
}

// form parses the single data form among the children of el, if any.
func (p *parser) form(el []byte) *form.Form {
	f, err := parseForms(el)
	if err != nil {
		p.fail(err)
	}
	return f
}

// items reads the <item/> children of el. withIDs requires an id on each; payloads reads each item's payload.
func (p *parser) items(el []byte, withIDs, payloads bool) []Item {
	var out []Item
	stanza.Children(inner(el), func(local, ns string, c []byte) bool {
		if local != "item" || (ns != "" && ns != NS) {
			return true
		}
		if len(out) == p.lim.MaxIDs {
			p.fail(stanza.Errorf("policy-violation", "too many items"))
			return false
		}
		it := Item{ID: p.attr(c, "id")}
		if withIDs && it.ID == "" {
			p.fail(stanza.Errorf("bad-request", "item without id"))
			return false
		}
		if payloads {
			it.Payload = p.payload(c)
		}
		out = append(out, it)
		return p.err == nil
	})
	return out
}

// payload returns a copy of the one payload element of the item el.
func (p *parser) payload(item []byte) []byte {
	var pl []byte
	n := 0
	stanza.Children(inner(item), func(_, _ string, c []byte) bool {
		pl = c
		n++
		return n < 2
	})
	switch {
	case n == 0:
		p.fail(ErrPayloadRequired)
		return nil
	case n > 1:
		p.fail(Errorf("bad-request", "invalid-payload", "more than one payload element"))
		return nil
	}
	if stanza.ChildAttr(pl, "xmlns") == "" {
		p.fail(Errorf("bad-request", "invalid-payload", "the payload must declare its namespace"))
		return nil
	}
	// Scanned alone, a prefix declared only by an ancestor (the pubsub or item element) is undeclared, or
	// inherited from the scan header: either way the bytes would not stand on their own.
	el, ok := check(pl, len(pl), p.lim.MaxDepth)
	if !ok || len(el.Inherited) > 0 {
		p.fail(Errorf("bad-request", "invalid-payload", "the payload uses a namespace prefix it does not declare"))
		return nil
	}
	return bytes.Clone(pl)
}

// node reads the node attribute, which every action here needs.
func (p *parser) node(req *Request, el []byte) {
	req.Node = p.attr(el, "node")
	if req.Node == "" {
		p.fail(ErrNodeIDRequired)
	}
}

func (p *parser) parse(req *Request, el, options, configure []byte) {
	p.node(req, el)
	if p.err != nil {
		return
	}
	switch req.Op {
	case OpPublish:
		req.Items = p.items(el, false, true)
		if p.err == nil && len(req.Items) == 0 {
			p.fail(ErrItemRequired)
		}
		if p.err == nil && len(req.Items) > 1 {
			p.fail(Errorf("bad-request", "invalid-payload", "more than one item"))
		}
		if options != nil && p.err == nil {
			req.Options = p.form(options)
			if p.err == nil && req.Options != nil && req.Options.Type != form.TypeSubmit {
				p.fail(stanza.Errorf("bad-request", "publish-options must be a submitted form"))
			}
		}
	case OpRetract:
		req.Notify, _ = form.ParseBool(stanza.ChildAttr(el, "notify"))
		req.Items = p.items(el, true, false)
		if p.err == nil && len(req.Items) == 0 {
			p.fail(ErrItemRequired)
		}
	case OpItems:
		if v := stanza.ChildAttr(el, "max_items"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				p.fail(stanza.Errorf("bad-request", "max_items must be a positive integer"))
				return
			}
			req.MaxItems = n
		}
		req.Items = p.items(el, true, false)
	case OpCreate:
		if configure != nil {
			req.Config = p.form(configure)
		}
	case OpSubscribe, OpUnsubscribe:
		req.JID = p.attr(el, "jid")
		req.SubID = p.attr(el, "subid")
		if p.err == nil && req.JID == "" {
			p.fail(Errorf("bad-request", "jid-required", ""))
		}
	case OpConfigure:
		req.Config = p.form(el)
	}
}
