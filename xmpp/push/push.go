// Package push implements XEP-0357: Push Notifications, the user's server side. A client enables push for its
// account by naming an app server (an XMPP Push Service: a JID and a pubsub node, with an optional
// publish-options form carrying its credentials); when a message worth waking a device arrives and the device
// cannot take it, the server publishes a summary (message count, sender, optionally the body) to that node, and
// the app server wakes the device through its platform's push service.
//
// A notification is due when a message arrives for an account with registrations and either no session can
// take it (the Undeliverable stage, before offline storage) or a session it goes to is hibernating, waiting for
// a XEP-0198 resumption (the Inbound stage). Registrations are kept in the key-value store, one key per app
// server and node, so they survive restarts; counters and throttling are in memory.
package push

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// NS is the XEP-0357 namespace, also its disco feature on the account.
const NS = "urn:xmpp:push:0"

// Config configures push notifications. The zero value of each field means its documented default.
type Config struct {
	// IncludeBody puts the message body in the notification (last-message-body). Default false: the body would
	// pass through the app developer's server and the platform's push service in the clear.
	IncludeBody bool `yaml:"include_body"`
	// IncludeSender puts the sender's bare JID in the notification (last-message-sender). Default true.
	IncludeSender *bool `yaml:"include_sender"`
	// MinInterval is the least time between two notifications to one registration. Messages within it are
	// coalesced into one notification sent when it ends (unless the device came back meanwhile); the first
	// message after a quiet period is always announced at once. Default 10s; negative turns throttling off.
	MinInterval time.Duration `yaml:"min_interval"`
	// MaxRegistrations caps the app servers (JID and node pairs) one account may enable; enabling one more
	// replaces the oldest. Default 10.
	MaxRegistrations int `yaml:"max_registrations"`
	// Redelivery is how long after a message arrived it may come to the module again: a XEP-0198 session that
	// hibernated when it arrived routes it again when it ends unresumed, up to c2s.resume_timeout later. Within
	// it (plus a minute) a message is not announced twice to one registration. Not a key of its own: cmd/parley
	// sets it from c2s.resume_timeout. Default 5m, that key's default.
	Redelivery time.Duration `yaml:"-"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.MaxRegistrations < 0 {
		return errors.New("push.max_registrations: must not be negative")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.IncludeSender == nil {
		t := true
		c.IncludeSender = &t
	}
	if c.MinInterval == 0 {
		c.MinInterval = 10 * time.Second
	}
	if c.MaxRegistrations == 0 {
		c.MaxRegistrations = 10
	}
	if c.Redelivery <= 0 {
		c.Redelivery = 5 * time.Minute
	}
}

// Module serves the enable and disable requests and publishes notifications.
type Module struct {
	cfg    Config
	kv     storage.KV
	router module.Router
	log    *slog.Logger
	clock  clock

	// mu guards the maps below. It is a leaf: no storage call, Route or Session method runs while it is held.
	mu       sync.Mutex
	counts   map[string]*counter                  // owner -> messages announced since the account was last seen live
	throttle map[string]map[regKey]*throttleState // owner -> registration -> its throttle
	pending  map[string]pendingPublish            // publish id -> what it was for, to act on the app server's answer
	// announced remembers which registrations recent messages were announced to (announced.go).
	announced *announcements
	// active is len(counts), read without mu on the hot path: while no account waits for its device, messages
	// to live sessions and from local sessions cost one atomic load here.
	active atomic.Int64

	// Enabled counts enable requests, Disabled disable requests that removed something.
	Enabled, Disabled atomic.Uint64
	// Published counts notifications sent, Coalesced messages folded into a later notification by MinInterval.
	Published, Coalesced atomic.Uint64
	// Failed counts registrations removed because their app server answered a notification with an error.
	Failed atomic.Uint64
}

// New returns the module; kv holds the registrations.
func New(cfg Config, kv storage.KV) *Module {
	cfg.setDefaults()
	return &Module{
		cfg: cfg, kv: kv, clock: realClock{}, log: slog.New(slog.DiscardHandler),
		counts:   make(map[string]*counter),
		throttle: make(map[string]map[regKey]*throttleState),
		pending:  make(map[string]pendingPublish),
		// A minute more than the longest a hibernating session keeps a message, for the reroute to run.
		announced: newAnnouncements(cfg.Redelivery + time.Minute),
	}
}

// Name implements module.Module.
func (*Module) Name() string { return "push" }

// Register implements module.Module.
func (m *Module) Register(h *module.Host) error {
	m.router = h.Router()
	m.log = h.Log()
	if err := h.HandleIQ(module.IQRoute{Target: module.Account, Type: "set", NS: NS, Local: "enable", Feature: NS}, m.enable); err != nil {
		return err
	}
	if err := h.HandleIQ(module.IQRoute{Target: module.Account, Type: "set", NS: NS, Local: "disable", Feature: NS}, m.disable); err != nil {
		return err
	}
	// Undeliverable: must come before offline storage, whose hook handles the message and ends the chain.
	h.OnMessage(module.Undeliverable, m.undeliverable)
	h.OnMessage(module.Inbound, m.inbound)
	// A message the user sends, or an available session, shows the user is back: the count starts over.
	h.OnMessage(module.Outbound, m.outbound)
	h.OnSession(module.Available, func(_ context.Context, s module.Session) { m.seen(s.JID().Bare()) })
	h.OnIQResponse(m.HandleResponse)
	return nil
}

// Run expires what the module keeps in memory until ctx ends (module.Runner): answers that never came, throttle
// state of quiet registrations and counts of accounts not heard of for a week. Then it stops pending timers.
func (m *Module) Run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.stopTimers()
			return
		case <-t.C:
			m.sweep(m.clock.Now())
		}
	}
}

func (m *Module) undeliverable(ctx context.Context, d *module.Delivery) (module.Verdict, error) {
	if n, ok := summarize(d.Stanza, true); ok {
		m.notify(ctx, d.Owner, d.Stanza, n, false)
	}
	return module.Continue, nil
}

func (m *Module) inbound(ctx context.Context, d *module.Delivery) (module.Verdict, error) {
	if !eligibleType(d.Stanza.Type) {
		return module.Continue, nil
	}
	hibernating := false
	for _, t := range d.Targets {
		if t.Hibernating() {
			hibernating = true
			break
		}
	}
	if !hibernating {
		// Every session it goes to is connected: the user reads along.
		if m.active.Load() > 0 {
			m.seen(d.Owner)
		}
		return module.Continue, nil
	}
	if n, ok := summarize(d.Stanza, false); ok {
		// Remembered: a hibernating session routes the message again if it ends unresumed (announced.go).
		m.notify(ctx, d.Owner, d.Stanza, n, true)
	}
	return module.Continue, nil
}

func (m *Module) outbound(_ context.Context, d *module.Delivery) (module.Verdict, error) {
	if m.active.Load() > 0 {
		m.seen(d.Owner)
	}
	return module.Continue, nil
}

// notify announces a message to every registration of owner whose device is not connected and that was not
// told of this message before. remember records the announcement, for a message that may come back.
func (m *Module) notify(ctx context.Context, owner jid.JID, msg *stanza.Stanza, n summary, remember bool) {
	regs, err := m.registrations(ctx, owner)
	if err != nil {
		m.log.Error("reading push registrations failed", "owner", owner.String(), "err", err)
		return
	}
	if len(regs) == 0 {
		return
	}
	live := m.liveResources(owner)
	due := regs[:0]
	for _, r := range regs {
		// A device whose session is connected takes the message itself. Registrations name the resource that
		// enabled them; one that no session holds any more is announced to.
		if r.Resource == "" || !live[r.Resource] {
			due = append(due, r)
		}
	}
	if len(due) == 0 {
		return
	}
	// A message that comes back (its hibernating session ended unresumed) was announced already.
	key := m.announced.messageKey(msg)
	o, now := owner.String(), m.clock.Now()
	m.mu.Lock()
	first := due[:0]
	for _, r := range due {
		if m.announced.first(key, o, regKey{r.JID, r.Node}, now, remember) {
			first = append(first, r)
		}
	}
	m.mu.Unlock()
	due = first
	if len(due) == 0 {
		return
	}
	n.count = m.count(owner)
	for _, r := range due {
		m.dispatch(ctx, owner, r, n)
	}
}

// liveResources returns the resources of owner's sessions that have a connection (bound, not hibernating).
func (m *Module) liveResources(owner jid.JID) map[string]bool {
	var live map[string]bool
	for _, s := range m.router.Sessions(owner) {
		if !s.Hibernating() {
			if live == nil {
				live = make(map[string]bool)
			}
			live[s.JID().Resourcepart()] = true
		}
	}
	return live
}

// counter counts the messages announced for an account since it was last seen live.
type counter struct {
	n    int
	last time.Time
}

// count adds one message to owner's count and returns the new count.
func (m *Module) count(owner jid.JID) int {
	k := owner.String()
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counts[k]
	if c == nil {
		c = &counter{}
		m.counts[k] = c
		m.active.Add(1)
	}
	c.n++
	c.last = m.clock.Now()
	return c.n
}

// seen records that the user of owner is back: the count starts over and coalesced notifications not yet sent
// are dropped when their timer fires.
func (m *Module) seen(owner jid.JID) {
	k := owner.String()
	m.mu.Lock()
	if _, ok := m.counts[k]; ok {
		delete(m.counts, k)
		m.active.Add(-1)
	}
	m.mu.Unlock()
}

func (m *Module) sweep(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.announced.expire(now)
	for id, p := range m.pending {
		if now.Sub(p.sent) > responseTimeout {
			delete(m.pending, id)
		}
	}
	for owner, regs := range m.throttle {
		for k, st := range regs {
			if st.timer == nil && now.Sub(st.last) >= m.cfg.MinInterval {
				delete(regs, k)
			}
		}
		if len(regs) == 0 {
			delete(m.throttle, owner)
		}
	}
	for owner, c := range m.counts {
		if now.Sub(c.last) > 7*24*time.Hour {
			delete(m.counts, owner)
			m.active.Add(-1)
		}
	}
}

func (m *Module) stopTimers() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, regs := range m.throttle {
		for _, st := range regs {
			if st.timer != nil {
				st.timer.Stop()
				st.timer, st.due = nil, nil
			}
		}
	}
}

// clock is time as the module sees it; tests replace it.
type clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) timer
}

type timer interface{ Stop() bool }

type realClock struct{}

func (realClock) Now() time.Time                            { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) timer { return time.AfterFunc(d, f) }

var (
	_ module.Module = (*Module)(nil)
	_ module.Runner = (*Module)(nil)
)
