package push

import (
	"encoding/binary"
	"hash/maphash"
	"time"

	"parley.im/parley/xmpp/stanza"
)

// A message is pushed at most once per registration. It can reach the module twice: announced in the Inbound
// stage because the session it goes to hibernates (XEP-0198), it stays among that session's unacknowledged
// stanzas, and when the session ends without being resumed (c2s.resume_timeout, or a shutdown) it is routed
// again and reaches the Undeliverable stage, or another hibernating session, as if it were new. The device
// was woken for it the first time; a second notification would count it twice.
//
// So the module remembers, for Config.Redelivery plus a minute, which registrations each message announced to
// a hibernating session was announced to (only those can come back: what the Undeliverable stage announced
// is in offline storage, which delivers it without the message stages). A message is known by a hash of what is the same on both passes: from, to, id, type and its
// child elements except XEP-0359 stanza-ids (the archive stamps the message again on the second pass). Two
// different messages look the same only if they also have the same id (clients give every message its own) and
// the same payload, sent to the same account within that time. Each entry is two 64-bit words; at most
// maxAnnounced are kept, the oldest dropped first.

// maxAnnounced bounds the remembered announcements (16 bytes each in the ring, about as much in the map).
const maxAnnounced = 1 << 17

// announcements is the memory of recent announcements, guarded by Module.mu.
type announcements struct {
	seed  maphash.Seed
	keep  time.Duration
	at    map[uint64]time.Time
	order []announcement // oldest first from head: insertion order is time order
	head  int
}

type announcement struct {
	key uint64
	at  time.Time
}

func newAnnouncements(keep time.Duration) *announcements {
	return &announcements{seed: maphash.MakeSeed(), keep: keep, at: make(map[uint64]time.Time)}
}

// messageKey identifies a message across the passes described above.
func (a *announcements) messageKey(s *stanza.Stanza) uint64 {
	var h maphash.Hash
	h.SetSeed(a.seed)
	for _, v := range []string{s.From.String(), s.To.String(), s.ID, s.Type} {
		h.WriteString(v)
		h.WriteByte(0)
	}
	stanza.Children(s.Payload(), func(local, ns string, raw []byte) bool {
		if local != "stanza-id" || ns != "urn:xmpp:sid:0" {
			h.Write(raw)
		}
		return true
	})
	return h.Sum64()
}

// first reports whether msg was not yet announced to registration r of owner; with remember it records that
// it is now.
func (a *announcements) first(msg uint64, owner string, r regKey, now time.Time, remember bool) bool {
	var h maphash.Hash
	h.SetSeed(a.seed)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], msg)
	h.Write(b[:])
	for _, v := range []string{owner, r.jid, r.node} {
		h.WriteString(v)
		h.WriteByte(0)
	}
	k := h.Sum64()
	if t, ok := a.at[k]; ok && now.Sub(t) < a.keep {
		return false
	}
	if !remember {
		return true
	}
	for len(a.at) >= maxAnnounced {
		a.pop()
	}
	a.at[k] = now
	a.order = append(a.order, announcement{k, now})
	return true
}

// pop forgets the oldest announcement.
func (a *announcements) pop() {
	e := a.order[a.head]
	a.order[a.head] = announcement{}
	a.head++
	if a.at[e.key] == e.at {
		delete(a.at, e.key) // else announced again since, and that later entry is in order too
	}
	if a.head > len(a.order)/2 {
		a.order = append(a.order[:0], a.order[a.head:]...)
		a.head = 0
	}
}

// expire forgets the announcements older than keep.
func (a *announcements) expire(now time.Time) {
	for a.head < len(a.order) && now.Sub(a.order[a.head].at) >= a.keep {
		a.pop()
	}
}
