// Package module is the contract between Parley's core and its protocol modules.
//
// A Module is a value with a Name and a Register method; everything it hooks into is visible in Register:
// IQ handlers by (target, type, payload namespace, payload name) together with the disco feature they
// advertise, message stages, the presence handler, session events and stream features. Registrations that
// conflict fail at startup and name both modules and both call sites.
//
// Modules import this package, xmpp/stanza and storage interfaces only; never the c2s listener, the router or a
// storage driver.
package module

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/stanza"
)

// Module is one protocol feature of the server.
type Module interface {
	// Name is a short identifier used in logs, metrics and error messages ("roster", "ping").
	Name() string
	// Register hooks the module into the server. It runs once, before the server listens.
	Register(h *Host) error
}

// Runner is implemented by modules with background work (expiry sweeps). The server calls Run in its own
// goroutine once it listens; Run returns when ctx ends.
type Runner interface {
	Run(ctx context.Context)
}

// Session is what modules see of one bound client session.
type Session interface {
	// ID is the connection id that appears in logs.
	ID() string
	// JID is the session's full JID.
	JID() jid.JID
	// Send queues a stanza for the session. It never blocks on the network; it fails if the session is closed
	// or its queue is over its limit (the session is then closed with a stream error).
	Send(s *stanza.Stanza) error
	// Presence returns the session's last broadcast presence, nil before initial presence or after unavailable.
	Presence() *stanza.Stanza
	// Priority is the priority of the last available presence (RFC 6121 section 4.7.2.3).
	Priority() int
	// Available reports whether the session has sent available presence and not yet unavailable.
	Available() bool
	// SetPresence records the session's broadcast presence; nil marks it unavailable.
	SetPresence(p *stanza.Stanza, priority int)
	// Interested reports whether the session requested the roster (an interested resource, RFC 6121 2.1.6).
	Interested() bool
	// SetInterested marks the session as having requested the roster.
	SetInterested()
	// Close ends the session with the given stream error condition ("" for a clean close).
	Close(condition, text string)
	// Hibernating reports whether the session has lost its connection and waits for a XEP-0198 resumption:
	// stanzas sent to it are kept, and push notifications are due.
	Hibernating() bool
	// Describe returns the session's description, what a directory shares about it across nodes.
	Describe() Resource
	// SetCarbons records whether the session enabled message carbons (Resource.Carbons).
	SetCarbons(on bool)
	// SetCaps records the XEP-0115 verification string the session announced (Resource.Caps).
	SetCaps(ver string)
}

// Router is what modules may ask of the server's router.
type Router interface {
	// Route routes a stanza the server or a module emits, applying every delivery rule as for a client stanza.
	// Its origin is the server (Origin{}).
	Route(ctx context.Context, s *stanza.Stanza)
	// RouteFrom routes a stanza from origin o. A module that emits a stanza while it handles another passes
	// o.Emitted(), so that the delivery joins the write batch of the connection that sent the first.
	RouteFrom(ctx context.Context, o Origin, s *stanza.Stanza)
	// Deliver routes s to the entity to, as if s were addressed there, without rewriting it: the same bytes
	// reach every local recipient (a presence broadcast to a contact, a probe). What the Directory places
	// elsewhere is handed to the Remote route. Outbound processing is not applied: s comes from the server's
	// side.
	Deliver(ctx context.Context, o Origin, to jid.JID, s *stanza.Stanza)
	// Sessions returns the sessions of a local account (bare JID) bound on this node, in bind order.
	Sessions(bare jid.JID) []Session
	// Lookup returns every resource of a local account the Directory knows: the sessions on this node and the
	// descriptions of those on other nodes.
	Lookup(bare jid.JID) Resources
	// Session returns the bound session with that full JID, or nil.
	Session(full jid.JID) Session
	// IsLocal reports whether the domain of j is served by this server.
	IsLocal(j jid.JID) bool
	// Notify runs the hooks of a session event (the presence module reports Available through it).
	Notify(ctx context.Context, ev SessionEvent, s Session)
}

// Stage names a point in the life of a message on its way through the router.
type Stage int

// Message stages, in the order a message passes them.
const (
	// Outbound runs for a message sent by a local session, before it is routed (blocking, carbons of sent
	// messages, archiving the sender's copy).
	Outbound Stage = iota + 1
	// Inbound runs for a message to a local account, before it is delivered to its sessions (archiving the
	// recipient's copy, stamping stanza-id, carbons of received messages).
	Inbound
	// Undeliverable runs when a message to a local account has no session to take it (offline storage, push).
	Undeliverable
)

func (s Stage) String() string {
	switch s {
	case Outbound:
		return "outbound"
	case Inbound:
		return "inbound"
	case Undeliverable:
		return "undeliverable"
	}
	return "unknown"
}

// Verdict is what a stage hook decides about a message.
type Verdict int

// Verdicts.
const (
	// Continue passes the message to the next hook and on.
	Continue Verdict = iota
	// Handled stops processing: the hook took care of the message (stored it, answered it).
	Handled
)

// Delivery is the message a stage hook looks at. A hook may replace Stanza with an edited copy; later hooks and
// delivery see the replacement.
type Delivery struct {
	Stanza *stanza.Stanza
	// Origin is where the message came from (Origin.Session: the local session that sent it). The router sets
	// it, never nil; hooks only read it.
	Origin *Origin
	// Owner is the local account the stage runs for: the sender's bare JID in Outbound, the recipient's in
	// Inbound and Undeliverable.
	Owner jid.JID
	// Targets are, in Inbound, the local sessions the router is about to deliver to (carbons copy to the
	// others).
	Targets []Session
	// Remote are, in Inbound, the resources on other nodes the router is about to hand the message to.
	Remote []Resource
}

// MessageHook is a typed message stage hook.
type MessageHook func(ctx context.Context, d *Delivery) (Verdict, error)

// Target says to whom an IQ must be addressed for a handler to get it.
type Target uint8

// IQ targets (a bit set: a handler may serve several).
const (
	// Server: the IQ is addressed to the server's domain.
	Server Target = 1 << iota
	// Account: the IQ is addressed to a local account's bare JID, or has no to (RFC 6120 10.3.3: handled on
	// behalf of the sender's own account). Handlers that only serve the sender check IQ.ToSelf.
	Account
	// PreAuth: the IQ arrives on a stream before authentication (only in-band registration does this).
	PreAuth
)

// IQ is an IQ request handed to a handler.
type IQ struct {
	*stanza.Stanza
	// Origin is where the IQ came from. Origin.Session is the local session that sent it; nil when it came
	// from elsewhere or before authentication.
	Origin Origin
	// Local and NS name the payload element; Payload is its bytes.
	Local, NS string
	Payload   []byte
	// RemoteAddr is the client's address (host only), for per-IP throttling.
	RemoteAddr string
}

// ToSelf reports whether the IQ is addressed to the sender's own account (no to, or to its bare JID).
func (iq *IQ) ToSelf() bool {
	return iq.To.Equal(jid.JID{}) || iq.To.Equal(iq.From.Bare())
}

// ErrAnswered is returned by an IQ handler that has sent its answer itself (for example before closing the
// session that asked); the router then sends nothing.
var ErrAnswered = errors.New("module: iq answered by the handler")

// IQHandler answers an IQ request. It returns the inner XML of the result (nil for an empty result), or an
// error: a *stanza.Error becomes that error reply; any other error is logged and becomes internal-server-error.
type IQHandler func(ctx context.Context, iq *IQ) ([]byte, error)

// IQRoute says which IQs a handler takes.
type IQRoute struct {
	Target Target
	Type   string // "get" or "set"
	NS     string // payload namespace
	Local  string // payload element name
	// Feature is the disco feature this handler implements, advertised for each target it serves. Empty when
	// the namespace is not advertised (for example, already covered by another feature).
	Feature string
}

// PresenceHandler implements presence semantics (RFC 6121). Exactly one module registers one.
type PresenceHandler interface {
	// Outbound handles a presence stanza sent by a local session, o.Session.
	Outbound(ctx context.Context, o Origin, p *stanza.Stanza) error
	// Inbound handles a presence stanza for a local account from anyone else: to is the bare or full JID it
	// is for, p.To when it was routed, the contact's bare JID for a broadcast (p has no to then). It concerns
	// only the account's sessions on this node: the router has handed the others' share to Remote.
	Inbound(ctx context.Context, o Origin, to jid.JID, p *stanza.Stanza) error
}

// ServiceHandler takes every stanza addressed to a service domain (the MUC service, the upload service). The
// service answers through the router; the router applies no delivery rules to its stanzas.
type ServiceHandler interface {
	// HandleStanza handles one stanza from o.
	HandleStanza(ctx context.Context, o Origin, s *stanza.Stanza)
}

// SessionEvent is a point in a session's life.
type SessionEvent int

// Session events.
const (
	// Bound fires once a resource is bound, before the session can send stanzas.
	Bound SessionEvent = iota + 1
	// Closed fires when a bound session ends (after its last stanza was processed).
	Closed
	// Available fires after a session's initial presence with non-negative priority has been broadcast: it may
	// now receive messages addressed to the bare JID (offline messages are delivered here).
	Available
)

// IQResponseHook sees an IQ result or error addressed to a local account's bare JID, which no session takes
// (RFC 6121 8.5.2.1.1): the answer to a request a module sent on the account's behalf. It reports whether it
// took the stanza.
type IQResponseHook func(ctx context.Context, s *stanza.Stanza) bool

// FilterHook decides whether a presence stanza or an IQ request between a local account, owner, and another
// entity, peer, may pass (XEP-0191 blocking). It runs in the Outbound stage for what owner sends to peer and in
// the Inbound stage for what peer sends to owner; messages have their own stages (OnMessage). It returns
// Continue to let the stanza pass, Handled to drop it silently, or an error, which the router sends back to the
// sender as a stanza error (for presence the router drops the stanza without an answer). Hooks must not modify s.
type FilterHook func(ctx context.Context, owner, peer jid.JID, s *stanza.Stanza) (Verdict, error)

// PresenceHook sees an availability presence (available or unavailable) from another entity, or from another
// resource of the same account, that reached a local account: to is the account's bare JID for a broadcast, a
// full JID for directed presence or a probe's answer. It runs after the presence handler has delivered p to the
// account's sessions, for presence from local sessions and from other servers alike. PEP uses it to learn which
// resources are online with which XEP-0115 capabilities, and to send them the last published items
// (XEP-0163 section 4.3.4). Hooks must not modify p.
type PresenceHook func(ctx context.Context, o Origin, to jid.JID, p *stanza.Stanza)

// PresenceEditHook sees an available presence (type "") a local session s sent, broadcast or directed, before
// the presence handler takes it, and returns the presence to go on with: p itself when it changes nothing, or
// an edited copy (stanza.WithoutChildren, AppendChild), which is what the handler records and broadcasts.
// vcard adds the XEP-0153 avatar hash here. It runs on the sender's path for every available presence: it must
// be cheap (no storage read in the common case) and must not modify p in place.
type PresenceEditHook func(ctx context.Context, s Session, p *stanza.Stanza) *stanza.Stanza

// SessionHook is called on a session event.
type SessionHook func(ctx context.Context, s Session)

// Identity is a XEP-0030 identity.
type Identity struct {
	Category, Type, Name string
}

// Item is a XEP-0030 item.
type Item struct {
	JID, Name string
}

// Host is a module's view of the server during Register. Its methods record the module's name and call site so
// that conflicts can name both parties.
type Host struct {
	reg    *Registry
	module string
	log    *slog.Logger
	router Router
	domain jid.JID
}

// Domain returns the server's domain JID.
func (h *Host) Domain() jid.JID { return h.domain }

// Log returns a logger with module=<name>.
func (h *Host) Log() *slog.Logger { return h.log }

// Router returns the server's router. It may be called during Register but used only once the server runs.
func (h *Host) Router() Router { return h.router }

// HandleIQ registers an IQ handler and, if route.Feature is set, its disco feature.
func (h *Host) HandleIQ(route IQRoute, fn IQHandler) error {
	return h.reg.addIQ(h.module, caller(), route, fn)
}

// Feature advertises a disco feature that has no IQ handler of its own (for example message-only protocols).
func (h *Host) Feature(target Target, feature string) error {
	return h.reg.addFeature(h.module, caller(), target, feature)
}

// Identity adds a disco identity for a target.
func (h *Host) Identity(target Target, id Identity) { h.reg.addIdentity(target, id) }

// OnMessage adds a hook to a message stage. Hooks run in module-list order.
func (h *Host) OnMessage(stage Stage, fn MessageHook) {
	h.reg.addMessageHook(h.module, stage, fn)
}

// HandlePresence installs the presence handler; a second one is a conflict.
func (h *Host) HandlePresence(p PresenceHandler) error {
	return h.reg.setPresence(h.module, caller(), p)
}

// OnSession adds a session event hook. Hooks run in module-list order for Bound and in reverse for Closed.
func (h *Host) OnSession(ev SessionEvent, fn SessionHook) {
	h.reg.addSessionHook(h.module, ev, fn)
}

// OnIQResponse adds a hook for IQ results and errors addressed to a local bare JID. Hooks run in module-list
// order until one takes the stanza.
func (h *Host) OnIQResponse(fn IQResponseHook) { h.reg.iqResponses = append(h.reg.iqResponses, fn) }

// OnFilter adds a presence and IQ filter to the Outbound or the Inbound stage. Filters run in module-list order
// until one stops the stanza.
func (h *Host) OnFilter(stage Stage, fn FilterHook) { h.reg.addFilter(stage, fn) }

// OnPresence adds a hook for availability presence that reached a local account. Hooks run in module-list order.
func (h *Host) OnPresence(fn PresenceHook) { h.reg.presenceHooks = append(h.reg.presenceHooks, fn) }

// EditPresence adds a hook that may edit available presence sent by local sessions before the presence handler
// takes it. Hooks run in module-list order, each on the previous one's result.
func (h *Host) EditPresence(fn PresenceEditHook) {
	h.reg.presenceEdits = append(h.reg.presenceEdits, fn)
}

// DiscoItem lists an item (a service such as the MUC or upload service) in disco#items of a target.
func (h *Host) DiscoItem(target Target, jid, name string) {
	h.reg.addItem(target, Item{JID: jid, Name: name})
}

// Service routes every stanza addressed to domain (a subdomain such as conference.example.net) to handler, and
// lists the service in the server's disco#items under name.
func (h *Host) Service(domain jid.JID, name string, handler ServiceHandler) error {
	if err := h.reg.addService(h.module, caller(), domain, handler); err != nil {
		return err
	}
	h.reg.addItem(Server, Item{JID: domain.String(), Name: name})
	return nil
}

// StreamFeature adds an element to the stream features a bound-capable (authenticated) stream offers, such as
// roster versioning or pre-approval support.
func (h *Host) StreamFeature(xml string) { h.reg.addStreamFeature(xml) }

// Every calls fn at once and then every interval until ctx ends. Modules' Run methods use it for expiry sweeps.
func Every(ctx context.Context, interval time.Duration, fn func(ctx context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
