package storage

import "context"

// RoomRecord is the stored state of one persistent multi-user chat room.
type RoomRecord struct {
	JID    string // the room's bare JID ("room@conference.example.net")
	Config []byte // the room's configuration as the MUC module encodes it; opaque to storage
}

// Affiliations a user can hold with a room (XEP-0045 section 5.2). "none" is the absence of a record.
const (
	AffOwner   = "owner"
	AffAdmin   = "admin"
	AffMember  = "member"
	AffOutcast = "outcast"
	AffNone    = "none"
)

// RoomAffiliation is a user's lasting affiliation with a room.
type RoomAffiliation struct {
	JID         string // the user's bare JID, or a domain for a server-wide ban
	Affiliation string // AffOwner, AffAdmin, AffMember or AffOutcast
	Nick        string // the nickname reserved for the user in this room; may be empty
	Reason      string // why the affiliation was granted (a ban reason); may be empty
}

// Rooms stores persistent multi-user chat rooms (XEP-0045): each room's configuration and its affiliation
// list. Temporary rooms live only in the MUC module's memory. A room's history lives in the "muc" Archive,
// owned by the room's JID, and is not removed by DeleteRoom.
type Rooms interface {
	// PutRoom inserts or replaces a room's configuration.
	PutRoom(ctx context.Context, room string, config []byte) error
	// Room returns a room's configuration; ErrNotFound if there is no such room.
	Room(ctx context.Context, room string) ([]byte, error)
	// DeleteRoom removes a room and its affiliations; ErrNotFound if there is no such room.
	DeleteRoom(ctx context.Context, room string) error
	// ListRooms returns up to limit rooms in ascending JID order, starting after the JID after; limit <= 0
	// lists every room after after.
	ListRooms(ctx context.Context, after string, limit int) ([]RoomRecord, error)
	// SetAffiliation inserts or replaces the affiliation of a.JID with a room, or removes it when
	// a.Affiliation is AffNone or empty; ErrNotFound if there is no such room.
	SetAffiliation(ctx context.Context, room string, a RoomAffiliation) error
	// Affiliations returns every affiliation of a room in ascending JID order; ErrNotFound if there is no such
	// room.
	Affiliations(ctx context.Context, room string) ([]RoomAffiliation, error)
}
