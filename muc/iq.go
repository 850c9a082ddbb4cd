package muc

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/form"
	"parley.im/parley/xmpp/mamcodec"
	"parley.im/parley/xmpp/stanza"
)

// pendingIQ is an IQ the service forwarded to an occupant, awaiting its answer.
type pendingIQ struct {
	requester jid.JID // who asked
	id        string  // the id it used
	via       string  // the occupant JID the request went out from (the answer comes back to it)
	from      jid.JID // the occupant JID the answer comes from
	expires   time.Time
}

const (
	maxPendingIQs = 10000
	pendingTTL    = 2 * time.Minute
)

func (m *Module) reply(ctx context.Context, s *stanza.Stanza, inner []byte, e *stanza.Error) {
	if e != nil {
		m.fail(ctx, s, e)
		return
	}
	m.router.Route(ctx, stanza.Result(s, inner))
}

// serviceStanza handles stanzas to the service domain itself.
func (m *Module) serviceStanza(ctx context.Context, s *stanza.Stanza) {
	if !s.IsIQRequest() {
		if s.Kind == stanza.Message {
			m.fail(ctx, s, stanza.ErrServiceUnavailable)
		}
		return
	}
	local, ns, _, ok := stanza.FirstChild(s.Payload())
	if !ok {
		m.fail(ctx, s, stanza.ErrBadRequest)
		return
	}
	switch {
	case s.Type == "get" && ns == NSDiscoInfo && local == "query":
		b := []byte("<query xmlns='" + NSDiscoInfo + "'><identity category='conference' type='text' name='Chatrooms'/>")
		for _, f := range []string{NS, NSDiscoInfo, NSDiscoItems, NSUnique, NSConference, NSPing, NSSelfPing} {
			b = appendFeature(b, f)
		}
		m.reply(ctx, s, append(b, "</query>"...), nil)
	case s.Type == "get" && ns == NSDiscoItems && local == "query":
		b, err := m.publicRooms(ctx)
		if err != nil {
			m.log.Error("listing rooms", "err", err)
			m.fail(ctx, s, stanza.ErrInternal)
			return
		}
		m.reply(ctx, s, b, nil)
	case s.Type == "get" && ns == NSUnique && local == "unique":
		b := append([]byte("<unique xmlns='"+NSUnique+"'>"), strings.ToLower(newID())...)
		m.reply(ctx, s, append(b, "</unique>"...), nil)
	case s.Type == "get" && ns == NSPing && local == "ping":
		m.reply(ctx, s, nil, nil)
	default:
		m.fail(ctx, s, stanza.ErrServiceUnavailable)
	}
}

func appendFeature(b []byte, f string) []byte {
	b = append(b, "<feature"...)
	b = appendAttr(b, "var", f)
	return append(b, "/>"...)
}

// publicRooms lists the public, unlocked rooms, stored or in memory (XEP-0045 6.3).
func (m *Module) publicRooms(ctx context.Context) ([]byte, error) {
	type entry struct{ jid, name string }
	seen := map[string]entry{}
	m.mu.Lock()
	live := make([]*room, 0, len(m.live))
	for _, r := range m.live {
		live = append(live, r)
	}
	m.mu.Unlock()
	for _, r := range live {
		r.mu.Lock()
		if r.cfg.Public && !r.locked && !r.gone {
			seen[r.str] = entry{r.str, r.cfg.Name}
		} else {
			seen[r.str] = entry{}
		}
		r.mu.Unlock()
	}
	stored, err := m.rooms.ListRooms(ctx, "", 0)
	if err != nil {
		return nil, err
	}
	for _, rec := range stored {
		if _, ok := seen[rec.JID]; ok {
			continue
		}
		var c roomConfig
		if json.Unmarshal(rec.Config, &c) == nil && c.Public {
			seen[rec.JID] = entry{rec.JID, c.Name}
		}
	}
	keys := make([]string, 0, len(seen))
	for k, e := range seen {
		if e.jid != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	b := []byte("<query xmlns='" + NSDiscoItems + "'>")
	for _, k := range keys {
		b = append(b, "<item"...)
		b = appendAttr(b, "jid", k)
		if n := seen[k].name; n != "" {
			b = appendAttr(b, "name", n)
		}
		b = append(b, "/>"...)
	}
	return append(b, "</query>"...), nil
}

// roomIQ handles IQs to a room's bare JID.
func (m *Module) roomIQ(ctx context.Context, s *stanza.Stanza) {
	if !s.IsIQRequest() {
		return
	}
	local, ns, payload, ok := stanza.FirstChild(s.Payload())
	if !ok {
		m.fail(ctx, s, stanza.ErrBadRequest)
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
	bare := s.From.Bare().String()
	r.mu.Lock()
	hidden := r.gone || (r.locked && r.affiliation(bare, m.admins) != storage.AffOwner)
	r.mu.Unlock()
	if hidden {
		m.fail(ctx, s, &stanza.Error{Condition: "item-not-found", Text: "no such room"})
		return
	}
	switch {
	case s.Type == "get" && ns == NSDiscoInfo && local == "query":
		r.mu.Lock()
		b := r.discoInfo(m.archive != nil)
		r.mu.Unlock()
		m.reply(ctx, s, b, nil)
	case s.Type == "get" && ns == NSDiscoItems && local == "query":
		r.mu.Lock()
		b := []byte("<query xmlns='" + NSDiscoItems + "'>")
		// Occupants are listed only to occupants (XEP-0045 6.5 leaves it to the room's privacy).
		if r.real[s.From.String()] != nil {
			for _, o := range sortedOccupants(r.occ) {
				b = append(b, "<item"...)
				b = appendAttr(b, "jid", o.jid.String())
				b = append(b, "/>"...)
			}
		}
		r.mu.Unlock()
		m.reply(ctx, s, append(b, "</query>"...), nil)
	case ns == NSOwner && local == "query" && s.Type == "get":
		r.mu.Lock()
		var b []byte
		var e *stanza.Error
		if r.affiliation(bare, m.admins) == storage.AffOwner {
			b = m.configForm(r)
		} else {
			e = &stanza.Error{Condition: "forbidden", Text: "only owners configure the room"}
		}
		r.mu.Unlock()
		m.reply(ctx, s, b, e)
	case ns == NSOwner && local == "query" && s.Type == "set":
		m.reply(ctx, s, nil, m.ownerSet(ctx, r, s.From, payload))
	case ns == NSAdmin && local == "query" && s.Type == "get":
		b, e := m.adminGet(r, s.From, payload)
		m.reply(ctx, s, b, e)
	case ns == NSAdmin && local == "query" && s.Type == "set":
		m.reply(ctx, s, nil, m.adminSet(ctx, r, s.From, payload))
	case ns == mamcodec.NS && local == "query" && m.archive != nil:
		m.mamQuery(ctx, r, s, payload)
	case s.Type == "get" && ns == NSPing && local == "ping":
		m.reply(ctx, s, nil, nil)
	default:
		m.fail(ctx, s, stanza.ErrServiceUnavailable)
	}
}

// discoInfo describes a room (XEP-0045 6.4) under r.mu.
func (r *room) discoInfo(archived bool) []byte {
	c := r.cfg
	name := c.Name
	if name == "" {
		name = r.name
	}
	b := []byte("<query xmlns='" + NSDiscoInfo + "'><identity category='conference' type='text'")
	b = appendAttr(b, "name", name)
	b = append(b, "/>"...)
	pick := func(cond bool, yes, no string) string {
		if cond {
			return yes
		}
		return no
	}
	mamNS, mamExt, sid := mamcodec.NS, mamcodec.NSExtended, NSSID
	if !archived {
		mamNS, mamExt, sid = "", "", ""
	}
	for _, f := range []string{NS, NSDiscoInfo, NSStableID, NSSelfPing, mamNS, mamExt, sid, NSConference,
		pick(c.Persistent, "muc_persistent", "muc_temporary"),
		pick(c.Public, "muc_public", "muc_hidden"),
		pick(c.MembersOnly, "muc_membersonly", "muc_open"),
		pick(c.Moderated, "muc_moderated", "muc_unmoderated"),
		pick(c.nonAnonymous(), "muc_nonanonymous", "muc_semianonymous"),
		pick(c.Password != "", "muc_passwordprotected", "muc_unsecured"),
	} {
		if f == "" {
			continue
		}
		b = appendFeature(b, f)
	}
	field := func(v, label, value string) form.Field {
		return form.Field{Var: v, Label: label, Values: []string{value}}
	}
	f := form.New(form.TypeResult, NSRoomInfo).
		Add(field("muc#roominfo_description", "Description", c.Description)).
		Add(field("muc#roominfo_subject", "Subject", c.Subject)).
		Add(field("muc#roominfo_occupants", "Number of occupants", strconv.Itoa(len(r.occ)))).
		Add(field("muc#roomconfig_roomname", "Name", c.Name)).
		Add(field("muc#roomconfig_maxusers", "Maximum occupants", strconv.Itoa(c.MaxOccupants))).
		Add(field("muc#roomconfig_changesubject", "Participants may change the subject", form.FormatBool(c.ChangeSubject))).
		Add(field("muc#roomconfig_allowinvites", "Participants may invite", form.FormatBool(c.AllowInvites))).
		Add(field("muc#roomconfig_allowpm", "Who may send private messages", c.AllowPM))
	if c.Lang != "" {
		f.Add(field("muc#roominfo_lang", "Language", c.Lang))
	}
	return append(f.Append(b), "</query>"...)
}

// mamQuery answers a XEP-0313 query on the room's archive. Members-only rooms show their archive to members;
// open rooms to anyone not banned.
func (m *Module) mamQuery(ctx context.Context, r *room, s *stanza.Stanza, payload []byte) {
	bare := s.From.Bare().String()
	r.mu.Lock()
	aff := r.affiliation(bare, m.admins)
	membersOnly := r.cfg.MembersOnly
	r.mu.Unlock()
	if aff == storage.AffOutcast || (membersOnly && affRank(aff) < affRank(storage.AffMember)) {
		m.fail(ctx, s, &stanza.Error{Condition: "forbidden", Text: "the archive of this room is for its members"})
		return
	}
	if s.Type == "get" {
		m.reply(ctx, s, mamcodec.AppendFields(nil), nil)
		return
	}
	q, err := mamcodec.ParseQuery(payload, mamcodec.Limits{})
	if err != nil {
		m.fail(ctx, s, stanza.AsError(err))
		return
	}
	if q.Archive.With != "" {
		// In a room archive, with is an occupant JID (room@service/nick); a bare room JID means everyone.
		if w, err := jid.Parse(q.Archive.With); err == nil && w.Equal(r.jid) {
			q.Archive.With = ""
		}
	}
	page, err := mamcodec.Fetch(ctx, m.archive, r.str, q)
	if err != nil {
		if se := stanza.AsError(err); se != stanza.ErrInternal {
			m.fail(ctx, s, se)
			return
		}
		m.log.Error("room archive query", "room", r.str, "err", err)
		m.fail(ctx, s, stanza.ErrInternal)
		return
	}
	for _, it := range page.Items {
		m.router.Route(ctx, mamcodec.ResultMessage(r.jid, s.From, q.ID, it))
	}
	m.reply(ctx, s, mamcodec.AppendFin(nil, page), nil)
}

// occupantIQ handles IQs to an occupant JID: XEP-0410 self-pings, answered by the room, and everything else
// forwarded to the occupant (vCards to its bare JID, XEP-0045 17.3), with answers routed back.
func (m *Module) occupantIQ(ctx context.Context, s *stanza.Stanza) {
	if !s.IsIQRequest() {
		m.forwardAnswer(ctx, s)
		return
	}
	r, err := m.lookup(ctx, s.To)
	if err != nil || r == nil {
		m.fail(ctx, s, &stanza.Error{Condition: "item-not-found", Text: "no such room"})
		return
	}
	local, ns, _, _ := stanza.FirstChild(s.Payload())
	ping := s.Type == "get" && ns == NSPing && local == "ping"
	r.mu.Lock()
	sender, target := r.real[s.From.String()], r.occ[s.To.Resourcepart()]
	var to *session
	var via, tj jid.JID
	if sender != nil && target != nil {
		to, via, tj = target.shown(), sender.jid, target.jid
	}
	r.mu.Unlock()
	switch {
	case sender == nil:
		// XEP-0410: the client is not joined (any more) and should rejoin.
		m.fail(ctx, s, &stanza.Error{Condition: "not-acceptable", Text: "you are not an occupant of this room"})
		return
	case ping && sender == target:
		m.reply(ctx, s, nil, nil)
		return
	case target == nil:
		m.fail(ctx, s, &stanza.Error{Condition: "item-not-found", Text: "no such occupant"})
		return
	}
	dest, destStr := to.jid, to.str
	if ns == "vcard-temp" {
		dest = to.jid.Bare()
		destStr = dest.String()
	}
	key := "muc-" + newID()
	now := m.now()
	m.mu.Lock()
	if len(m.pending) >= maxPendingIQs {
		for k, p := range m.pending {
			if now.After(p.expires) {
				delete(m.pending, k)
			}
		}
	}
	full := len(m.pending) >= maxPendingIQs
	if !full {
		m.pending[key] = pendingIQ{requester: s.From, id: s.ID, via: via.String(), from: tj, expires: now.Add(pendingTTL)}
	}
	m.mu.Unlock()
	if full {
		m.fail(ctx, s, &stanza.Error{Condition: "resource-constraint", Type: "wait"})
		return
	}
	m.router.Route(ctx, addressed(build(stanza.IQ, s.Type, key, via, "", s.Payload()), dest, destStr))
}

// forwardAnswer routes the answer to a forwarded IQ back to whoever asked.
func (m *Module) forwardAnswer(ctx context.Context, s *stanza.Stanza) {
	m.mu.Lock()
	p, ok := m.pending[s.ID]
	if ok && p.via == s.To.String() {
		delete(m.pending, s.ID)
	} else {
		ok = false
	}
	m.mu.Unlock()
	if !ok || m.now().After(p.expires) {
		return
	}
	m.router.Route(ctx, addressed(build(stanza.IQ, s.Type, p.id, p.from, "", s.Payload()), p.requester,
		p.requester.String()))
}

func sortedAffs(affs map[string]storage.RoomAffiliation) []storage.RoomAffiliation {
	out := make([]storage.RoomAffiliation, 0, len(affs))
	for _, a := range affs {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b storage.RoomAffiliation) int { return strings.Compare(a.JID, b.JID) })
	return out
}

func sortedOccupants(occ map[string]*occupant) []*occupant {
	out := make([]*occupant, 0, len(occ))
	for _, o := range occ {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *occupant) int { return strings.Compare(a.nick, b.nick) })
	return out
}
