package pubsub

import (
	"slices"

	"parley.im/parley/storage"
)

// Relation is what the module knows of a requester (a subscriber, a notification's recipient) relative to a
// node: its owner's roster entry for the requester's bare JID and the requester's node affiliation.
type Relation struct {
	Owner        bool                 // the requester's bare JID is the node's owner (PEP: the account itself)
	InRoster     bool                 // the requester is an item of the owner's roster
	Subscription storage.Subscription // that item's subscription; from or both means it gets the owner's presence
	Groups       []string             // that item's roster groups
	Affiliation  string               // the requester's node affiliation (storage.AffMember, ...), "" for none
}

// PresenceSubscribed reports whether the requester receives the owner's presence (subscription from or
// both), which the presence access model asks for.
func (r Relation) PresenceSubscribed() bool {
	return r.InRoster && (r.Subscription == storage.SubFrom || r.Subscription == storage.SubBoth)
}

// Access returns nil if the requester may retrieve the node's items and receive its notifications under c,
// or the stanza error to answer with (XEP-0060 section 6.1.3 and 6.5.9): an outcast is forbidden under every
// model; presence wants a presence subscription (presence-subscription-required), roster a roster item in one
// of c.RosterGroups, or in any group when c.RosterGroups is empty (not-in-roster-group), whitelist a member,
// publisher or owner affiliation (closed-node). The owner always has access.
func Access(c Config, r Relation) error {
	if r.Owner || r.Affiliation == storage.AffOwner {
		return nil
	}
	if r.Affiliation == storage.AffOutcast {
		return Errorf("forbidden", "", "")
	}
	switch c.AccessModel {
	case AccessOpen:
		return nil
	case AccessPresence:
		if r.PresenceSubscribed() {
			return nil
		}
		return ErrPresenceRequired
	case AccessRoster:
		if r.InRoster && (len(c.RosterGroups) == 0 || slices.ContainsFunc(r.Groups, func(g string) bool {
			return slices.Contains(c.RosterGroups, g)
		})) {
			return nil
		}
		return ErrNotInRosterGroup
	case AccessWhitelist:
		switch r.Affiliation {
		case storage.AffMember, storage.AffPublisher:
			return nil
		}
		return ErrClosedNode
	}
	return ErrUnsupportedModel
}

// CanAccess reports whether Access(c, r) is nil, for filtering notification recipients.
func CanAccess(c Config, r Relation) bool { return Access(c, r) == nil }
