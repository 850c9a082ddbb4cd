// Package storage defines the narrow, shape-based interfaces through which Parley keeps its data.
//
// Modules receive only the interface they need (a roster module gets a Roster, offline storage gets an
// Archive). Drivers live in subpackages: storage/sqlite (the embedded default) and storage/pg (PostgreSQL);
// both pass the shared contract suite in storage/storagetest.
//
// Keys that name an owner are normalized bare JIDs ("alice@example.net", "room@conference.example.net").
package storage

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when the requested record does not exist.
var ErrNotFound = errors.New("storage: not found")

// ErrConflict is returned when a record that must be unique already exists.
var ErrConflict = errors.New("storage: conflict")

// ScramCredential is the salted key set of one SCRAM hash for one account (RFC 5802 section 3). The server
// never stores the password, nor the salted password: only what a SCRAM server step needs.
type ScramCredential struct {
	Mechanism  string // "SCRAM-SHA-1", "SCRAM-SHA-256" or "SCRAM-SHA-512"
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Users stores accounts and their credentials.
type Users interface {
	// CreateUser adds an account; ErrConflict if it exists.
	CreateUser(ctx context.Context, user string, creds []ScramCredential) error
	// Credentials returns the account's credentials; ErrNotFound if there is no such account.
	Credentials(ctx context.Context, user string) ([]ScramCredential, error)
	// SetCredentials replaces every credential of the account; ErrNotFound if there is no such account.
	SetCredentials(ctx context.Context, user string, creds []ScramCredential) error
	// DeleteUser removes the account and everything stored for it (roster, key-value data, archives owned by
	// it, its pubsub nodes); ErrNotFound if there is no such account.
	DeleteUser(ctx context.Context, user string) error
	// ListUsers returns up to limit account names in ascending order, starting after the name after.
	ListUsers(ctx context.Context, after string, limit int) ([]string, error)
}

// Subscription is the RFC 6121 subscription state of a roster item.
type Subscription string

// Subscription states (RFC 6121 section 2.1.2.5).
const (
	SubNone Subscription = "none"
	SubTo   Subscription = "to"
	SubFrom Subscription = "from"
	SubBoth Subscription = "both"
)

// RosterItem is one contact in an account's roster, with the subscription bookkeeping RFC 6121 needs.
type RosterItem struct {
	JID          string // the contact's bare JID
	Name         string
	Subscription Subscription
	AskOut       bool // an outbound subscription request is pending (ask='subscribe')
	PendingIn    bool // an inbound subscription request awaits the owner's answer
	PreApproved  bool // the owner pre-approved the contact's subscription request (RFC 6121 3.4)
	Groups       []string
}

// Roster stores rosters with a version number per owner (XEP-0237). Every change increases the version.
type Roster interface {
	// Roster returns every item of owner's roster and its current version (0 when empty and never changed).
	Roster(ctx context.Context, owner string) ([]RosterItem, int64, error)
	// RosterItem returns one item; ErrNotFound if the contact is not in the roster.
	RosterItem(ctx context.Context, owner, contact string) (RosterItem, error)
	// PutRosterItem inserts or replaces an item and returns the new roster version.
	PutRosterItem(ctx context.Context, owner string, item RosterItem) (int64, error)
	// DeleteRosterItem removes an item and returns the new roster version; ErrNotFound if it is absent.
	DeleteRosterItem(ctx context.Context, owner, contact string) (int64, error)
}

// KV is a small key-value store per owner, for documents such as private XML, vCards or preferences.
type KV interface {
	// Value returns the stored value; ErrNotFound if absent.
	Value(ctx context.Context, owner, key string) ([]byte, error)
	// PutValue inserts or replaces a value.
	PutValue(ctx context.Context, owner, key string, value []byte) error
	// DeleteValue removes a value; deleting an absent key is not an error.
	DeleteValue(ctx context.Context, owner, key string) error
	// Keys lists the owner's keys that start with prefix, in ascending order.
	Keys(ctx context.Context, owner, prefix string) ([]string, error)
}

// ArchiveItem is one stored stanza in an archive (message archive, offline queue, room history).
type ArchiveItem struct {
	ID       string    // unique within the archive; assigned by the caller (the stanza-id it advertises)
	With     string    // the bare JID of the other party, for filtering
	Time     time.Time // when the server accepted the stanza
	OriginID string    // the sender's XEP-0359 origin-id (or stanza id), for de-duplication; may be empty
	Data     []byte    // the stanza as it will be delivered
}

// ArchiveQuery selects items of one owner's archive (XEP-0313 filters with XEP-0059 paging).
type ArchiveQuery struct {
	With     string    // only items with this bare JID, if set
	Start    time.Time // only items at or after Start, if set
	End      time.Time // only items at or before End, if set
	AfterID  string    // only items after this id, if set (ErrNotFound if the id is not in the archive)
	BeforeID string    // only items before this id, if set (ErrNotFound if the id is not in the archive)
	IDs      []string  // only these ids, if set
	Limit    int       // at most this many items; 0 means no limit
	Last     bool      // take the last Limit items of the selection instead of the first (RSM <before/>)
}

// Archive is an append-only, time-ordered log of stanzas per owner. Items come back in the order they were
// appended. One driver holds several archives, each opened by name ("mam", "offline", "muc").
type Archive interface {
	// Append stores items for owner. Within one call the items are committed together or not at all; when
	// Append returns nil they are durable.
	Append(ctx context.Context, owner string, items ...ArchiveItem) error
	// Query returns the selected items in append order and whether they reach the end of the selection in the
	// paging direction (RSM complete).
	Query(ctx context.Context, owner string, q ArchiveQuery) (items []ArchiveItem, complete bool, err error)
	// Count returns the number of items matching the query's filters, ignoring its paging fields.
	Count(ctx context.Context, owner string, q ArchiveQuery) (int, error)
	// Delete removes the given ids of owner's archive; absent ids are ignored.
	Delete(ctx context.Context, owner string, ids ...string) error
	// DeleteOwner removes every item of owner.
	DeleteOwner(ctx context.Context, owner string) error
	// DeleteBefore removes every item (of all owners) older than t and returns how many it removed.
	DeleteBefore(ctx context.Context, t time.Time) (int64, error)
	// HasOrigin reports whether owner's archive holds an item with this origin id and With, for de-duplication.
	HasOrigin(ctx context.Context, owner, with, originID string) (bool, error)
}

// Store is everything one storage driver provides.
type Store interface {
	Users
	Roster
	KV
	Rooms
	PubSub
	// Archive opens the archive with the given name (created on first use).
	Archive(name string) Archive
	// Ping checks that the backend answers.
	Ping(ctx context.Context) error
	// Close releases the driver's resources.
	Close() error
}
