package pep

import (
	"context"
	"errors"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/pubsub"
	"parley.im/parley/xmpp/stanza"
)

// maxOnline bounds the resources the module tracks per account: a contact list of a few hundred contacts with
// a few devices each fits; beyond it, new resources get no presence-based notifications until others leave.
const maxOnline = 4096

// onlineRes is a resource that sent an account available presence.
type onlineRes struct {
	jid jid.JID
	ver string // its XEP-0115 verification string, "" if it announced none
}

// presence is the module.PresenceHook: it tracks which resources are online for each account, with their
// capabilities, and sends a resource that just became available (or changed capabilities) the last item of
// each node it wants and may read (XEP-0163 section 4.3.4). Only broadcasts count: presence to the account's
// bare JID from a resource (a contact's, or one of the account's own).
func (m *Module) presence(ctx context.Context, o module.Origin, to jid.JID, p *stanza.Stanza) {
	if to.Resourcepart() != "" || p.From.Resourcepart() == "" {
		return
	}
	owner, key := to.String(), p.From.String()
	if p.Type == "unavailable" {
		m.mu.Lock()
		if res := m.online[owner]; res != nil {
			delete(res, key)
			if len(res) == 0 {
				delete(m.online, owner)
			}
		}
		m.mu.Unlock()
		return
	}
	c := capsOf(p)
	m.mu.Lock()
	res := m.online[owner]
	if res == nil {
		res = make(map[string]onlineRes)
		m.online[owner] = res
	}
	prev, had := res[key]
	if !had && len(res) >= maxOnline {
		m.mu.Unlock()
		return
	}
	res[key] = onlineRes{jid: p.From, ver: c.ver}
	m.mu.Unlock()
	if (had && prev.ver == c.ver) || c.ver == "" {
		return // a change of status only, or a client that asks for no notifications
	}
	if nodes, ok := m.caps.nodes(c.ver); ok {
		m.sendLastAll(ctx, o.Emitted(), to, p.From, nodes)
		return
	}
	m.queryCaps(ctx, to, p.From, c)
}

// onlineVer returns the verification string the resource full last announced to owner, and whether it is
// online for owner.
func (m *Module) onlineVer(owner, full jid.JID) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.online[owner.String()][full.String()]
	return r.ver, ok
}

// resources returns a snapshot of the resources online for owner.
func (m *Module) resources(owner jid.JID) []onlineRes {
	m.mu.Lock()
	defer m.mu.Unlock()
	res := m.online[owner.String()]
	out := make([]onlineRes, 0, len(res))
	for _, r := range res {
		out = append(out, r)
	}
	return out
}

// relations answers the access models' questions about several requesters of one node, reading the owner's
// roster (and the node's affiliations, for whitelist nodes) once.
type relations struct {
	m      *Module
	owner  jid.JID
	node   string
	cfg    pubsub.Config
	loaded bool
	roster map[string]storage.RosterItem
	affs   map[string]string
}

func (rs *relations) load(ctx context.Context) error {
	rs.loaded = true
	items, _, err := rs.m.roster.Roster(ctx, rs.owner.String())
	if err != nil {
		return err
	}
	rs.roster = make(map[string]storage.RosterItem, len(items))
	for _, it := range items {
		rs.roster[it.JID] = it
	}
	if rs.cfg.AccessModel == pubsub.AccessWhitelist {
		affs, err := rs.m.ps.NodeAffiliations(ctx, rs.owner.String(), rs.node)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		rs.affs = make(map[string]string, len(affs))
		for _, a := range affs {
			rs.affs[a.JID] = a.Affiliation
		}
	}
	return nil
}

// may reports whether j (bare or full) may receive the node's notifications: under the access model, and,
// when presence is set (a presence-based, implicit subscription), only if j is the owner or a contact with a
// presence subscription from the owner (from or both).
func (rs *relations) may(ctx context.Context, j jid.JID, presence bool) bool {
	bare := j.Bare()
	if bare.Equal(rs.owner) {
		return true
	}
	if !rs.loaded {
		if err := rs.load(ctx); err != nil {
			rs.m.log.Error("reading the roster for notifications", "owner", rs.owner.String(), "err", err)
			return false
		}
	}
	var rel pubsub.Relation
	if it, ok := rs.roster[bare.String()]; ok {
		rel.InRoster, rel.Subscription, rel.Groups = true, it.Subscription, it.Groups
	}
	rel.Affiliation = rs.affs[bare.String()]
	if presence && !rel.PresenceSubscribed() {
		return false
	}
	return pubsub.CanAccess(rs.cfg, rel)
}

// recipients returns who hears of a change of the owner's node: the resources online for the owner (its own,
// and its contacts' with a presence subscription) whose capabilities ask for the node's notifications
// (node+notify) and that the access model lets in, then the explicit subscribers not reached that way.
func (m *Module) recipients(ctx context.Context, owner jid.JID, node string, cfg pubsub.Config) []jid.JID {
	rs := &relations{m: m, owner: owner, node: node, cfg: cfg}
	var out []jid.JID
	for _, r := range m.resources(owner) {
		if m.caps.wants(r.ver, node) && rs.may(ctx, r.jid, true) {
			out = append(out, r.jid)
		}
	}
	subs, err := m.ps.Subscriptions(ctx, owner.String(), node)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			m.log.Error("reading subscriptions", "owner", owner.String(), "node", node, "err", err)
		}
		return out
	}
	presenceBased := len(out)
next:
	for _, s := range subs {
		if s.State != "subscribed" {
			continue
		}
		j, err := jid.Parse(s.JID)
		if err != nil {
			continue
		}
		for _, got := range out[:presenceBased] {
			// A resource reached through presence, or the bare JID of one (the bare JID would reach it again).
			if got.Equal(j) || (j.Resourcepart() == "" && got.Bare().Equal(j)) {
				continue next
			}
		}
		if rs.may(ctx, j, false) {
			out = append(out, j)
		}
	}
	return out
}

// notify sends event, a pubsub#event payload about owner's node, to its recipients.
func (m *Module) notify(ctx context.Context, o module.Origin, owner jid.JID, node string, cfg pubsub.Config, event []byte) {
	m.send(ctx, o, owner, m.recipients(ctx, owner, node, cfg), event)
}

// send routes event in a headline message from owner's bare JID to each of to: through the router, which
// delivers to local sessions and hands resources on other nodes or servers to its Remote route.
func (m *Module) send(ctx context.Context, o module.Origin, owner jid.JID, to []jid.JID, event []byte) {
	for _, j := range to {
		m.router.RouteFrom(ctx, o, stanza.New(stanza.Message, "headline", "", owner, j, event))
	}
	m.stats.notifications.Add(uint64(len(to)))
}

// lastEvent returns the notification of the node's last item with its publication time (XEP-0203 delay), or
// nil if the node has no item.
func (m *Module) lastEvent(ctx context.Context, owner jid.JID, node string, cfg pubsub.Config) []byte {
	items, err := m.ps.Items(ctx, owner.String(), node, storage.PubSubItemQuery{Last: 1})
	if err != nil || len(items) == 0 {
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			m.log.Error("reading the last item", "owner", owner.String(), "node", node, "err", err)
		}
		return nil
	}
	ev := pubsub.AppendItemsEvent(nil, node, items, cfg.DeliverPayloads)
	ev = append(ev, "<delay xmlns='urn:xmpp:delay' stamp='"...)
	ev = items[0].Time.UTC().AppendFormat(ev, "2006-01-02T15:04:05.999999Z")
	return append(ev, "'/>"...)
}

// sendLast sends the node's last item to one new subscriber.
func (m *Module) sendLast(ctx context.Context, o module.Origin, owner jid.JID, node string, cfg pubsub.Config, to jid.JID) {
	if ev := m.lastEvent(ctx, owner, node, cfg); ev != nil {
		m.router.RouteFrom(ctx, o, stanza.New(stanza.Message, "headline", "", owner, to, ev))
		m.stats.lastItems.Add(1)
	}
}

// sendLastAll sends the resource to, just online for owner with capabilities that ask for nodes, the last item
// of each of owner's nodes it wants, may read and that sends its last item on presence.
func (m *Module) sendLastAll(ctx context.Context, o module.Origin, owner, to jid.JID, nodes map[string]struct{}) {
	if len(nodes) == 0 {
		return
	}
	ns, err := m.ps.Nodes(ctx, owner.String())
	if err != nil {
		m.log.Error("listing nodes", "owner", owner.String(), "err", err)
		return
	}
	var rs *relations
	for _, n := range ns {
		if _, want := nodes[n.Node]; !want {
			continue
		}
		cfg, err := pubsub.ConfigOf(n)
		if err != nil || cfg.SendLast != pubsub.SendLastOnSubPresence {
			continue
		}
		if rs == nil || cfg.AccessModel == pubsub.AccessWhitelist || rs.cfg.AccessModel == pubsub.AccessWhitelist {
			rs = &relations{m: m, owner: owner, node: n.Node, cfg: cfg}
		} else {
			rs.node, rs.cfg = n.Node, cfg // the roster read once serves every node but whitelist ones
		}
		if rs.may(ctx, to, true) {
			m.sendLast(ctx, o, owner, n.Node, cfg, to)
		}
	}
}
