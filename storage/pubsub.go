package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrLimit is returned when a write would exceed one of the per-owner limits of PubSubLimits. The error is a
// *LimitError that names the limit; match it with errors.Is(err, ErrLimit) or errors.As.
var ErrLimit = errors.New("storage: limit exceeded")

// Names of the limits a LimitError reports.
const (
	LimitNodes    = "nodes per owner"
	LimitItems    = "items per node"
	LimitItemSize = "item size"
)

// LimitError says which limit a write would have exceeded. It wraps ErrLimit.
type LimitError struct {
	Limit string // LimitNodes, LimitItems or LimitItemSize
	Max   int    // the limit's value
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("storage: limit exceeded: %s (%d)", e.Limit, e.Max)
}

// Unwrap returns ErrLimit.
func (e *LimitError) Unwrap() error { return ErrLimit }

// PubSubLimits bounds what one owner may store. The module owns the values (from its configuration) and passes
// them with every write, so that a change of configuration applies without touching stored data. Zero or a
// negative value means no limit.
type PubSubLimits struct {
	MaxNodes    int // nodes per owner, checked by CreateNode
	MaxItems    int // items per node: the cap of a node whose MaxItems is 0 ("max"), and the largest MaxItems a node may have
	MaxItemSize int // bytes of one item's Payload, checked by Publish
}

// PubSubNode is the stored state of one publish-subscribe node (XEP-0060), a PEP node (XEP-0163) when Owner is
// an account.
type PubSubNode struct {
	Owner       string // the account's bare JID for PEP, or the pubsub service's JID
	Node        string // the node name, e.g. "urn:xmpp:omemo:2:devices"
	AccessModel string // pubsub#access_model ("presence", "open", "roster", "whitelist", ...), kept as a column for queries
	// MaxItems is how many items the node keeps: Publish trims the oldest beyond it. 0 means "max": as many as
	// PubSubLimits.MaxItems allows, and a publish beyond that fails instead of trimming.
	MaxItems int
	Config   []byte // the full node configuration as the pubsub library encodes it; opaque to storage
}

// PubSubItem is one published item.
type PubSubItem struct {
	ID        string    // unique within the node; publishing an existing id replaces the item
	Publisher string    // the publisher's JID
	Time      time.Time // when the server accepted the publication; kept to the microsecond, returned in UTC
	Payload   []byte    // the item's payload as published, byte for byte (never re-encoded: OMEMO bundles)
}

// PubSubItemQuery selects items of one node. The zero value selects every item.
type PubSubItemQuery struct {
	IDs  []string // only these ids, if set (absent ids are skipped, not an error)
	Last int      // only the Last most recently published items of the selection, if > 0
}

// Affiliations with a pubsub node (XEP-0060 section 4.1) beyond the room ones (AffOwner, AffMember, AffOutcast,
// AffNone), which have the same names.
const (
	AffPublisher   = "publisher"
	AffPublishOnly = "publish-only"
)

// PubSubAffiliation is a JID's lasting affiliation with a node; the whitelist access model grants access to
// members (and publishers and owners).
type PubSubAffiliation struct {
	JID         string // a bare JID
	Affiliation string // AffOwner, AffPublisher, AffPublishOnly, AffMember or AffOutcast
}

// PubSubSubscription is an explicit subscription to a node (XEP-0060 section 6.1). PEP mostly relies on
// implicit, presence-based subscriptions instead, which are never stored.
type PubSubSubscription struct {
	JID   string // the subscriber's JID, bare or full
	SubID string // the subscription id; may be empty (one subscription per JID)
	State string // "subscribed", "pending" or "unconfigured"
}

// PubSub stores publish-subscribe nodes, their items, affiliations and explicit subscriptions, per owner.
//
// Items have a publish order: each Publish makes its item the newest, also when it replaces an item of the
// same id. Items returns items in publish order, oldest first; trimming removes the oldest.
type PubSub interface {
	// CreateNode creates a node; ErrConflict if the owner already has a node of that name, a *LimitError
	// (LimitNodes) if the owner has lim.MaxNodes nodes, or (LimitItems) if n.MaxItems exceeds lim.MaxItems.
	CreateNode(ctx context.Context, n PubSubNode, lim PubSubLimits) error
	// ConfigureNode replaces a node's AccessModel, MaxItems and Config, trims the oldest items beyond the new
	// MaxItems and returns their ids, oldest first (for retraction notifications); ErrNotFound if there is no
	// such node; a *LimitError (LimitItems) if n.MaxItems exceeds lim.MaxItems.
	ConfigureNode(ctx context.Context, n PubSubNode, lim PubSubLimits) (trimmed []string, err error)
	// Node returns one node; ErrNotFound if there is no such node.
	Node(ctx context.Context, owner, node string) (PubSubNode, error)
	// Nodes returns every node of owner in ascending node name order.
	Nodes(ctx context.Context, owner string) ([]PubSubNode, error)
	// DeleteNode removes a node with its items, affiliations and subscriptions; ErrNotFound if there is no such
	// node.
	DeleteNode(ctx context.Context, owner, node string) error
	// Publish inserts item as the node's newest, replacing an item of the same id, then trims the node to its
	// MaxItems in the same transaction and returns the ids it removed, oldest first. ErrNotFound if there is
	// no such node; a *LimitError if the payload exceeds lim.MaxItemSize (LimitItemSize) or if a node with
	// MaxItems 0 already holds lim.MaxItems other items (LimitItems). A failed Publish changes nothing.
	Publish(ctx context.Context, owner, node string, item PubSubItem, lim PubSubLimits) (trimmed []string, err error)
	// Retract removes one item; ErrNotFound if there is no such node or item.
	Retract(ctx context.Context, owner, node, id string) error
	// Items returns the selected items of a node in publish order, oldest first; ErrNotFound if there is no
	// such node.
	Items(ctx context.Context, owner, node string, q PubSubItemQuery) ([]PubSubItem, error)
	// Purge removes every item of a node; ErrNotFound if there is no such node.
	Purge(ctx context.Context, owner, node string) error
	// SetNodeAffiliation inserts or replaces a.JID's affiliation, or removes it when a.Affiliation is AffNone
	// or empty; ErrNotFound if there is no such node.
	SetNodeAffiliation(ctx context.Context, owner, node string, a PubSubAffiliation) error
	// NodeAffiliations returns a node's affiliations in ascending JID order; ErrNotFound if there is no such
	// node.
	NodeAffiliations(ctx context.Context, owner, node string) ([]PubSubAffiliation, error)
	// SetSubscription inserts or replaces the subscription of (s.JID, s.SubID), or removes it when s.State is
	// "none" or empty; ErrNotFound if there is no such node.
	SetSubscription(ctx context.Context, owner, node string, s PubSubSubscription) error
	// Subscriptions returns a node's explicit subscriptions in ascending (JID, SubID) order; ErrNotFound if
	// there is no such node.
	Subscriptions(ctx context.Context, owner, node string) ([]PubSubSubscription, error)
	// DeleteOwner removes every node of owner with everything in them (Users.DeleteUser does it too).
	DeleteOwner(ctx context.Context, owner string) error
}

// CheckPubSubItem returns the *LimitError for an item whose payload exceeds lim.MaxItemSize, or nil. Drivers
// call it before writing; modules may call it to fail early.
func CheckPubSubItem(item PubSubItem, lim PubSubLimits) error {
	if lim.MaxItemSize > 0 && len(item.Payload) > lim.MaxItemSize {
		return &LimitError{Limit: LimitItemSize, Max: lim.MaxItemSize}
	}
	return nil
}

// CheckPubSubNode returns the *LimitError for a node whose MaxItems exceeds lim.MaxItems, or nil.
func CheckPubSubNode(n PubSubNode, lim PubSubLimits) error {
	if lim.MaxItems > 0 && n.MaxItems > lim.MaxItems {
		return &LimitError{Limit: LimitItems, Max: lim.MaxItems}
	}
	return nil
}

// EffectiveMaxItems is how many items a node keeps under lim: its MaxItems, or lim.MaxItems for "max" (0);
// 0 means unlimited.
func EffectiveMaxItems(n PubSubNode, lim PubSubLimits) int {
	if n.MaxItems > 0 {
		return n.MaxItems
	}
	if lim.MaxItems > 0 {
		return lim.MaxItems
	}
	return 0
}
