package pep

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/form"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/pubsub"
	"parley.im/parley/xmpp/stanza"
)

// request is one pubsub request with what every handler needs: the account whose service it addresses, the
// requester and whether it is the account itself.
type request struct {
	*pubsub.Request
	iq    *module.IQ
	owner jid.JID // the service's account
	from  jid.JID // the requester's full (or bare) JID
	self  bool    // the requester is the account
}

// handle answers every pubsub and pubsub#owner IQ addressed to an account.
func (m *Module) handle(ctx context.Context, iq *module.IQ) ([]byte, error) {
	out, err := m.serve(ctx, iq)
	if err != nil {
		m.stats.refused.Add(1)
		var se *stanza.Error
		if !errors.As(err, &se) {
			return nil, fmt.Errorf("pep: %w", err)
		}
	}
	return out, err
}

func (m *Module) serve(ctx context.Context, iq *module.IQ) ([]byte, error) {
	pr, err := pubsub.ParseRequest(iq.Payload, pubsub.Limits{})
	if err != nil {
		return nil, err
	}
	if !pr.ValidFor(iq.Type) {
		return nil, stanza.Errorf("bad-request", "wrong iq type for "+pr.Op.String())
	}
	owner := iq.To.Bare()
	if owner.Equal(jid.JID{}) {
		owner = iq.From.Bare()
	}
	r := &request{Request: pr, iq: iq, owner: owner, from: iq.From, self: iq.From.Bare().Equal(owner)}
	switch pr.Op {
	case pubsub.OpItems:
		return m.items(ctx, r)
	case pubsub.OpSubscribe:
		return m.subscribe(ctx, r)
	case pubsub.OpUnsubscribe:
		return m.unsubscribe(ctx, r)
	}
	// Everything else changes the node: only the account itself may (XEP-0163 section 3: the account owner is
	// the only publisher, and the owner of every node).
	if !r.self {
		return nil, stanza.ErrForbidden
	}
	switch pr.Op {
	case pubsub.OpPublish:
		return m.publish(ctx, r)
	case pubsub.OpRetract:
		return m.retract(ctx, r)
	case pubsub.OpCreate:
		return m.create(ctx, r)
	case pubsub.OpConfigure:
		return m.configure(ctx, r)
	case pubsub.OpDelete:
		return m.deleteNode(ctx, r)
	case pubsub.OpPurge:
		return m.purge(ctx, r)
	}
	return nil, stanza.ErrFeatureNotImpl
}

// node returns a node's record and configuration; storage.ErrNotFound if there is none.
func (m *Module) node(ctx context.Context, owner jid.JID, name string) (storage.PubSubNode, pubsub.Config, error) {
	n, err := m.ps.Node(ctx, owner.String(), name)
	if err != nil {
		return n, pubsub.Config{}, err
	}
	c, err := pubsub.ConfigOf(n)
	return n, c, err
}

// nodeOrError is node with the error a handler answers with.
func (m *Module) nodeOrError(ctx context.Context, r *request) (pubsub.Config, error) {
	_, c, err := m.node(ctx, r.owner, r.Node)
	if err != nil {
		return c, answer(err)
	}
	return c, nil
}

// answer maps a storage or library error to what the handler returns: stanza errors as they are, storage's
// to their XEP-0060 conditions, anything else wrapped (internal-server-error, logged by the router).
func answer(err error) error {
	var se *stanza.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return se
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrConflict), errors.Is(err, storage.ErrLimit):
		return pubsub.StorageError(err)
	}
	return fmt.Errorf("pep: %w", err)
}

// publish handles XEP-0060 section 7.1 with XEP-0163 auto-create and XEP-0223 publish-options.
func (m *Module) publish(ctx context.Context, r *request) ([]byte, error) {
	in := r.Items[0]
	it := storage.PubSubItem{ID: in.ID, Publisher: r.from.String(), Time: time.Now(), Payload: in.Payload}
	if it.ID == "" {
		it.ID = stanza.NewID()
	}
	// Before auto-creating: a too large first item must not leave an empty node behind.
	if err := storage.CheckPubSubItem(it, m.lim); err != nil {
		return nil, answer(err)
	}
	cfg, err := m.publishConfig(ctx, r)
	if err != nil {
		return nil, err
	}
	trimmed, err := m.ps.Publish(ctx, r.owner.String(), r.Node, it, m.lim)
	if err != nil {
		return nil, answer(err)
	}
	m.stats.publishes.Add(1)
	o := r.iq.Origin.Emitted()
	m.notify(ctx, o, r.owner, r.Node, cfg, pubsub.AppendItemsEvent(nil, r.Node, []storage.PubSubItem{it},
		cfg.DeliverPayloads))
	if len(trimmed) > 0 && cfg.NotifyRetract {
		m.notify(ctx, o, r.owner, r.Node, cfg, pubsub.AppendRetractEvent(nil, r.Node, trimmed))
	}
	m.changed(ctx, o, r.owner, r.Node)
	return pubsub.AppendPublishResult(nil, r.Node, it.ID), nil
}

// publishConfig returns the configuration the publish goes on with: the node's, after the publish-options
// were checked against it, or that of the node it auto-creates.
func (m *Module) publishConfig(ctx context.Context, r *request) (pubsub.Config, error) {
	for range 2 {
		_, cur, err := m.node(ctx, r.owner, r.Node)
		exists := err == nil
		switch {
		case errors.Is(err, storage.ErrNotFound):
			cur = pubsub.DefaultConfig()
		case err != nil:
			return cur, answer(err)
		}
		cfg, err := pubsub.PublishConfig(cur, exists, r.Options, m.lim.MaxItems)
		if err != nil || exists {
			return cfg, err
		}
		err = m.ps.CreateNode(ctx, cfg.Record(r.owner.String(), r.Node), m.lim)
		if !errors.Is(err, storage.ErrConflict) {
			return cfg, answer(err)
		}
		// Another resource of the account created it meanwhile: check the options against that one.
	}
	return pubsub.Config{}, stanza.ErrConflict
}

// retract handles XEP-0060 section 7.2.
func (m *Module) retract(ctx context.Context, r *request) ([]byte, error) {
	cfg, err := m.nodeOrError(ctx, r)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, it := range r.Items {
		err := m.ps.Retract(ctx, r.owner.String(), r.Node, it.ID)
		switch {
		case err == nil:
			ids = append(ids, it.ID)
		case errors.Is(err, storage.ErrNotFound):
			if len(r.Items) == 1 {
				return nil, stanza.ErrItemNotFound
			}
		default:
			return nil, answer(err)
		}
	}
	if len(ids) > 0 && (r.Notify || cfg.NotifyRetract) {
		m.notify(ctx, r.iq.Origin.Emitted(), r.owner, r.Node, cfg, pubsub.AppendRetractEvent(nil, r.Node, ids))
	}
	if len(ids) > 0 {
		m.changed(ctx, r.iq.Origin.Emitted(), r.owner, r.Node)
	}
	return nil, nil
}

// relation returns what the access models need to know of requester (a bare or full JID) relative to the
// owner's node with configuration c: the owner's roster item for it and, for whitelist nodes, its
// affiliation.
func (m *Module) relation(ctx context.Context, owner, requester jid.JID, node string, c pubsub.Config) (pubsub.Relation, error) {
	bare := requester.Bare()
	if bare.Equal(owner) {
		return pubsub.Relation{Owner: true}, nil
	}
	var rel pubsub.Relation
	it, err := m.roster.RosterItem(ctx, owner.String(), bare.String())
	switch {
	case err == nil:
		rel.InRoster, rel.Subscription, rel.Groups = true, it.Subscription, it.Groups
	case !errors.Is(err, storage.ErrNotFound):
		return rel, err
	}
	if c.AccessModel == pubsub.AccessWhitelist {
		affs, err := m.ps.NodeAffiliations(ctx, owner.String(), node)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return rel, err
		}
		for _, a := range affs {
			if a.JID == bare.String() {
				rel.Affiliation = a.Affiliation
			}
		}
	}
	return rel, nil
}

// access returns the node's configuration if the requester may read it, or the error to answer with.
func (m *Module) access(ctx context.Context, r *request) (pubsub.Config, error) {
	cfg, err := m.nodeOrError(ctx, r)
	if err != nil {
		return cfg, err
	}
	rel, err := m.relation(ctx, r.owner, r.from, r.Node, cfg)
	if err != nil {
		return cfg, answer(err)
	}
	return cfg, pubsub.Access(cfg, rel)
}

// items handles XEP-0060 section 6.5: every item, the ones asked for by id, or the max_items newest.
func (m *Module) items(ctx context.Context, r *request) ([]byte, error) {
	if _, err := m.access(ctx, r); err != nil {
		return nil, err
	}
	q := storage.PubSubItemQuery{Last: r.MaxItems}
	for _, it := range r.Items {
		q.IDs = append(q.IDs, it.ID)
	}
	items, err := m.ps.Items(ctx, r.owner.String(), r.Node, q)
	if err != nil {
		return nil, answer(err)
	}
	return pubsub.AppendItemsResult(nil, r.Node, items), nil
}

// create handles XEP-0060 section 8.1, with an optional configuration.
func (m *Module) create(ctx context.Context, r *request) ([]byte, error) {
	cfg := pubsub.DefaultConfig()
	if r.Config != nil && r.Config.Type != form.TypeCancel {
		var err error
		if cfg, err = cfg.Apply(r.Config, m.lim.MaxItems); err != nil {
			return nil, err
		}
	}
	if err := m.ps.CreateNode(ctx, cfg.Record(r.owner.String(), r.Node), m.lim); err != nil {
		return nil, answer(err)
	}
	return nil, nil
}

// configure handles XEP-0060 sections 8.2.1 (get: the form) and 8.2.4 (set: a submitted form). Lowering
// max_items trims the node, and the trimmed items are retracted for subscribers.
func (m *Module) configure(ctx context.Context, r *request) ([]byte, error) {
	cur, err := m.nodeOrError(ctx, r)
	if err != nil {
		return nil, err
	}
	if r.iq.Type == "get" {
		return pubsub.AppendConfigureForm(nil, r.Node, cur), nil
	}
	if r.Config.Type == form.TypeCancel {
		return nil, nil
	}
	cfg, err := cur.Apply(r.Config, m.lim.MaxItems)
	if err != nil {
		return nil, err
	}
	trimmed, err := m.ps.ConfigureNode(ctx, cfg.Record(r.owner.String(), r.Node), m.lim)
	if err != nil {
		return nil, answer(err)
	}
	if len(trimmed) > 0 && cfg.NotifyRetract {
		m.notify(ctx, r.iq.Origin.Emitted(), r.owner, r.Node, cfg, pubsub.AppendRetractEvent(nil, r.Node, trimmed))
	}
	return nil, nil
}

// deleteNode handles XEP-0060 section 8.4. The recipients are found before the node (and its explicit
// subscriptions) is gone.
func (m *Module) deleteNode(ctx context.Context, r *request) ([]byte, error) {
	cfg, err := m.nodeOrError(ctx, r)
	if err != nil {
		return nil, err
	}
	var to []jid.JID
	if cfg.NotifyDelete {
		to = m.recipients(ctx, r.owner, r.Node, cfg)
	}
	if err := m.ps.DeleteNode(ctx, r.owner.String(), r.Node); err != nil {
		return nil, answer(err)
	}
	m.send(ctx, r.iq.Origin.Emitted(), r.owner, to, pubsub.AppendDeleteEvent(nil, r.Node))
	m.changed(ctx, r.iq.Origin.Emitted(), r.owner, r.Node)
	return nil, nil
}

// purge handles XEP-0060 section 8.5; subscribers hear of it when the node notifies retractions.
func (m *Module) purge(ctx context.Context, r *request) ([]byte, error) {
	cfg, err := m.nodeOrError(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := m.ps.Purge(ctx, r.owner.String(), r.Node); err != nil {
		return nil, answer(err)
	}
	if cfg.NotifyRetract {
		m.notify(ctx, r.iq.Origin.Emitted(), r.owner, r.Node, cfg, pubsub.AppendPurgeEvent(nil, r.Node))
	}
	m.changed(ctx, r.iq.Origin.Emitted(), r.owner, r.Node)
	return nil, nil
}

// subscriber checks the jid of a subscribe or unsubscribe request: it must be the requester's, bare or full
// (XEP-0060 section 6.1.3.1, invalid-jid).
func subscriber(r *request) (jid.JID, error) {
	j, err := jid.Parse(r.JID)
	if err != nil || !j.Bare().Equal(r.from.Bare()) {
		return jid.JID{}, pubsub.Errorf("bad-request", "invalid-jid", "")
	}
	return j, nil
}

// subscribe handles XEP-0060 section 6.1: an explicit subscription, access-checked, then the last item if
// the node sends it on subscription.
func (m *Module) subscribe(ctx context.Context, r *request) ([]byte, error) {
	j, err := subscriber(r)
	if err != nil {
		return nil, err
	}
	cfg, err := m.access(ctx, r)
	if err != nil {
		return nil, err
	}
	sub := storage.PubSubSubscription{JID: j.String(), State: "subscribed"}
	if err := m.ps.SetSubscription(ctx, r.owner.String(), r.Node, sub); err != nil {
		return nil, answer(err)
	}
	res := pubsub.AppendSubscription(nil, r.Node, sub)
	if cfg.SendLast == pubsub.SendLastNever {
		return res, nil
	}
	// The result first, so that the client knows of the subscription when the last item comes.
	o := r.iq.Origin.Emitted()
	m.router.RouteFrom(ctx, o, stanza.Result(r.iq.Stanza, res))
	m.sendLast(ctx, o, r.owner, r.Node, cfg, j)
	return nil, module.ErrAnswered
}

// unsubscribe handles XEP-0060 section 6.2.
func (m *Module) unsubscribe(ctx context.Context, r *request) ([]byte, error) {
	j, err := subscriber(r)
	if err != nil {
		return nil, err
	}
	subs, err := m.ps.Subscriptions(ctx, r.owner.String(), r.Node)
	if err != nil {
		return nil, answer(err)
	}
	found := false
	for _, s := range subs {
		if s.JID == j.String() && (r.SubID == "" || s.SubID == r.SubID) {
			found = true
			if err := m.ps.SetSubscription(ctx, r.owner.String(), r.Node,
				storage.PubSubSubscription{JID: s.JID, SubID: s.SubID}); err != nil {
				return nil, answer(err)
			}
		}
	}
	if !found {
		return nil, pubsub.Errorf("unexpected-request", "not-subscribed", "")
	}
	return nil, nil
}

// Publish publishes it to owner's node on the owner's behalf, as a publish by one of its resources would (a
// module keeping another protocol in sync with a PEP node, such as XEP-0048 bookmarks with XEP-0402's): the
// node is created with create if it does not exist (an existing node keeps its configuration), it is trimmed,
// and the item and the trimmed ids are notified. It returns a *stanza.Error for what a client would be refused
// (limits), any other error for a storage failure.
func (m *Module) Publish(ctx context.Context, o module.Origin, owner jid.JID, node string, create pubsub.Config,
	it storage.PubSubItem) error {
	if it.Time.IsZero() {
		it.Time = time.Now()
	}
	if err := storage.CheckPubSubItem(it, m.lim); err != nil {
		return answer(err)
	}
	_, cfg, err := m.node(ctx, owner, node)
	if errors.Is(err, storage.ErrNotFound) {
		cfg = create
		err = m.ps.CreateNode(ctx, cfg.Record(owner.String(), node), m.lim)
		if errors.Is(err, storage.ErrConflict) {
			_, cfg, err = m.node(ctx, owner, node)
		}
	}
	if err != nil {
		return answer(err)
	}
	trimmed, err := m.ps.Publish(ctx, owner.String(), node, it, m.lim)
	if err != nil {
		return answer(err)
	}
	m.stats.publishes.Add(1)
	m.notify(ctx, o, owner, node, cfg, pubsub.AppendItemsEvent(nil, node, []storage.PubSubItem{it}, cfg.DeliverPayloads))
	if len(trimmed) > 0 && cfg.NotifyRetract {
		m.notify(ctx, o, owner, node, cfg, pubsub.AppendRetractEvent(nil, node, trimmed))
	}
	m.changed(ctx, o, owner, node)
	return nil
}

// Retract removes the item id from owner's node on the owner's behalf and notifies the retraction when the node
// notifies retractions. An absent node or item is storage.ErrNotFound.
func (m *Module) Retract(ctx context.Context, o module.Origin, owner jid.JID, node, id string) error {
	_, cfg, err := m.node(ctx, owner, node)
	if err != nil {
		return err
	}
	if err := m.ps.Retract(ctx, owner.String(), node, id); err != nil {
		return err
	}
	if cfg.NotifyRetract {
		m.notify(ctx, o, owner, node, cfg, pubsub.AppendRetractEvent(nil, node, []string{id}))
	}
	m.changed(ctx, o, owner, node)
	return nil
}
