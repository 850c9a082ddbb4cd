package muc

import (
	"context"
	"encoding/xml"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

func isClientNS(ns string) bool { return ns == "" || ns == "jabber:client" }

// roomMessage handles a message to a room; via is the origin its fan-out is routed from (the room's messages join
// the write batch of the connection that sent the message).
func (m *Module) roomMessage(ctx context.Context, via module.Origin, s *stanza.Stanza) {
	if s.Type == "error" {
		return
	}
	r, err := m.lookup(ctx, s.To)
	if err != nil {
		m.log.Error("room lookup", "room", s.To.String(), "err", err)
		m.fail(ctx, s, stanza.ErrInternal)
		return
	}
	if r == nil {
		m.fail(ctx, s, &stanza.Error{Condition: "item-not-found", Text: "no such room"})
		return
	}
	if s.Type == "groupchat" {
		m.groupchat(ctx, via, r, s)
		return
	}
	m.mediated(ctx, r, s)
}

// groupchat reflects a message to every occupant (XEP-0045 7.4), stamped with the room's stanza-id and
// archived first when it carries content (XEP-0313, XEP-0359), or changes the subject (XEP-0045 8.1).
func (m *Module) groupchat(ctx context.Context, via module.Origin, r *room, s *stanza.Stanza) {
	full := s.From.String()
	var body, subject, store, noStore bool
	var subjectText, origin string
	payload := make([]byte, 0, len(s.Payload())+128)
	for _, c := range children(s.Payload()) {
		switch {
		case c.local == "body" && isClientNS(c.ns):
			body = true
		case c.local == "subject" && isClientNS(c.ns):
			subject, subjectText = true, textOf(c.raw)
		case c.ns == NSSID && c.local == "stanza-id":
			// XEP-0359 3.1: a stanza-id claiming to be by the room is a forgery; drop it.
			if attr(c.raw, "by") == r.str {
				continue
			}
		case c.ns == NSSID && c.local == "origin-id":
			origin = attr(c.raw, "id")
		case c.ns == NSHints && c.local == "store":
			store = true
		case c.ns == NSHints && (c.local == "no-store" || c.local == "no-permanent-store"):
			noStore = true
		case c.local == "encrypted" && (c.ns == "eu.siacs.conversations.axolotl" || c.ns == "urn:xmpp:omemo:2"):
			store = true
		case c.ns == NSUser:
			continue // only the room writes muc#user elements
		}
		payload = append(payload, c.raw...)
	}
	subjectChange := subject && !body

	r.mu.Lock()
	o := r.real[full]
	var e *stanza.Error
	switch {
	case r.gone:
		e = &stanza.Error{Condition: "item-not-found", Text: "no such room"}
	case o == nil:
		e = &stanza.Error{Condition: "not-acceptable", Text: "you are not an occupant of this room"}
	case subjectChange && !(o.role == RoleModerator || (r.cfg.ChangeSubject && o.role == RoleParticipant)):
		e = &stanza.Error{Condition: "forbidden", Text: "you may not change the subject"}
	case roleRank(o.role) < roleRank(RoleParticipant):
		e = &stanza.Error{Condition: "forbidden", Text: "you have no voice in this room"}
	}
	var from jid.JID
	if o != nil {
		from = o.jid
	}
	r.mu.Unlock()
	if e != nil {
		m.fail(ctx, s, e)
		return
	}

	archive := (body || store) && !noStore && !subjectChange // kept: in history, and in the archive if on
	durable := archive && m.archive != nil
	id := ""
	if durable {
		id = newID()
		payload = append(payload, "<stanza-id xmlns='"+NSSID+"'"...)
		payload = appendAttr(payload, "id", id)
		payload = appendAttr(payload, "by", r.str)
		payload = append(payload, "/>"...)
	}
	// The sender's id is kept: clients recognize their own message in the reflection by it
	// (muc#stable_id).
	msg := build(stanza.Message, "groupchat", s.ID, from, s.Lang, payload)
	out := &outgoing{ctx: ctx, via: via, s: s, msg: msg, now: m.now(), archive: archive, subjectChange: subjectChange,
		subjectText: subjectText, o: o}
	if !durable {
		m.post(r, out, nil)
		return
	}
	if origin == "" {
		origin = s.ID
	}
	// Durable before delivered: the stanza-id each occupant sees names an archived item. The append is queued
	// in the store's group commit, and the message is fanned out when its commit reports, in the room's order.
	m.post(r, out, &storage.ArchiveItem{ID: id, With: from.String(), Time: out.now, OriginID: origin, Data: msg.Raw})
}

// outgoing is a room message accepted from an occupant, waiting for its turn (and its archive commit) to be
// fanned out.
type outgoing struct {
	ctx context.Context
	// via is the origin the fan-out is routed from: the server, with the sender's write batch (a fan-out
	// after the sender's burst ended finds the batch inactive, and its recipients' writers start at once) and
	// durability tracker.
	via           module.Origin
	s             *stanza.Stanza // as the occupant sent it, for an error reply
	msg           *stanza.Stanza // as the room reflects it
	now           time.Time
	archive       bool // kept in history
	subjectChange bool
	subjectText   string
	o             *occupant
	ready         bool  // guarded by room.fanMu: committed (or nothing to commit)
	err           error // guarded by room.fanMu: the commit failed
}

// post gives out its place in the room's fan-out order and, for an archived message, queues its append. The
// room's messages are fanned out in the order they were posted, each once its commit has reported, so a
// message waits for the commit of the messages posted before it in its room and for nothing else: other
// rooms go on. room.postMu makes the archive's order the room's order.
func (m *Module) post(r *room, out *outgoing, item *storage.ArchiveItem) {
	r.postMu.Lock()
	r.fanMu.Lock()
	out.ready = item == nil
	r.fan = append(r.fan, out)
	r.fanMu.Unlock()
	if item != nil {
		module.AppendThen(out.ctx, out.via.Durability, m.archive, r.str, []storage.ArchiveItem{*item}, func(err error) {
			if err != nil {
				err = fmt.Errorf("muc: archiving room message: %w", err)
			}
			r.fanMu.Lock()
			out.ready, out.err = true, err
			start := m.async && r.takeFan()
			r.fanMu.Unlock()
			if start {
				// The committer's goroutine reports every commit: it must not route.
				go m.drain(r)
			}
		})
	}
	r.postMu.Unlock()
	r.fanMu.Lock()
	start := r.takeFan()
	r.fanMu.Unlock()
	if start {
		m.drain(r)
	}
}

// takeFan reports whether the caller is to fan out the room's ready messages: the first is ready and nobody
// is at it. Called with fanMu held.
func (r *room) takeFan() bool {
	if r.fanning || len(r.fan) == 0 || !r.fan[0].ready {
		return false
	}
	r.fanning = true
	return true
}

// drain fans out the room's messages from the front of its order while they are ready.
func (m *Module) drain(r *room) {
	for {
		r.fanMu.Lock()
		if len(r.fan) == 0 || !r.fan[0].ready {
			r.fanning = false
			r.fanMu.Unlock()
			return
		}
		out := r.fan[0]
		// Shifted rather than resliced, so that the slice keeps its room: a room's messages then cost no
		// allocation here. Few wait at once (those of one commit).
		n := copy(r.fan, r.fan[1:])
		r.fan[n] = nil
		r.fan = r.fan[:n]
		r.fanMu.Unlock()
		m.fanOut(r, out)
	}
}

// fanOut reflects one message to every occupant, and keeps it in history.
func (m *Module) fanOut(r *room, out *outgoing) {
	ctx := out.ctx
	if out.err != nil {
		m.log.Error("archiving room message", "room", r.str, "err", out.err)
		m.fail(ctx, out.s, &stanza.Error{Condition: "internal-server-error", Type: "wait"})
		return
	}
	r.mu.Lock()
	if out.subjectChange {
		r.cfg.Subject, r.cfg.SubjectFrom = out.subjectText, ""
		if out.o != nil {
			r.cfg.SubjectFrom = out.o.nick
		}
	}
	if out.archive {
		r.pushHistory(out.msg, out.now)
	}
	rcpt := r.recipients(make([]*session, 0, len(r.real)))
	r.mu.Unlock()

	// Fan-out with no lock held: each Route only queues.
	for _, to := range rcpt {
		m.router.RouteFrom(ctx, out.via, addressed(out.msg, to.jid, to.str))
	}
	m.Stats.Messages.Add(1)
	m.Stats.Deliveries.Add(uint64(len(rcpt)))
	if out.subjectChange {
		m.persist(ctx, r)
	}
}

// privateMessage forwards a message to an occupant JID (XEP-0045 7.5).
func (m *Module) privateMessage(ctx context.Context, s *stanza.Stanza) {
	switch s.Type {
	case "error":
		return
	case "groupchat":
		m.fail(ctx, s, &stanza.Error{Condition: "bad-request", Text: "groupchat messages go to the room"})
		return
	}
	r, err := m.lookup(ctx, s.To)
	if err != nil || r == nil {
		m.fail(ctx, s, &stanza.Error{Condition: "item-not-found", Text: "no such room"})
		return
	}
	r.mu.Lock()
	sender, target := r.real[s.From.String()], r.occ[s.To.Resourcepart()]
	var e *stanza.Error
	switch {
	case sender == nil:
		e = &stanza.Error{Condition: "not-acceptable", Text: "you are not an occupant of this room"}
	case target == nil:
		e = &stanza.Error{Condition: "item-not-found", Text: "no such occupant"}
	case !r.mayPM(sender):
		e = &stanza.Error{Condition: "forbidden", Text: "private messages are not allowed in this room"}
	}
	var rcpt []*session
	var from jid.JID
	if e == nil {
		rcpt = append(rcpt, target.sess...)
		from = sender.jid
	}
	r.mu.Unlock()
	if e != nil {
		m.fail(ctx, s, e)
		return
	}
	payload := make([]byte, 0, len(s.Payload())+48)
	for _, c := range children(s.Payload()) {
		if c.ns != NSUser {
			payload = append(payload, c.raw...)
		}
	}
	// The muc#user element tells the recipient's client this is a private message in a room.
	payload = append(payload, "<x xmlns='"+NSUser+"'/>"...)
	msg := build(stanza.Message, s.Type, s.ID, from, s.Lang, payload)
	for _, to := range rcpt {
		m.router.Route(ctx, addressed(msg, to.jid, to.str))
	}
}

func (r *room) mayPM(o *occupant) bool {
	switch r.cfg.AllowPM {
	case "none":
		return false
	case "moderators":
		return o.role == RoleModerator
	case "participants":
		return roleRank(o.role) >= roleRank(RoleParticipant)
	}
	return true
}

type userX struct {
	Invites []struct {
		To     string `xml:"to,attr"`
		Reason string `xml:"http://jabber.org/protocol/muc#user reason"`
	} `xml:"http://jabber.org/protocol/muc#user invite"`
	Declines []struct {
		To     string `xml:"to,attr"`
		Reason string `xml:"http://jabber.org/protocol/muc#user reason"`
	} `xml:"http://jabber.org/protocol/muc#user decline"`
}

// mediated handles a non-groupchat message to the room: mediated invitations and declines (XEP-0045 7.8.2).
func (m *Module) mediated(ctx context.Context, r *room, s *stanza.Stanza) {
	var x userX
	found := false
	for _, c := range children(s.Payload()) {
		if c.ns == NSUser && c.local == "x" {
			found = xml.Unmarshal(c.raw, &x) == nil
			break
		}
	}
	if !found || len(x.Invites)+len(x.Declines) == 0 {
		m.fail(ctx, s, &stanza.Error{Condition: "bad-request", Text: "send groupchat messages to the room"})
		return
	}
	for _, d := range x.Declines {
		to, err := jid.Parse(d.To)
		if err != nil {
			continue
		}
		b := []byte("<x xmlns='" + NSUser + "'><decline")
		b = appendAttr(b, "from", s.From.Bare().String())
		b = append(b, '>')
		if d.Reason != "" {
			b = appendText(b, "reason", d.Reason)
		}
		b = append(b, "</decline></x>"...)
		m.router.Route(ctx, stanza.New(stanza.Message, "", newID(), r.jid, to, b))
	}
	if len(x.Invites) == 0 {
		return
	}
	inviter := s.From.Bare().String()
	r.mu.Lock()
	o := r.real[s.From.String()]
	aff := r.affiliation(inviter, m.admins)
	privileged := affRank(aff) >= affRank(storage.AffAdmin)
	allowed := !r.gone && (o != nil || affRank(aff) >= affRank(storage.AffMember)) &&
		(privileged || r.cfg.AllowInvites || (!r.cfg.MembersOnly && o != nil))
	var out []*stanza.Stanza
	var grant []string
	password := r.cfg.Password
	if allowed {
		for _, inv := range x.Invites {
			to, err := jid.Parse(inv.To)
			if err != nil {
				continue
			}
			// In a members-only room an invitation from someone who may invite makes the invitee a member
			// (XEP-0045 7.8.2), so that it can enter.
			if r.cfg.MembersOnly && r.affiliation(to.Bare().String(), m.admins) == storage.AffNone {
				// Nobody leaves: the invitee is not in the room.
				out, _ = m.setAffiliation(r, o, to.Bare().String(), storage.AffMember, "", "", out)
				grant = append(grant, to.Bare().String())
			}
			b := []byte("<x xmlns='" + NSUser + "'><invite")
			b = appendAttr(b, "from", inviter)
			b = append(b, '>')
			if inv.Reason != "" {
				b = appendText(b, "reason", inv.Reason)
			}
			b = append(b, "</invite>"...)
			if password != "" {
				b = appendText(b, "password", password)
			}
			b = append(b, "</x>"...)
			text := fmt.Sprintf("%s invites you to the room %s", inviter, r.str)
			if inv.Reason != "" {
				text += ": " + inv.Reason
			}
			b = appendText(b, "body", text)
			out = append(out, stanza.New(stanza.Message, "", newID(), r.jid, to, b))
		}
	}
	r.mu.Unlock()
	if !allowed {
		m.fail(ctx, s, &stanza.Error{Condition: "forbidden", Text: "you may not invite to this room"})
		return
	}
	for _, g := range grant {
		m.persistAff(ctx, r, g)
	}
	m.send(ctx, out)
}
