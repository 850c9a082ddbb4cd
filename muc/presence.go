package muc

import (
	"context"
	"encoding/xml"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/mamcodec"
	"parley.im/parley/xmpp/stanza"
)

// Status codes (XEP-0045 section 15.6).
const (
	statusAffiliationChange = 101 // message to a user not in the room
	statusNonAnonymous      = 100
	statusConfigChange      = 104
	statusSelf              = 110
	statusLogging           = 170
	statusNowNonAnonymous   = 172
	statusNowSemiAnonymous  = 173
	statusCreated           = 201
	statusBanned            = 301
	statusNickChange        = 303
	statusKicked            = 307
	statusAffiliationRemove = 321
	statusMembersOnlyRemove = 322
)

// itemInfo is the <item/> of a muc#user presence.
type itemInfo struct {
	aff, role string
	jid       string // the occupant's real JID, shown only to those allowed to see it
	nick      string // the new nick (303)
	actor     string // the moderator's nick (kick, ban)
	reason    string
}

func appendItem(b []byte, it itemInfo, showJID bool) []byte {
	b = append(b, "<item"...)
	b = appendAttr(b, "affiliation", it.aff)
	b = appendAttr(b, "role", it.role)
	if showJID && it.jid != "" {
		b = appendAttr(b, "jid", it.jid)
	}
	if it.nick != "" {
		b = appendAttr(b, "nick", it.nick)
	}
	if it.actor == "" && it.reason == "" {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	if it.actor != "" {
		b = append(b, "<actor"...)
		b = appendAttr(b, "nick", it.actor)
		b = append(b, "/>"...)
	}
	if it.reason != "" {
		b = appendText(b, "reason", it.reason)
	}
	return append(b, "</item>"...)
}

// occupantPresence builds a presence of an occupant, without to.
func occupantPresence(from jid.JID, typ string, payload []byte, it itemInfo, showJID bool, extra []byte,
	codes ...int) *stanza.Stanza {
	b := make([]byte, 0, len(payload)+len(extra)+192)
	b = append(b, payload...)
	b = append(b, "<x xmlns='"+NSUser+"'>"...)
	b = appendItem(b, it, showJID)
	b = append(b, extra...)
	b = appendStatus(b, codes...)
	b = append(b, "</x>"...)
	return build(stanza.Presence, typ, "", from, "", b)
}

func (r *room) item(o *occupant, admins map[string]bool) itemInfo {
	return itemInfo{aff: r.affiliation(o.bareStr, admins), role: o.role, jid: o.shown().str}
}

// canSeeJIDs reports whether an occupant may see the real JIDs of others.
func (r *room) canSeeJIDs(o *occupant) bool { return r.cfg.nonAnonymous() || o.role == RoleModerator }

// broadcastPresence queues o's presence to every other occupant, and the self variant (status 110 and
// selfCodes) to the sessions in self.
func (r *room) broadcastPresence(out []*stanza.Stanza, o *occupant, typ string, payload []byte, it itemInfo,
	extra []byte, codes, selfCodes []int, self []*session) []*stanza.Stanza {
	var withJID, without *stanza.Stanza
	for _, other := range r.occ {
		if other == o {
			continue
		}
		var t *stanza.Stanza
		if r.canSeeJIDs(other) {
			if withJID == nil {
				withJID = occupantPresence(o.jid, typ, payload, it, true, extra, codes...)
			}
			t = withJID
		} else {
			if without == nil {
				without = occupantPresence(o.jid, typ, payload, it, false, extra, codes...)
			}
			t = without
		}
		for _, s := range other.sess {
			out = append(out, addressed(t, s.jid, s.str))
		}
	}
	if len(self) > 0 {
		sc := append(append(append([]int(nil), codes...), selfCodes...), statusSelf)
		t := occupantPresence(o.jid, typ, payload, it, true, extra, sc...)
		for _, s := range self {
			out = append(out, addressed(t, s.jid, s.str))
		}
	}
	return out
}

// filterPresence keeps a presence's content except the MUC elements, which the room writes itself.
func filterPresence(payload []byte) []byte {
	var out []byte
	for _, c := range children(payload) {
		if c.ns == NS || c.ns == NSUser {
			continue
		}
		out = append(out, c.raw...)
	}
	return out
}

type joinXML struct {
	MUC *struct {
		Password string `xml:"http://jabber.org/protocol/muc password"`
		History  *struct {
			MaxChars   string `xml:"maxchars,attr"`
			MaxStanzas string `xml:"maxstanzas,attr"`
			Seconds    string `xml:"seconds,attr"`
			Since      string `xml:"since,attr"`
		} `xml:"http://jabber.org/protocol/muc history"`
	} `xml:"http://jabber.org/protocol/muc x"`
}

// historyReq is what a joining client asked of the history (XEP-0045 7.2.15); -1 means not given.
type historyReq struct {
	maxChars, maxStanzas, seconds int
	since                         time.Time
}

func parseHistory(j *joinXML) historyReq {
	h := historyReq{-1, -1, -1, time.Time{}}
	if j.MUC == nil || j.MUC.History == nil {
		return h
	}
	num := func(s string) int {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			return -1
		}
		return n
	}
	x := j.MUC.History
	h.maxChars, h.maxStanzas, h.seconds = num(x.MaxChars), num(x.MaxStanzas), num(x.Seconds)
	if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(x.Since)); err == nil {
		h.since = t
	}
	return h
}

// history selects the kept messages a joining occupant gets, oldest first.
func (r *room) history(h historyReq, now time.Time) []histItem {
	n := len(r.hist)
	if h.maxStanzas >= 0 && h.maxStanzas < n {
		n = h.maxStanzas
	}
	var from time.Time
	if h.seconds >= 0 {
		from = now.Add(-time.Duration(h.seconds) * time.Second)
	}
	if h.since.After(from) {
		from = h.since
	}
	chars := 0
	i := len(r.hist)
	for i > 0 && len(r.hist)-i < n {
		it := r.hist[i-1]
		if !from.IsZero() && it.at.Before(from) {
			break
		}
		if h.maxChars >= 0 && chars+it.size > h.maxChars {
			break
		}
		chars += it.size
		i--
	}
	return r.hist[i:]
}

func (m *Module) presence(ctx context.Context, p *stanza.Stanza) {
	switch p.Type {
	case "":
		m.available(ctx, p)
	case "unavailable", "error":
		// A presence error from an occupant's client means it lost the room (XEP-0045 7.14 ghost removal).
		r, err := m.lookup(ctx, p.To)
		if err != nil || r == nil {
			return
		}
		m.leave(ctx, r, p.From, p.From.String(), p)
	}
	// Subscriptions and probes to rooms are ignored.
}

func (m *Module) available(ctx context.Context, p *stanza.Stanza) {
	if p.To.Resourcepart() == "" {
		m.fail(ctx, p, &stanza.Error{Condition: "jid-malformed", Text: "a nickname is required"})
		return
	}
	var jx joinXML
	_ = xml.Unmarshal(p.Raw, &jx) // the scanner validated the XML; a surprise only loses the options
	for range 3 {
		r, err := m.lookup(ctx, p.To)
		if err != nil {
			m.log.Error("room lookup", "room", p.To.Bare().String(), "err", err)
			m.fail(ctx, p, stanza.ErrInternal)
			return
		}
		created := false
		if r == nil {
			if !m.canCreate(p.From) {
				m.fail(ctx, p, &stanza.Error{Condition: "not-allowed", Text: "room creation is restricted"})
				return
			}
			nr := newRoom(p.To.Bare(), m.defaultConfig())
			// XEP-0045 10.1.1: a room created by a MUC client stays locked until configured; a groupchat 1.0
			// client (no <x/>) gets an instant room.
			nr.locked = jx.MUC != nil
			nr.affs[p.From.Bare().String()] = storage.RoomAffiliation{JID: p.From.Bare().String(),
				Affiliation: storage.AffOwner}
			if r = m.install(nr); r == nr {
				created = true
				// A temporary room of the same name may have left messages behind (a crash): not this room's.
				m.deleteArchive(ctx, nr.str, "clearing archive of a new room")
			}
		}
		r.mu.Lock()
		if r.gone {
			r.mu.Unlock()
			continue
		}
		out, joined, e := m.enter(r, p, &jx, created)
		r.mu.Unlock()
		if e != nil {
			if created {
				m.destroyEmpty(ctx, r)
			}
			m.fail(ctx, p, e)
			return
		}
		if joined {
			m.track(p.From.String(), r, true)
		}
		m.send(ctx, out)
		return
	}
	m.fail(ctx, p, stanza.ErrInternal)
}

// destroyEmpty removes a room nobody entered after creating it.
func (m *Module) destroyEmpty(ctx context.Context, r *room) {
	r.mu.Lock()
	empty := len(r.occ) == 0 && !r.stored
	if empty {
		r.gone = true
	}
	r.mu.Unlock()
	if empty {
		m.drop(r)
	}
}

func (m *Module) defaultConfig() roomConfig {
	return roomConfig{Public: true, WhoIs: "moderators", HistoryLength: m.cfg.HistoryDefault,
		MaxOccupants: m.cfg.MaxOccupants, AllowPM: "anyone", Created: m.now().UTC()}
}

// enter handles available presence to room/nick under r.mu: a join, a presence update or a nick change. It
// returns the stanzas to route and whether the sender's session joined.
func (m *Module) enter(r *room, p *stanza.Stanza, jx *joinXML, created bool) ([]*stanza.Stanza, bool, *stanza.Error) {
	nick := p.To.Resourcepart()
	full, bare := p.From.String(), p.From.Bare().String()
	payload := filterPresence(p.Payload())
	if o := r.real[full]; o != nil {
		if o.nick != nick {
			out, e := m.changeNick(r, o, full, nick, payload)
			return out, false, e
		}
		o.session(full).presence = payload
		it := r.item(o, m.admins)
		return r.broadcastPresence(nil, o, "", payload, it, nil, nil, nil, o.sess), false, nil
	}
	aff := r.affiliation(bare, m.admins)
	switch {
	case r.locked && aff != storage.AffOwner:
		return nil, false, &stanza.Error{Condition: "item-not-found", Text: "the room is locked until its owner configures it"}
	case aff == storage.AffOutcast:
		return nil, false, &stanza.Error{Condition: "forbidden", Text: "you are banned from this room"}
	case r.cfg.MembersOnly && affRank(aff) < affRank(storage.AffMember):
		return nil, false, &stanza.Error{Condition: "registration-required", Text: "this room is members-only"}
	case r.cfg.Password != "" && affRank(aff) < affRank(storage.AffAdmin) &&
		(jx.MUC == nil || jx.MUC.Password != r.cfg.Password):
		return nil, false, &stanza.Error{Condition: "not-authorized", Text: "a password is required"}
	}
	o := r.occ[nick]
	if o != nil && o.bareStr != bare {
		return nil, false, &stanza.Error{Condition: "conflict", Text: "this nickname is in use"}
	}
	if r.reservedByOther(nick, bare) {
		return nil, false, &stanza.Error{Condition: "conflict", Text: "this nickname is reserved"}
	}
	if o == nil && len(r.occ) >= r.cfg.MaxOccupants && affRank(aff) < affRank(storage.AffAdmin) {
		return nil, false, &stanza.Error{Condition: "service-unavailable", Text: "the room is full"}
	}
	s := &session{jid: p.From, str: full, presence: payload}
	var out []*stanza.Stanza
	if o != nil {
		// Another device of the same user, under the same nick: it joins the occupant; the others in the
		// room see no change.
		o.sess = append(o.sess, s)
		r.real[full] = o
	} else {
		oj, err := jid.New(r.jid.Localpart(), r.jid.Domainpart(), nick)
		if err != nil {
			return nil, false, stanza.ErrJIDMalformed
		}
		o = &occupant{nick: nick, jid: oj, bare: p.From.Bare(), bareStr: bare, role: r.defaultRole(aff),
			sess: []*session{s}}
		r.occ[nick] = o
		r.real[full] = o
		m.Stats.Occupants.Add(1)
	}
	// To the newcomer: everyone else's presence, then its own (XEP-0045 7.2.3), then history and subject.
	see := r.canSeeJIDs(o)
	for _, other := range r.occ {
		if other == o {
			continue
		}
		t := occupantPresence(other.jid, "", other.shown().presence, r.item(other, m.admins), see, nil)
		out = append(out, addressed(t, s.jid, s.str))
	}
	it := r.item(o, m.admins)
	self := []int{}
	if r.cfg.nonAnonymous() {
		self = append(self, statusNonAnonymous)
	}
	self = append(self, statusLogging) // every room's messages are archived (MAM)
	if created {
		self = append(self, statusCreated)
	}
	if len(o.sess) == 1 {
		out = r.broadcastPresence(out, o, "", payload, it, nil, nil, self, []*session{s})
	} else {
		// Another device under the same nick: only it hears of its entrance.
		it.jid = s.str
		t := occupantPresence(o.jid, "", payload, it, true, nil, append(self, statusSelf)...)
		out = append(out, addressed(t, s.jid, s.str))
	}
	now := m.now()
	for _, h := range r.history(parseHistory(jx), now) {
		d := []byte("<delay xmlns='" + NSDelay + "'")
		d = appendAttr(d, "from", r.str)
		d = append(d, " stamp='"...)
		d = mamcodec.AppendTime(d, h.at)
		d = append(d, "'/>"...)
		out = append(out, addressed(h.msg.AppendChild(d), s.jid, s.str))
	}
	out = append(out, addressed(r.subjectMessage(), s.jid, s.str))
	return out, true, nil
}

// reservedByOther reports whether nick is reserved (XEP-0045 7.12) for a user other than bare.
func (r *room) reservedByOther(nick, bare string) bool {
	for j, a := range r.affs {
		if a.Nick == nick && j != bare {
			return true
		}
	}
	return false
}

// subjectMessage is the subject as a joining occupant gets it, always, empty or not (XEP-0045 7.2.15).
func (r *room) subjectMessage() *stanza.Stanza {
	from := r.jid
	if r.cfg.SubjectFrom != "" {
		if j, err := jid.New(r.jid.Localpart(), r.jid.Domainpart(), r.cfg.SubjectFrom); err == nil {
			from = j
		}
	}
	b := []byte("<subject>")
	b = stanza.AppendEscape(b, r.cfg.Subject)
	b = append(b, "</subject>"...)
	return build(stanza.Message, "groupchat", newID(), from, "", b)
}

// changeNick renames an occupant (XEP-0045 7.6): unavailable with 303 from the old nick, available from the
// new one.
func (m *Module) changeNick(r *room, o *occupant, full, nick string, payload []byte) ([]*stanza.Stanza, *stanza.Error) {
	if other := r.occ[nick]; other != nil {
		return nil, &stanza.Error{Condition: "conflict", Text: "this nickname is in use"}
	}
	if r.reservedByOther(nick, o.bareStr) {
		return nil, &stanza.Error{Condition: "conflict", Text: "this nickname is reserved"}
	}
	nj, err := jid.New(r.jid.Localpart(), r.jid.Domainpart(), nick)
	if err != nil {
		return nil, stanza.ErrJIDMalformed
	}
	it := r.item(o, m.admins)
	gone := it
	gone.nick = nick
	out := r.broadcastPresence(nil, o, "unavailable", nil, gone, nil, []int{statusNickChange}, nil, o.sess)
	delete(r.occ, o.nick)
	o.nick, o.jid = nick, nj
	r.occ[nick] = o
	if s := o.session(full); s != nil {
		s.presence = payload
	}
	out = r.broadcastPresence(out, o, "", o.shown().presence, it, nil, nil, nil, o.sess)
	return out, nil
}

// leave takes one session out of a room; p is its unavailable presence, nil when the session ended.
func (m *Module) leave(ctx context.Context, r *room, from jid.JID, full string, p *stanza.Stanza) {
	r.mu.Lock()
	o := r.real[full]
	if o == nil || r.gone {
		r.mu.Unlock()
		return
	}
	delete(r.real, full)
	var payload []byte
	if p != nil && p.Type == "unavailable" {
		payload = filterPresence(p.Payload())
	}
	it := r.item(o, m.admins)
	var leaving *session
	for i, s := range o.sess {
		if s.str == full {
			leaving = s
			o.sess = append(o.sess[:i:i], o.sess[i+1:]...)
			break
		}
	}
	var out []*stanza.Stanza
	if len(o.sess) > 0 {
		it.jid = full
		t := occupantPresence(o.jid, "unavailable", payload, it, true, nil, statusSelf)
		out = append(out, addressed(t, leaving.jid, leaving.str))
	} else {
		it.jid, it.role = full, RoleNone
		delete(r.occ, o.nick)
		m.Stats.Occupants.Add(-1)
		o.sess = []*session{leaving}
		out = r.broadcastPresence(nil, o, "unavailable", payload, it, nil, nil, nil, o.sess)
		o.sess = nil
	}
	destroy := len(r.occ) == 0 && (!r.cfg.Persistent || r.locked)
	if destroy {
		r.gone = true
	}
	r.mu.Unlock()
	m.track(full, r, false)
	m.send(ctx, out)
	if destroy {
		m.drop(r)
		m.persist(ctx, r)
		// A temporary room's messages go with it.
		m.deleteArchive(ctx, r.str, "deleting the archive of a temporary room")
	}
}

// removeOccupant takes an occupant out (kick, ban, membership lost, destroy) under r.mu and queues its
// unavailable presence with codes to everyone, itself included. It returns the real JIDs that left.
func (m *Module) removeOccupant(r *room, o *occupant, it itemInfo, extra []byte, codes []int,
	out []*stanza.Stanza) ([]*stanza.Stanza, []string) {
	it.role = RoleNone
	if it.jid == "" {
		it.jid = o.shown().str
	}
	out = r.broadcastPresence(out, o, "unavailable", nil, it, extra, codes, nil, o.sess)
	var left []string
	for _, s := range o.sess {
		delete(r.real, s.str)
		left = append(left, s.str)
	}
	delete(r.occ, o.nick)
	m.Stats.Occupants.Add(-1)
	return out, left
}
