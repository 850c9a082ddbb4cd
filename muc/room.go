package muc

import (
	"encoding/json"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/stanza"
)

// Roles (XEP-0045 section 5.1).
const (
	RoleModerator   = "moderator"
	RoleParticipant = "participant"
	RoleVisitor     = "visitor"
	RoleNone        = "none"
)

func affRank(a string) int {
	switch a {
	case storage.AffOwner:
		return 4
	case storage.AffAdmin:
		return 3
	case storage.AffMember:
		return 2
	case storage.AffOutcast:
		return 0
	}
	return 1 // none
}

func roleRank(r string) int {
	switch r {
	case RoleModerator:
		return 3
	case RoleParticipant:
		return 2
	case RoleVisitor:
		return 1
	}
	return 0
}

// roomConfig is a room's configuration (muc#roomconfig) and its subject, stored as JSON by storage.Rooms.
type roomConfig struct {
	Name          string    `json:"name,omitempty"`
	Description   string    `json:"description,omitempty"`
	Lang          string    `json:"lang,omitempty"`
	Persistent    bool      `json:"persistent"`
	Public        bool      `json:"public"`
	MembersOnly   bool      `json:"members_only"`
	Moderated     bool      `json:"moderated"`
	Password      string    `json:"password,omitempty"`
	WhoIs         string    `json:"whois"` // "moderators" (semi-anonymous) or "anyone" (non-anonymous)
	HistoryLength int       `json:"history_length"`
	MaxOccupants  int       `json:"max_occupants"`
	ChangeSubject bool      `json:"change_subject"` // participants may change the subject
	AllowInvites  bool      `json:"allow_invites"`  // participants may invite (and, members-only, make members)
	AllowPM       string    `json:"allow_pm"`       // anyone, participants, moderators or none
	Subject       string    `json:"subject,omitempty"`
	SubjectFrom   string    `json:"subject_from,omitempty"` // the nick that set it
	Created       time.Time `json:"created"`
}

func (c *roomConfig) nonAnonymous() bool { return c.WhoIs == "anyone" }

// session is one client session of an occupant (several devices may share one nick).
type session struct {
	jid      jid.JID
	str      string
	presence []byte // the session's last presence content, MUC elements removed
}

// occupant is a nick in the room.
type occupant struct {
	nick    string
	jid     jid.JID // room@service/nick
	bare    jid.JID // the user's real bare JID
	bareStr string
	role    string
	sess    []*session // in join order; the last one's presence is the one shown
}

func (o *occupant) shown() *session { return o.sess[len(o.sess)-1] }

func (o *occupant) session(full string) *session {
	for _, s := range o.sess {
		if s.str == full {
			return s
		}
	}
	return nil
}

// histItem is a message kept for history on join.
type histItem struct {
	msg  *stanza.Stanza // without to
	at   time.Time
	size int
}

// room is one chat room. mu guards everything below it; persistMu orders writes to storage (it is taken
// before mu, and held across the write, never while routing).
type room struct {
	jid  jid.JID
	str  string
	name string // localpart

	persistMu sync.Mutex
	stored    bool // guarded by persistMu: the room is in storage.Rooms

	mu     sync.Mutex
	cfg    roomConfig
	locked bool // created and awaiting its configuration (XEP-0045 10.1.1)
	gone   bool // destroyed; whoever holds a pointer looks it up again
	affs   map[string]storage.RoomAffiliation
	occ    map[string]*occupant // by nick
	real   map[string]*occupant // by real full JID
	hist   []histItem

	// postMu orders the room's messages: held while one takes its place in fan and queues its archive append
	// (see Module.post). fanMu guards fan, the messages accepted and not yet fanned out in that order, and
	// fanning, set while a goroutine fans them out.
	postMu  sync.Mutex
	fanMu   sync.Mutex
	fan     []*outgoing
	fanning bool
}

func newRoom(j jid.JID, cfg roomConfig) *room {
	return &room{jid: j, str: j.String(), name: j.Localpart(), cfg: cfg,
		affs: make(map[string]storage.RoomAffiliation), occ: make(map[string]*occupant),
		real: make(map[string]*occupant)}
}

// affiliation returns a user's affiliation. admins are the service administrators.
func (r *room) affiliation(bare string, admins map[string]bool) string {
	if admins[bare] {
		return storage.AffOwner
	}
	if a, ok := r.affs[bare]; ok {
		return a.Affiliation
	}
	// A server-wide ban is recorded by domain.
	if j, err := jid.Parse(bare); err == nil && j.Localpart() != "" {
		if a, ok := r.affs[j.Domainpart()]; ok && a.Affiliation == storage.AffOutcast {
			return storage.AffOutcast
		}
	}
	return storage.AffNone
}

// defaultRole is the role an occupant with an affiliation gets on entering (XEP-0045 5.1.2).
func (r *room) defaultRole(aff string) string {
	switch aff {
	case storage.AffOwner, storage.AffAdmin:
		return RoleModerator
	case storage.AffMember:
		return RoleParticipant
	case storage.AffOutcast:
		return RoleNone
	}
	if r.cfg.Moderated {
		return RoleVisitor
	}
	return RoleParticipant
}

func (r *room) owners() int {
	n := 0
	for _, a := range r.affs {
		if a.Affiliation == storage.AffOwner {
			n++
		}
	}
	return n
}

// pushHistory keeps a message for history on join, dropping the oldest past the room's history length.
func (r *room) pushHistory(msg *stanza.Stanza, at time.Time) {
	n := r.cfg.HistoryLength
	if n <= 0 {
		r.hist = r.hist[:0]
		return
	}
	if len(r.hist) >= n {
		drop := len(r.hist) - n + 1
		copy(r.hist, r.hist[drop:])
		r.hist = r.hist[:len(r.hist)-drop]
	}
	r.hist = append(r.hist, histItem{msg: msg, at: at, size: len(msg.Raw)})
}

// recipients returns every session of every occupant: the fan-out snapshot, taken under mu.
func (r *room) recipients(buf []*session) []*session {
	for _, o := range r.occ {
		buf = append(buf, o.sess...)
	}
	return buf
}

func (r *room) encodeConfig() []byte {
	b, _ := json.Marshal(r.cfg)
	return b
}
