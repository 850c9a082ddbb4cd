package router

import (
	"context"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// Remote is the route out of this process: every stanza for an entity this node does not serve goes to it, at
// one call site in the router (Router.leave). That is another server (federation), a component, or another node
// of the cluster holding the recipient's session.
type Remote interface {
	// Forward hands s over. node is the id of the cluster node the Directory placed the recipient on, "" for
	// another server or a component. to is the recipient: s.To, or the full JID of the resource on node, or
	// the contact a presence broadcast is for (s has no to then: an implementation that serializes s stamps
	// to). o is where s came from.
	//
	// An error is bounced to the sender, as a *stanza.Error if it is one (remote-server-not-found, say),
	// otherwise as internal-server-error; the router never answers an error or an IQ result.
	Forward(ctx context.Context, o module.Origin, node string, to jid.JID, s *stanza.Stanza) error
}

// NoRemote is the Remote of a server without federation, components or cluster: messages and IQs bounce with
// remote-server-not-found (RFC 6120 10.4.3). So does a presence subscription request: the presence module
// clears the roster item's pending ask when it sees the error, and the client shows it, instead of the item
// staying ask='subscribe' forever (issue 19, item 6). Other presence is dropped without an answer: a broadcast
// would bounce one error per remote contact at every presence change, and unavailable presence, probes and
// subscribed/unsubscribe/unsubscribed expect no answer (the local roster has already changed).
type NoRemote struct{}

// Forward implements Remote.
func (NoRemote) Forward(_ context.Context, _ module.Origin, _ string, _ jid.JID, s *stanza.Stanza) error {
	if s.Kind == stanza.Presence && s.Type != "subscribe" {
		return nil
	}
	return stanza.ErrRemoteServerNotFnd
}

var _ Remote = NoRemote{}
