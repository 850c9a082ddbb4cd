package module

import (
	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/stanza"
)

// OriginKind says where a stanza came from.
type OriginKind uint8

// Origin kinds. The zero value is the server itself, so that Origin{} is what the server and modules emit.
const (
	// OriginServer: the server or one of its modules emitted the stanza.
	OriginServer OriginKind = iota
	// OriginSession: a local session (Origin.Session) sent the stanza.
	OriginSession
	// OriginRemoteServer: another server (Origin.Peer is its domain) sent it over a server-to-server stream.
	OriginRemoteServer
	// OriginComponent: an external component (Origin.Peer is its domain) sent it.
	OriginComponent
	// OriginNode: another node of this cluster (Origin.Peer is its node id) handed it over.
	OriginNode
)

func (k OriginKind) String() string {
	switch k {
	case OriginServer:
		return "server"
	case OriginSession:
		return "session"
	case OriginRemoteServer:
		return "remote-server"
	case OriginComponent:
		return "component"
	case OriginNode:
		return "node"
	}
	return "unknown"
}

// Origin is where a stanza being routed came from, and the per-stanza state of the connection that received
// it. It travels by value in the router's typed arguments (Delivery, IQ, the presence and service handlers)
// instead of context values: it is built once per connection, and copying it costs no allocation.
type Origin struct {
	Kind OriginKind
	// Session is the local session that sent the stanza (OriginSession), nil otherwise.
	Session Session
	// Peer names the sender that is not a local session: the remote server's or component's domain, or the
	// node id of another node. Empty for OriginServer and OriginSession.
	Peer string
	// Durability, if not nil, tracks the durable writes made on behalf of the stanza: the connection that
	// received it acknowledges it (XEP-0198) only once they commit. See Append.
	Durability Durability
	// Batch, if not nil, is the write burst of the connection that received the stanza: the router passes it
	// to the sessions it delivers to (BatchSender), so that one burst of a client's stanzas costs each
	// recipient one write.
	Batch WriteBatch
}

// FromSession reports whether the stanza was sent by a local session, and returns it.
func (o Origin) FromSession() (Session, bool) {
	return o.Session, o.Kind == OriginSession && o.Session != nil
}

// Emitted is the origin of a stanza the server emits while it handles one from o (a MUC fan-out, a presence
// broadcast, an IQ answer): the server, keeping o's write batch and durability tracker.
func (o Origin) Emitted() Origin {
	return Origin{Kind: OriginServer, Durability: o.Durability, Batch: o.Batch}
}

// WriteBatch is a connection's burst of writes, opaque to modules: only the transport that made it and its own
// sessions know what it is. The router passes it through, never looks into it.
type WriteBatch interface {
	// WriteBatch marks the implementation; it does nothing.
	WriteBatch()
}

// BatchSender is a Session that also takes the write batch of the routing that sends to it, so that a
// connection can write what one burst of its client's stanzas sends to others in fewer writes.
type BatchSender interface {
	SendBatch(b WriteBatch, s *stanza.Stanza) error
}

// Resource describes one bound resource of an account, wherever it lives. It is plain data, so that a cluster
// directory can store and share it; the local object that writes to the resource's connection is a Session.
type Resource struct {
	// JID is the resource's full JID.
	JID jid.JID
	// Node is the id of the cluster node that holds the session; "" is this node.
	Node string
	// Available reports whether the resource has sent available presence and not yet unavailable.
	Available bool
	// Priority is the priority of its last available presence.
	Priority int
	// Caps is the XEP-0115 verification string it announced, "" if unknown.
	Caps string
	// Carbons reports whether it enabled message carbons (XEP-0280).
	Carbons bool
	// Inactive reports whether its client said it is not being looked at (XEP-0352).
	Inactive bool
}

// Resources are the resources of one account, as a Directory knows them: the sessions bound on this node, and
// descriptions of those bound elsewhere. Both slices are the directory's copy-on-write values and must not be
// modified; a lookup that returns them allocates nothing.
type Resources struct {
	Local  []Session
	Remote []Resource
}

// Len is the number of resources.
func (r Resources) Len() int { return len(r.Local) + len(r.Remote) }
