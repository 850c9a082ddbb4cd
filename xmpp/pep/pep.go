// Package pep implements XEP-0163: Personal Eventing Protocol, a XEP-0060 publish-subscribe service on every
// local account's bare JID, built on the xmpp/pubsub library and storage.PubSub.
//
// The account itself publishes, retracts, configures, purges and deletes its nodes; others retrieve items and
// subscribe as each node's access model allows (presence, roster, open, whitelist). Publishes may carry
// XEP-0223 publish-options, checked as preconditions (OMEMO clients publish their device lists and bundles
// with access_model=open). Notifications go, as headline messages from the account's bare JID, to the
// account's own resources and to contacts subscribed to its presence whose XEP-0115 capabilities carry
// "node+notify" (filtered notifications), and to explicit subscribers. A contact's resource gets the last
// item of each node it wants when it becomes available (XEP-0163 section 4.3.4), and an explicit subscriber
// when it subscribes.
//
// Which resources are online with which capabilities the module learns from the availability presence that
// reaches each account (module.Host.OnPresence), from local sessions and other servers alike. The features
// behind a capabilities verification string are asked of the client once (disco#info to node#ver, from the
// account's bare JID, so that the answer comes back through module.Host.OnIQResponse), checked against the
// XEP-0115 hash and cached.
package pep

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/pubsub"
)

// Config configures PEP. The zero value of each field means its documented default.
type Config struct {
	// MaxNodes is the number of nodes one account may have. Default 100.
	MaxNodes int `yaml:"max_nodes"`
	// MaxItems is the most items one node keeps: the cap of a max_items=max node (OMEMO bundles, one item per
	// device) and the largest max_items a node may be configured with. Default 256.
	MaxItems int `yaml:"max_items"`
	// MaxItemSize is the largest payload of one item, in bytes. Default 65536 (64 KiB): an avatar's data
	// (XEP-0084) is the largest common payload; the c2s stanza limit bounds it too.
	MaxItemSize int `yaml:"max_item_size"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.MaxNodes < 0:
		return errors.New("pep.max_nodes: must not be negative")
	case c.MaxItems < 0:
		return errors.New("pep.max_items: must not be negative")
	case c.MaxItemSize < 0:
		return errors.New("pep.max_item_size: must not be negative")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.MaxNodes == 0 {
		c.MaxNodes = 100
	}
	if c.MaxItems == 0 {
		c.MaxItems = 256
	}
	if c.MaxItemSize == 0 {
		c.MaxItemSize = 64 << 10
	}
}

// Module is the PEP service of every local account.
type Module struct {
	cfg    Config
	lim    storage.PubSubLimits
	ps     storage.PubSub
	roster storage.Roster
	router module.Router
	log    *slog.Logger

	caps *capsCache

	mu sync.Mutex
	// online maps an account's bare JID to the resources that sent it available presence (its own and its
	// contacts', local or on other servers), each with the XEP-0115 verification string it announced.
	online map[string]map[string]onlineRes

	stats stats

	// watchers are called after a node of that name changes on any account (Watch). Filled before the server
	// runs, read without a lock.
	watchers map[string][]func(ctx context.Context, o module.Origin, owner jid.JID)
}

// Watch calls fn after every change of the node named node, on every account: an item published or retracted,
// the node purged or deleted; o is the origin to route what fn sends with. vcard watches the XEP-0084 metadata
// node to learn that an avatar changed. It must be called during Register (of a module listed after pep),
// before the server runs. (The func type is unnamed so that a consumer's interface needs no import of pep.)
func (m *Module) Watch(node string, fn func(ctx context.Context, o module.Origin, owner jid.JID)) {
	if m.watchers == nil {
		m.watchers = make(map[string][]func(ctx context.Context, o module.Origin, owner jid.JID))
	}
	m.watchers[node] = append(m.watchers[node], fn)
}

// changed runs the watchers of node.
func (m *Module) changed(ctx context.Context, o module.Origin, owner jid.JID, node string) {
	for _, fn := range m.watchers[node] {
		fn(ctx, o, owner)
	}
}

type stats struct {
	publishes     atomic.Uint64
	notifications atomic.Uint64
	lastItems     atomic.Uint64
	refused       atomic.Uint64
	capsQueries   atomic.Uint64
	capsBad       atomic.Uint64
}

// New returns the module. ps holds the nodes, r is the roster the access models and notifications read.
func New(cfg Config, ps storage.PubSub, r storage.Roster) *Module {
	cfg.setDefaults()
	return &Module{
		cfg:    cfg,
		lim:    storage.PubSubLimits{MaxNodes: cfg.MaxNodes, MaxItems: cfg.MaxItems, MaxItemSize: cfg.MaxItemSize},
		ps:     ps,
		roster: r,
		caps:   newCapsCache(),
		online: make(map[string]map[string]onlineRes),
	}
}

// Name implements module.Module.
func (*Module) Name() string { return "pep" }

// Register implements module.Module: the pubsub/pep identity and the pubsub features on the account, the
// pubsub and pubsub#owner IQ handlers, the presence hook that tracks resources and sends last items, and the
// IQ response hook that takes the answers to capabilities queries.
func (m *Module) Register(h *module.Host) error {
	m.router = h.Router()
	m.log = h.Log()
	h.Identity(module.Account, module.Identity{Category: "pubsub", Type: "pep"})
	routes := []module.IQRoute{
		{Target: module.Account, Type: "get", NS: pubsub.NS, Local: "pubsub", Feature: pubsub.NS},
		{Target: module.Account, Type: "set", NS: pubsub.NS, Local: "pubsub"},
		{Target: module.Account, Type: "get", NS: pubsub.NSOwner, Local: "pubsub"},
		{Target: module.Account, Type: "set", NS: pubsub.NSOwner, Local: "pubsub"},
	}
	for _, r := range routes {
		if err := h.HandleIQ(r, m.handle); err != nil {
			return err
		}
	}
	for _, f := range Features() {
		if f == pubsub.NS {
			continue // advertised by the handler above
		}
		if err := h.Feature(module.Account, f); err != nil {
			return err
		}
	}
	h.OnPresence(m.presence)
	h.OnIQResponse(m.capsResponse)
	return nil
}

// Features returns the disco features the module advertises on every account: those of pubsub.Features()
// that it implements (all of them), plus #subscribe (explicit subscriptions), and #multi-items and
// #config-node-max, which Monal looks for ("modern" PEP: several items per node, max_items=max).
func Features() []string {
	return append(pubsub.Features(), pubsub.NS+"#subscribe", pubsub.NS+"#multi-items", pubsub.NS+"#config-node-max")
}

// WriteMetrics implements module.MetricsReporter.
func (m *Module) WriteMetrics(w io.Writer) {
	module.WriteCounter(w, "parley_pep_publishes_total", "Items published to PEP nodes.", m.stats.publishes.Load())
	module.WriteCounter(w, "parley_pep_notifications_total",
		"PEP event notifications sent (items, retractions, purges, deletions).", m.stats.notifications.Load())
	module.WriteCounter(w, "parley_pep_last_items_total",
		"Last published items sent on presence or subscription.", m.stats.lastItems.Load())
	module.WriteCounter(w, "parley_pep_refused_total", "PEP requests answered with an error.", m.stats.refused.Load())
	module.WriteCounter(w, "parley_pep_caps_queries_total",
		"disco#info queries sent to learn the features behind a caps hash.", m.stats.capsQueries.Load())
	module.WriteCounter(w, "parley_pep_caps_mismatch_total",
		"disco#info answers whose features did not match the announced caps hash.", m.stats.capsBad.Load())
}

var (
	_ module.Module          = (*Module)(nil)
	_ module.MetricsReporter = (*Module)(nil)
	_ module.Validator       = Config{}
)
