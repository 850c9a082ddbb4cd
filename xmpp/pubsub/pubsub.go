// Package pubsub implements the protocol of XEP-0060: Publish-Subscribe that XEP-0163: Personal Eventing
// Protocol (PEP) builds on, as a library: node configuration and its defaults, the pubsub#node_config form and
// XEP-0223 publish-options preconditions, access checks, parsing of pubsub requests from untrusted bytes,
// building results and event notifications, and the XEP-0115 "+notify" filter.
//
// It registers nothing: the PEP module (on every account's bare JID) and a pubsub service module build on
// it, with storage.PubSub for the nodes and items. Item payloads are kept and served byte for byte as the
// publisher sent them, never re-encoded: OMEMO (XEP-0384) bundles and device lists are signed or compared by
// clients.
package pubsub

import (
	"errors"
	"fmt"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/stanza"
)

// Namespaces of XEP-0060 and XEP-0223.
const (
	NS               = "http://jabber.org/protocol/pubsub"
	NSOwner          = "http://jabber.org/protocol/pubsub#owner"
	NSEvent          = "http://jabber.org/protocol/pubsub#event"
	NSErrors         = "http://jabber.org/protocol/pubsub#errors"
	NSNodeConfig     = "http://jabber.org/protocol/pubsub#node_config"
	NSPublishOptions = "http://jabber.org/protocol/pubsub#publish-options"
)

// OMEMO (XEP-0384) node names, for modules and tests. Legacy (0.3, "axolotl") bundles live on one node per
// device: BundlesLegacyPrefix + the device id.
const (
	NodeOMEMODevices       = "urn:xmpp:omemo:2:devices"
	NodeOMEMOBundles       = "urn:xmpp:omemo:2:bundles"
	NodeOMEMOLegacyDevices = "eu.siacs.conversations.axolotl.devicelist"
	BundlesLegacyPrefix    = "eu.siacs.conversations.axolotl.bundles:"
)

// Errorf returns a stanza error with the defined condition cond and, if pubsubCond is not empty, the
// XEP-0060 application-specific condition <pubsubCond xmlns='http://jabber.org/protocol/pubsub#errors'/>.
func Errorf(cond, pubsubCond, text string) *stanza.Error {
	e := &stanza.Error{Condition: cond, Text: text}
	if pubsubCond != "" {
		e.App = []byte("<" + pubsubCond + " xmlns='" + NSErrors + "'/>")
	}
	return e
}

// Errors the module sends as they are (XEP-0060 sections 6, 7 and 8, XEP-0223 section 5).
var (
	// ErrPreconditionNotMet answers a publish whose publish-options do not match the existing node's
	// configuration (or cannot be applied to a new node).
	ErrPreconditionNotMet = &stanza.Error{Type: "cancel", Condition: "conflict",
		App: []byte("<precondition-not-met xmlns='" + NSErrors + "'/>")}
	ErrNodeIDRequired   = Errorf("bad-request", "nodeid-required", "")
	ErrItemRequired     = Errorf("bad-request", "item-required", "")
	ErrPayloadRequired  = Errorf("bad-request", "payload-required", "")
	ErrInvalidPayload   = Errorf("bad-request", "invalid-payload", "")
	ErrPayloadTooBig    = Errorf("not-acceptable", "payload-too-big", "")
	ErrMaxNodesExceeded = Errorf("not-allowed", "max-nodes-exceeded", "")
	ErrMaxItemsExceeded = Errorf("not-allowed", "max-items-exceeded", "")
	ErrPresenceRequired = Errorf("not-authorized", "presence-subscription-required", "")
	ErrNotInRosterGroup = Errorf("not-authorized", "not-in-roster-group", "")
	ErrClosedNode       = Errorf("not-allowed", "closed-node", "")
	ErrUnsupportedModel = Errorf("not-acceptable", "unsupported-access-model", "")
)

// StorageError maps an error of storage.PubSub to the stanza error a module answers with: item-not-found,
// conflict, the limit's XEP-0060 condition, or internal-server-error.
func StorageError(err error) *stanza.Error {
	var le *storage.LimitError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrNotFound):
		return stanza.ErrItemNotFound
	case errors.Is(err, storage.ErrConflict):
		return stanza.ErrConflict
	case errors.As(err, &le):
		text := fmt.Sprintf("limit: %s (%d)", le.Limit, le.Max)
		switch le.Limit {
		case storage.LimitItemSize:
			return Errorf("not-acceptable", "payload-too-big", text)
		case storage.LimitNodes:
			return Errorf("not-allowed", "max-nodes-exceeded", text)
		default:
			return Errorf("not-allowed", "max-items-exceeded", text)
		}
	}
	return stanza.ErrInternal
}

// Features returns the disco#info features (XEP-0060 section 10) of what this package models, for the
// module that serves it to advertise on the service or account JID: the protocol namespace and one
// "pubsub#..." feature per supported action and access model.
func Features() []string {
	return []string{
		NS,
		NS + "#access-open",
		NS + "#access-presence",
		NS + "#access-roster",
		NS + "#access-whitelist",
		NS + "#auto-create",
		NS + "#config-node",
		NS + "#create-nodes",
		NS + "#delete-items",
		NS + "#delete-nodes",
		NS + "#filtered-notifications",
		NS + "#item-ids",
		NS + "#last-published",
		NS + "#persistent-items",
		NS + "#presence-notifications",
		NS + "#publish",
		NS + "#publish-options",
		NS + "#purge-nodes",
		NS + "#retract-items",
		NS + "#retrieve-items",
	}
}
