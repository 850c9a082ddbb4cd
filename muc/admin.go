package muc

import (
	"context"
	"encoding/xml"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/form"
	"parley.im/parley/xmpp/stanza"
)

// newRole is an occupant's role after its affiliation changed to aff (XEP-0045 5.1.2).
func (r *room) newRole(cur, aff string) string {
	switch aff {
	case storage.AffOwner, storage.AffAdmin:
		return RoleModerator
	case storage.AffMember:
		if cur == RoleModerator || cur == RoleVisitor {
			return RoleParticipant
		}
	case storage.AffNone:
		if cur == RoleModerator {
			return r.defaultRole(storage.AffNone)
		}
	}
	return cur
}

// setAffiliation changes a user's affiliation under r.mu (XEP-0045 9 and 10) and queues what tells the room:
// the user's new presence, or its removal (301 ban, 321 membership lost), or, when the user is not in the
// room, a 101 message to the user and the changed item to the occupants who see real JIDs. It returns the
// real full JIDs that left the room. The caller persists the affiliation after unlocking.
func (m *Module) setAffiliation(r *room, actor *occupant, target, aff, reason, nick string,
	out []*stanza.Stanza) ([]*stanza.Stanza, []string) {
	if aff == storage.AffNone {
		delete(r.affs, target)
	} else {
		a := r.affs[target]
		a.JID, a.Affiliation, a.Reason = target, aff, reason
		if nick != "" {
			a.Nick = nick // reserved for the user (XEP-0045 9.3)
		}
		r.affs[target] = a
	}
	actorNick := ""
	if actor != nil {
		actorNick = actor.nick
	}
	var hit []*occupant
	for _, o := range r.occ {
		if o.bareStr == target {
			hit = append(hit, o)
		}
	}
	var left []string
	for _, o := range hit {
		it := r.item(o, m.admins)
		var l []string
		switch {
		case aff == storage.AffOutcast:
			it.actor, it.reason = actorNick, reason
			out, l = m.removeOccupant(r, o, it, nil, []int{statusBanned}, out)
		case r.cfg.MembersOnly && affRank(aff) < affRank(storage.AffMember):
			it.actor, it.reason = actorNick, reason
			out, l = m.removeOccupant(r, o, it, nil, []int{statusAffiliationRemove}, out)
		default:
			o.role = r.newRole(o.role, aff)
			it.role = o.role
			out = r.broadcastPresence(out, o, "", o.shown().presence, it, nil, nil, nil, o.sess)
		}
		left = append(left, l...)
	}
	if len(hit) > 0 {
		return out, left
	}
	tj, err := jid.Parse(target)
	if err != nil {
		return out, left
	}
	item := appendItem(nil, itemInfo{aff: aff, role: RoleNone, jid: target}, true)
	if tj.Localpart() != "" {
		b := append([]byte("<x xmlns='"+NSUser+"'>"), item...)
		b = appendStatus(b, statusAffiliationChange)
		b = append(b, "</x>"...)
		out = append(out, stanza.New(stanza.Message, "", newID(), r.jid, tj, b))
	}
	b := append([]byte("<x xmlns='"+NSUser+"'>"), item...)
	b = append(b, "</x>"...)
	t := build(stanza.Message, "", newID(), r.jid, "", b)
	for _, o := range r.occ {
		if r.canSeeJIDs(o) {
			for _, s := range o.sess {
				out = append(out, addressed(t, s.jid, s.str))
			}
		}
	}
	return out, left
}

type adminItem struct {
	Affiliation string `xml:"affiliation,attr"`
	Role        string `xml:"role,attr"`
	JID         string `xml:"jid,attr"`
	Nick        string `xml:"nick,attr"`
	Reason      string `xml:"http://jabber.org/protocol/muc#admin reason"`
}

type adminQuery struct {
	XMLName xml.Name    `xml:"http://jabber.org/protocol/muc#admin query"`
	Items   []adminItem `xml:"http://jabber.org/protocol/muc#admin item"`
}

func validAff(a string) bool {
	switch a {
	case storage.AffOwner, storage.AffAdmin, storage.AffMember, storage.AffOutcast, storage.AffNone:
		return true
	}
	return false
}

func validRole(r string) bool {
	switch r {
	case RoleModerator, RoleParticipant, RoleVisitor, RoleNone:
		return true
	}
	return false
}

// adminGet answers a muc#admin list request (XEP-0045 8.5, 9.5, 9.8, 10.5, 10.8).
func (m *Module) adminGet(r *room, from jid.JID, payload []byte) ([]byte, *stanza.Error) {
	var q adminQuery
	if xml.Unmarshal(payload, &q) != nil || len(q.Items) != 1 {
		return nil, stanza.ErrBadRequest
	}
	want := q.Items[0]
	r.mu.Lock()
	defer r.mu.Unlock()
	aff := r.affiliation(from.Bare().String(), m.admins)
	me := r.real[from.String()]
	b := []byte("<query xmlns='" + NSAdmin + "'>")
	switch {
	case want.Affiliation != "" && validAff(want.Affiliation) && want.Affiliation != storage.AffNone:
		// Owners and admins see every list; members see the owner, admin and member lists (what a client
		// needs for end-to-end encryption in a private group); the ban list stays with admins.
		ok := affRank(aff) >= affRank(storage.AffAdmin) ||
			(want.Affiliation != storage.AffOutcast && affRank(aff) >= affRank(storage.AffMember))
		if !ok {
			return nil, &stanza.Error{Condition: "forbidden", Text: "you may not see this list"}
		}
		for _, a := range sortedAffs(r.affs) {
			if a.Affiliation != want.Affiliation {
				continue
			}
			b = append(b, "<item"...)
			b = appendAttr(b, "affiliation", a.Affiliation)
			b = appendAttr(b, "jid", a.JID)
			if a.Nick != "" {
				b = appendAttr(b, "nick", a.Nick)
			}
			if a.Reason != "" {
				b = append(b, '>')
				b = appendText(b, "reason", a.Reason)
				b = append(b, "</item>"...)
			} else {
				b = append(b, "/>"...)
			}
		}
	case want.Role != "" && validRole(want.Role) && want.Role != RoleNone:
		if me == nil || me.role != RoleModerator {
			return nil, &stanza.Error{Condition: "forbidden", Text: "only moderators see role lists"}
		}
		for _, o := range sortedOccupants(r.occ) {
			if o.role != want.Role {
				continue
			}
			b = appendItem(b, itemInfo{aff: r.affiliation(o.bareStr, m.admins), role: o.role, jid: o.bareStr},
				true)
			b = b[:len(b)-2] // reopen the self-closed item to add the nick
			b = appendAttr(b, "nick", o.nick)
			b = append(b, "/>"...)
		}
	default:
		return nil, stanza.ErrBadRequest
	}
	return append(b, "</query>"...), nil
}

// adminSet changes affiliations and roles (XEP-0045 8 to 10). Every item is checked before any is applied.
func (m *Module) adminSet(ctx context.Context, r *room, from jid.JID, payload []byte) *stanza.Error {
	var q adminQuery
	if xml.Unmarshal(payload, &q) != nil || len(q.Items) == 0 {
		return stanza.ErrBadRequest
	}
	r.mu.Lock()
	if r.gone {
		r.mu.Unlock()
		return stanza.ErrItemNotFound
	}
	actorBare := from.Bare().String()
	actorAff := r.affiliation(actorBare, m.admins)
	actor := r.real[from.String()]
	type change struct {
		target string
		nick   string
		occ    *occupant
		value  string
		reason string
		isAff  bool
	}
	var changes []change
	owners := r.owners()
	for _, it := range q.Items {
		switch {
		case it.Affiliation != "":
			if !validAff(it.Affiliation) {
				r.mu.Unlock()
				return stanza.ErrBadRequest
			}
			target, nick := it.JID, it.Nick
			if target == "" && it.Nick != "" {
				nick = ""
				if o := r.occ[it.Nick]; o != nil {
					target = o.bareStr
				}
			}
			tj, err := jid.Parse(target)
			if err != nil || target == "" {
				r.mu.Unlock()
				return &stanza.Error{Condition: "bad-request", Text: "an affiliation change needs a jid"}
			}
			target = tj.Bare().String()
			cur := r.affiliation(target, nil)
			if e := checkAffChange(actorAff, cur, it.Affiliation); e != nil {
				r.mu.Unlock()
				return e
			}
			if cur == storage.AffOwner && it.Affiliation != storage.AffOwner {
				owners--
				if owners < 1 {
					r.mu.Unlock()
					return &stanza.Error{Condition: "conflict", Text: "a room needs an owner"}
				}
			}
			if it.Affiliation == storage.AffOwner && cur != storage.AffOwner {
				owners++
			}
			if nick != "" {
				if o := r.occ[nick]; (o != nil && o.bareStr != target) || r.reservedByOther(nick, target) {
					r.mu.Unlock()
					return &stanza.Error{Condition: "conflict", Text: "this nickname is someone else's"}
				}
			}
			changes = append(changes, change{target: target, nick: nick, value: it.Affiliation, reason: it.Reason,
				isAff: true})
		case it.Role != "":
			if !validRole(it.Role) || it.Nick == "" {
				r.mu.Unlock()
				return stanza.ErrBadRequest
			}
			o := r.occ[it.Nick]
			if o == nil {
				r.mu.Unlock()
				return &stanza.Error{Condition: "item-not-found", Text: "no such occupant"}
			}
			if e := r.checkRoleChange(actor, actorAff, o, it.Role, m.admins); e != nil {
				r.mu.Unlock()
				return e
			}
			changes = append(changes, change{occ: o, value: it.Role, reason: it.Reason})
		default:
			r.mu.Unlock()
			return stanza.ErrBadRequest
		}
	}
	var out []*stanza.Stanza
	var left, affected []string
	actorNick := ""
	if actor != nil {
		actorNick = actor.nick
	}
	for _, c := range changes {
		if c.isAff {
			var l []string
			out, l = m.setAffiliation(r, actor, c.target, c.value, c.reason, c.nick, out)
			left = append(left, l...)
			affected = append(affected, c.target)
			continue
		}
		if r.occ[c.occ.nick] != c.occ {
			continue // removed by an earlier item
		}
		it := r.item(c.occ, m.admins)
		it.actor, it.reason = actorNick, c.reason
		if c.value == RoleNone {
			var l []string
			out, l = m.removeOccupant(r, c.occ, it, nil, []int{statusKicked}, out)
			left = append(left, l...)
			continue
		}
		c.occ.role = c.value
		it.role = c.value
		out = r.broadcastPresence(out, c.occ, "", c.occ.shown().presence, it, nil, nil, nil, c.occ.sess)
	}
	r.mu.Unlock()
	for _, l := range left {
		m.track(l, r, false)
	}
	for _, a := range affected {
		m.persistAff(ctx, r, a)
	}
	m.send(ctx, out)
	return nil
}

// checkAffChange applies XEP-0045's rules on who may change which affiliation: owners any; admins only
// between none, member and outcast, and not for owners or admins.
func checkAffChange(actor, cur, next string) *stanza.Error {
	switch actor {
	case storage.AffOwner:
		return nil
	case storage.AffAdmin:
		if affRank(cur) >= affRank(storage.AffAdmin) || affRank(next) >= affRank(storage.AffAdmin) {
			return &stanza.Error{Condition: "not-allowed", Text: "only owners change owners and admins"}
		}
		return nil
	}
	return &stanza.Error{Condition: "forbidden", Text: "only owners and admins change affiliations"}
}

// checkRoleChange applies XEP-0045 8.2 to 8.6 and 9.6: moderators kick and give or take voice, admins and
// owners grant and revoke moderation; nobody acts on an occupant of higher or equal affiliation above member.
func (r *room) checkRoleChange(actor *occupant, actorAff string, o *occupant, role string,
	admins map[string]bool) *stanza.Error {
	if actor == nil || actor.role != RoleModerator {
		return &stanza.Error{Condition: "forbidden", Text: "only moderators change roles"}
	}
	targetAff := r.affiliation(o.bareStr, admins)
	if role == RoleModerator || o.role == RoleModerator {
		if affRank(actorAff) < affRank(storage.AffAdmin) {
			return &stanza.Error{Condition: "not-allowed", Text: "only admins and owners change moderators"}
		}
	}
	if affRank(targetAff) >= affRank(storage.AffAdmin) && (role != RoleModerator) {
		return &stanza.Error{Condition: "not-allowed", Text: "an admin or owner keeps the moderator role"}
	}
	return nil
}

type ownerQuery struct {
	XMLName xml.Name   `xml:"http://jabber.org/protocol/muc#owner query"`
	Form    *form.Form `xml:"jabber:x:data x"`
	Destroy *struct {
		JID      string `xml:"jid,attr"`
		Reason   string `xml:"http://jabber.org/protocol/muc#owner reason"`
		Password string `xml:"http://jabber.org/protocol/muc#owner password"`
	} `xml:"http://jabber.org/protocol/muc#owner destroy"`
}

// configForm renders the room configuration form (XEP-0045 10.2).
func (m *Module) configForm(r *room) []byte {
	c := r.cfg
	text := func(v, label, value string) form.Field {
		return form.Field{Var: v, Type: form.TextSingle, Label: label, Values: []string{value}}
	}
	boolean := func(v, label string, value bool) form.Field {
		return form.Field{Var: v, Type: form.Boolean, Label: label, Values: []string{form.FormatBool(value)}}
	}
	list := func(v, label, value string, options ...form.Option) form.Field {
		return form.Field{Var: v, Type: form.ListSingle, Label: label, Values: []string{value}, Options: options}
	}
	f := form.New(form.TypeForm, NSRoomConfig).
		Add(text("muc#roomconfig_roomname", "Name", c.Name)).
		Add(text("muc#roomconfig_roomdesc", "Description", c.Description)).
		Add(text("muc#roomconfig_lang", "Language", c.Lang)).
		Add(boolean("muc#roomconfig_persistentroom", "Persistent (kept when empty)", c.Persistent)).
		Add(boolean("muc#roomconfig_publicroom", "Listed in the room directory", c.Public)).
		Add(boolean("muc#roomconfig_membersonly", "Members only", c.MembersOnly)).
		Add(boolean("muc#roomconfig_moderatedroom", "Moderated (visitors need voice)", c.Moderated)).
		Add(boolean("muc#roomconfig_passwordprotectedroom", "Password protected", c.Password != "")).
		Add(form.Field{Var: "muc#roomconfig_roomsecret", Type: form.TextPrivate, Label: "Password", Values: []string{c.Password}}).
		Add(list("muc#roomconfig_whois", "Who may see real JIDs", c.WhoIs,
			form.Option{Value: "moderators", Label: "Moderators only"}, form.Option{Value: "anyone", Label: "Anyone"})).
		Add(text("muc#roomconfig_historylength", "Messages of history sent on joining", strconv.Itoa(c.HistoryLength))).
		Add(list("muc#roomconfig_maxusers", "Maximum occupants", strconv.Itoa(c.MaxOccupants),
			maxUsersOptions(c.MaxOccupants, m.cfg.MaxOccupantsLimit)...)).
		Add(boolean("muc#roomconfig_changesubject", "Participants may change the subject", c.ChangeSubject)).
		Add(boolean("muc#roomconfig_allowinvites", "Participants may invite", c.AllowInvites)).
		Add(list("muc#roomconfig_allowpm", "Who may send private messages", c.AllowPM,
			form.Option{Value: "anyone", Label: "Anyone"}, form.Option{Value: "participants", Label: "Participants"},
			form.Option{Value: "moderators", Label: "Moderators"}, form.Option{Value: "none", Label: "Nobody"}))
	return append(f.Append([]byte("<query xmlns='"+NSOwner+"'>")), "</query>"...)
}

// maxUsersOptions returns the choices of muc#roomconfig_maxusers: the room's current limit, 100 and the
// service's limit, each once and in ascending order (the current limit and the service's default are often
// both 100), and none above the service's limit, which applyConfig would refuse.
func maxUsersOptions(cur, limit int) []form.Option {
	var opts []form.Option
	for _, n := range []int{cur, 100, limit} {
		if n > limit || slices.ContainsFunc(opts, func(o form.Option) bool { return o.Value == strconv.Itoa(n) }) {
			continue
		}
		opts = append(opts, form.Option{Value: strconv.Itoa(n), Label: strconv.Itoa(n)})
	}
	slices.SortFunc(opts, func(a, b form.Option) int {
		x, _ := strconv.Atoi(a.Value)
		y, _ := strconv.Atoi(b.Value)
		return x - y
	})
	return opts
}

// applyConfig applies a submitted muc#roomconfig form to a copy of the configuration.
func (m *Module) applyConfig(cur roomConfig, f *form.Form) (roomConfig, *stanza.Error) {
	c := cur
	// A var given twice: the last one wins.
	v := make(map[string][]string, len(f.Fields))
	for _, fl := range f.Fields {
		v[fl.Var] = fl.Values
	}
	if ft, ok := v[form.FormType]; ok && (len(ft) != 1 || ft[0] != NSRoomConfig) {
		return cur, &stanza.Error{Condition: "bad-request", Text: "FORM_TYPE must be " + NSRoomConfig}
	}
	one := func(k string) (string, bool) {
		x, ok := v[k]
		if !ok {
			return "", false
		}
		if len(x) == 0 {
			return "", true
		}
		return x[0], true
	}
	bad := func(k string) *stanza.Error {
		return &stanza.Error{Condition: "not-acceptable", Text: "bad value for " + k}
	}
	if s, ok := one("muc#roomconfig_roomname"); ok {
		c.Name = s
	}
	if s, ok := one("muc#roomconfig_roomdesc"); ok {
		c.Description = s
	}
	if s, ok := one("muc#roomconfig_lang"); ok {
		c.Lang = s
	}
	for k, dst := range map[string]*bool{
		"muc#roomconfig_persistentroom": &c.Persistent, "muc#roomconfig_publicroom": &c.Public,
		"muc#roomconfig_membersonly": &c.MembersOnly, "muc#roomconfig_moderatedroom": &c.Moderated,
		"muc#roomconfig_changesubject": &c.ChangeSubject, "muc#roomconfig_allowinvites": &c.AllowInvites,
	} {
		if x, ok := v[k]; ok {
			b, valid := (&form.Field{Values: x}).Bool()
			if !valid {
				return cur, bad(k)
			}
			*dst = b
		}
	}
	if s, ok := one("muc#roomconfig_roomsecret"); ok {
		c.Password = s
	}
	if x, ok := v["muc#roomconfig_passwordprotectedroom"]; ok {
		b, valid := (&form.Field{Values: x}).Bool()
		if !valid {
			return cur, bad("muc#roomconfig_passwordprotectedroom")
		}
		if !b {
			c.Password = ""
		} else if c.Password == "" {
			return cur, &stanza.Error{Condition: "not-acceptable", Text: "a password protected room needs a password"}
		}
	}
	if s, ok := one("muc#roomconfig_whois"); ok {
		if s != "moderators" && s != "anyone" {
			return cur, bad("muc#roomconfig_whois")
		}
		c.WhoIs = s
	}
	for _, k := range []string{"muc#roomconfig_historylength", "muc#maxhistoryfetch"} {
		if s, ok := one(k); ok && s != "" {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 0 {
				return cur, bad(k)
			}
			c.HistoryLength = min(n, MaxHistoryCeiling)
		}
	}
	if s, ok := one("muc#roomconfig_maxusers"); ok && s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		switch {
		case s == "none":
			n = m.cfg.MaxOccupantsLimit
		case err != nil || n < 1:
			return cur, bad("muc#roomconfig_maxusers")
		case n > m.cfg.MaxOccupantsLimit:
			return cur, &stanza.Error{Condition: "not-acceptable", Text: "maxusers is above the service's limit of " +
				strconv.Itoa(m.cfg.MaxOccupantsLimit)}
		}
		c.MaxOccupants = n
	}
	if s, ok := one("muc#roomconfig_allowpm"); ok {
		switch s {
		case "anyone", "participants", "moderators", "none":
			c.AllowPM = s
		default:
			return cur, bad("muc#roomconfig_allowpm")
		}
	}
	// Other fields (muc#roomconfig_enablelogging, muc#roomconfig_getmemberlist, ...) that clients send
	// with the values they received are ignored: the room does not offer them.
	return c, nil
}

// ownerSet handles muc#owner sets: the configuration form (which also unlocks a new room), its cancellation
// and destruction.
func (m *Module) ownerSet(ctx context.Context, r *room, from jid.JID, payload []byte) *stanza.Error {
	var q ownerQuery
	if xml.Unmarshal(payload, &q) != nil {
		return stanza.ErrBadRequest
	}
	r.mu.Lock()
	if r.gone {
		r.mu.Unlock()
		return stanza.ErrItemNotFound
	}
	if r.affiliation(from.Bare().String(), m.admins) != storage.AffOwner {
		r.mu.Unlock()
		return &stanza.Error{Condition: "forbidden", Text: "only owners configure the room"}
	}
	switch {
	case q.Destroy != nil:
		r.mu.Unlock()
		m.destroy(ctx, r, q.Destroy.JID, q.Destroy.Reason, q.Destroy.Password)
		return nil
	case q.Form != nil && q.Form.Type == form.TypeCancel:
		locked := r.locked
		r.mu.Unlock()
		if locked {
			// XEP-0045 10.1.3: cancelling the initial configuration destroys the room.
			m.destroy(ctx, r, "", "", "")
		}
		return nil
	case q.Form != nil && q.Form.Type == form.TypeSubmit:
	default:
		r.mu.Unlock()
		return stanza.ErrBadRequest
	}
	next, e := m.applyConfig(r.cfg, q.Form)
	if e != nil {
		r.mu.Unlock()
		return e
	}
	prev, wasLocked := r.cfg, r.locked
	r.cfg, r.locked = next, false
	if len(r.hist) > next.HistoryLength {
		r.hist = append(r.hist[:0:0], r.hist[len(r.hist)-next.HistoryLength:]...)
	}
	var out []*stanza.Stanza
	var left []string
	if next.MembersOnly && !prev.MembersOnly {
		// XEP-0045 9.7: occupants who are not members leave with 322.
		for _, o := range sortedOccupants(r.occ) {
			if affRank(r.affiliation(o.bareStr, m.admins)) < affRank(storage.AffMember) {
				var l []string
				out, l = m.removeOccupant(r, o, r.item(o, m.admins), nil, []int{statusMembersOnlyRemove}, out)
				left = append(left, l...)
			}
		}
	}
	if !wasLocked {
		codes := []int{statusConfigChange}
		if next.nonAnonymous() && !prev.nonAnonymous() {
			codes = append(codes, statusNowNonAnonymous)
		}
		if !next.nonAnonymous() && prev.nonAnonymous() {
			codes = append(codes, statusNowSemiAnonymous)
		}
		b := append([]byte("<x xmlns='"+NSUser+"'>"), appendStatus(nil, codes...)...)
		b = append(b, "</x>"...)
		t := build(stanza.Message, "groupchat", newID(), r.jid, "", b)
		for _, o := range r.occ {
			for _, s := range o.sess {
				out = append(out, addressed(t, s.jid, s.str))
			}
		}
	}
	r.mu.Unlock()
	for _, l := range left {
		m.track(l, r, false)
	}
	m.persist(ctx, r)
	m.send(ctx, out)
	return nil
}

// destroy ends a room (XEP-0045 10.9): every occupant gets unavailable presence with the destroy element;
// the room, its affiliations and its archive are deleted.
func (m *Module) destroy(ctx context.Context, r *room, alt, reason, password string) {
	extra := []byte("<destroy")
	if alt != "" {
		extra = appendAttr(extra, "jid", alt)
	}
	extra = append(extra, '>')
	if reason != "" {
		extra = appendText(extra, "reason", reason)
	}
	if password != "" {
		extra = appendText(extra, "password", password)
	}
	extra = append(extra, "</destroy>"...)
	r.mu.Lock()
	if r.gone {
		r.mu.Unlock()
		return
	}
	r.gone = true
	// Each occupant hears of its own departure only: the room is gone for everyone at once. drop clears the
	// session index.
	var out []*stanza.Stanza
	for _, o := range r.occ {
		it := itemInfo{aff: storage.AffNone, role: RoleNone}
		t := occupantPresence(o.jid, "unavailable", nil, it, false, extra, statusSelf)
		for _, s := range o.sess {
			out = append(out, addressed(t, s.jid, s.str))
		}
	}
	m.Stats.Occupants.Add(-int64(len(r.occ)))
	r.occ, r.real = map[string]*occupant{}, map[string]*occupant{}
	r.mu.Unlock()
	m.drop(r)
	m.send(ctx, out)
	r.persistMu.Lock()
	if r.stored {
		if err := m.rooms.DeleteRoom(ctx, r.str); err != nil {
			m.log.Error("deleting room", "room", r.str, "err", err)
		}
		r.stored = false
	}
	r.persistMu.Unlock()
	m.deleteArchive(ctx, r.str, "deleting room archive")
}
