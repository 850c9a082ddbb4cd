package push

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"encoding/xml"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/form"
	"parley.im/parley/xmpp/stanza"
)

const (
	nsPubsub    = "http://jabber.org/protocol/pubsub"
	formSummary = "urn:xmpp:push:summary"

	maxBody = 1024 // bytes of last-message-body: platform push payloads are small (APNs: 4 KiB in all)

	// responseTimeout is how long the id of a notification is kept to match the app server's answer.
	responseTimeout = 2 * time.Minute
	// maxPending bounds those ids; past it answers are not matched (registrations then stay enabled).
	maxPending = 10000
)

// summary is what a notification says (the urn:xmpp:push:summary form of XEP-0357 section 7).
type summary struct {
	count  int    // messages since the account was last seen live, this one included
	sender string // bare JID of the last message's sender
	body   string // the last message's body
}

// eligibleType reports whether a message of this type may be worth a notification: normal and chat messages.
// Groupchat messages are not: without mention detection every room message would wake the phone. Headlines
// and errors never are.
func eligibleType(typ string) bool { return typ == "" || typ == "normal" || typ == "chat" }

// summarize decides whether a message is worth waking a device, and what to say about it: it is if it has a
// non-empty body or an encrypted payload (OMEMO with a payload, OpenPGP for XMPP, legacy PGP); chat states,
// receipts, markers and OMEMO key transport alone are not; carbon copies are not looked into. A message with a
// XEP-0334 no-store hint to an account with no session is not, since offline storage drops it: there would be
// nothing to fetch; to a hibernating session it is, since the session keeps it.
func summarize(s *stanza.Stanza, undeliverable bool) (summary, bool) {
	if s.Kind != stanza.Message || !eligibleType(s.Type) {
		return summary{}, false
	}
	var n summary
	important, noStore := false, false
	eachChild(s.Payload(), func(local, ns string, raw []byte) {
		switch {
		case local == "body" && (ns == "" || ns == "jabber:client" || ns == "jabber:server"):
			if n.body == "" {
				if t := text(raw); strings.TrimSpace(t) != "" {
					n.body, important = t, true
				}
			}
		case local == "encrypted" && bytes.Contains(raw, []byte("<payload")),
			local == "openpgp" && ns == "urn:xmpp:openpgp:0",
			local == "x" && ns == "jabber:x:encrypted":
			important = true
		case local == "no-store" && ns == "urn:xmpp:hints":
			noStore = true
		}
	})
	if !important || (undeliverable && noStore) {
		return summary{}, false
	}
	if !s.From.Equal(jid.JID{}) {
		n.sender = s.From.Bare().String()
	}
	n.body = truncate(n.body, maxBody)
	return n, true
}

// eachChild calls fn for each child element of inner.
func eachChild(inner []byte, fn func(local, ns string, raw []byte)) {
	for {
		local, ns, raw, ok := stanza.FirstChild(inner)
		if !ok || len(raw) == 0 {
			return
		}
		fn(local, ns, raw)
		// raw is a subslice of inner, so the capacities tell where it ends within inner.
		inner = inner[cap(inner)-cap(raw)+len(raw):]
	}
}

// text returns the character data of an element, entities and CDATA decoded.
func text(raw []byte) string {
	var v struct {
		Text string `xml:",chardata"`
	}
	if xml.Unmarshal(raw, &v) != nil {
		return ""
	}
	return v.Text
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// regKey names a registration within an account.
type regKey struct{ jid, node string }

// throttleState is the MinInterval bookkeeping of one registration.
type throttleState struct {
	last  time.Time    // when the last notification went out
	timer timer        // set while a coalesced notification waits for the interval to end
	due   *summary     // what that notification will say: the latest message
	reg   Registration // where it goes
}

// pendingPublish is a notification sent and not yet answered.
type pendingPublish struct {
	owner jid.JID
	reg   regKey
	sent  time.Time
}

// dispatch sends a notification to one registration at once, or, within MinInterval of the last one, folds it
// into a notification sent when the interval ends.
func (m *Module) dispatch(ctx context.Context, owner jid.JID, r Registration, n summary) {
	if m.cfg.MinInterval < 0 {
		m.publish(ctx, owner, r, n)
		return
	}
	o, k := owner.String(), regKey{r.JID, r.Node}
	now := m.clock.Now()
	m.mu.Lock()
	regs := m.throttle[o]
	if regs == nil {
		regs = make(map[regKey]*throttleState)
		m.throttle[o] = regs
	}
	st := regs[k]
	if st == nil || (st.timer == nil && now.Sub(st.last) >= m.cfg.MinInterval) {
		// The first message after a quiet period is announced at once.
		if st == nil {
			st = &throttleState{}
			regs[k] = st
		}
		st.last = now
		m.mu.Unlock()
		m.publish(ctx, owner, r, n)
		return
	}
	st.due, st.reg = &n, r
	if st.timer == nil {
		st.timer = m.clock.AfterFunc(st.last.Add(m.cfg.MinInterval).Sub(now), func() { m.flush(owner, k, st) })
	}
	m.mu.Unlock()
	m.Coalesced.Add(1)
}

// flush sends the coalesced notification of a registration when its interval ends, with the count as it is
// then, unless the user came back meanwhile.
func (m *Module) flush(owner jid.JID, k regKey, st *throttleState) {
	o := owner.String()
	m.mu.Lock()
	if m.throttle[o][k] != st || st.due == nil {
		// Disabled, or stopped at shutdown, since the timer was set.
		m.mu.Unlock()
		return
	}
	n, r := *st.due, st.reg
	st.due, st.timer = nil, nil
	c := m.counts[o]
	if c == nil {
		m.mu.Unlock()
		return // seen live since: the messages were read
	}
	n.count = c.n
	st.last = m.clock.Now()
	m.mu.Unlock()
	if r.Resource != "" && m.liveResources(owner)[r.Resource] {
		return
	}
	m.publish(context.Background(), owner, r, n)
}

// forget drops the throttle state of a registration (it was disabled).
func (m *Module) forget(owner jid.JID, k regKey) {
	o := owner.String()
	m.mu.Lock()
	defer m.mu.Unlock()
	regs := m.throttle[o]
	if st := regs[k]; st != nil {
		if st.timer != nil {
			st.timer.Stop()
		}
		delete(regs, k)
		if len(regs) == 0 {
			delete(m.throttle, o)
		}
	}
}

// publish sends one notification from the user's bare JID (XEP-0357 section 7) through the router.
func (m *Module) publish(ctx context.Context, owner jid.JID, r Registration, n summary) {
	to, err := jid.Parse(r.JID)
	if err != nil {
		m.log.Error("push registration has a bad jid", "owner", owner.String(), "jid", r.JID, "err", err)
		return
	}
	id := newID()
	m.mu.Lock()
	if len(m.pending) < maxPending {
		m.pending[id] = pendingPublish{owner: owner, reg: regKey{r.JID, r.Node}, sent: m.clock.Now()}
	}
	m.mu.Unlock()
	m.router.Route(ctx, stanza.New(stanza.IQ, "set", id, owner, to, m.notification(r, n)))
	m.Published.Add(1)
	m.log.Debug("push notification published", "owner", owner.String(), "jid", r.JID, "node", r.Node, "count", n.count)
}

// notification builds the <pubsub/> payload of a notification.
func (m *Module) notification(r Registration, n summary) []byte {
	b := make([]byte, 0, 512+len(n.body)+len(r.Options))
	b = append(b, "<pubsub xmlns='"+nsPubsub+"'><publish node='"...)
	b = stanza.AppendEscape(b, r.Node)
	b = append(b, "'><item><notification xmlns='"+NS+"'>"...)
	// The fields live in an array on the stack: building a notification allocates only its bytes.
	var fields [4]form.Field
	fields[0] = form.Field{Var: form.FormType, Values: []string{formSummary}}
	fields[1] = form.Field{Var: "message-count", Values: []string{strconv.Itoa(n.count)}}
	f := form.Form{Type: form.TypeSubmit, Fields: fields[:2]}
	if *m.cfg.IncludeSender && n.sender != "" {
		f.Fields = append(f.Fields, form.Field{Var: "last-message-sender", Values: []string{n.sender}})
	}
	if m.cfg.IncludeBody && n.body != "" {
		f.Fields = append(f.Fields, form.Field{Var: "last-message-body", Values: []string{n.body}})
	}
	b = f.Append(b)
	b = append(b, "</notification></item></publish>"...)
	if r.Options != "" {
		// Serialized by publishOptions from the enable request.
		b = append(b, "<publish-options>"...)
		b = append(b, r.Options...)
		b = append(b, "</publish-options>"...)
	}
	return append(b, "</pubsub>"...)
}

// HandleResponse takes an IQ result or error addressed to a local account and reports whether it answered a
// notification of this module. An error disables the registration it was for (XEP-0357 section 7.1), unless it
// is temporary (type wait) or the registration was enabled again after the notification went out.
func (m *Module) HandleResponse(ctx context.Context, s *stanza.Stanza) bool {
	if s.Kind != stanza.IQ || (s.Type != "result" && s.Type != "error") {
		return false
	}
	m.mu.Lock()
	p, ok := m.pending[s.ID]
	if ok && (!s.To.Bare().Equal(p.owner) || (s.From.String() != p.reg.jid && s.From.Bare().String() != p.reg.jid)) {
		ok = false // not from the app server it went to: a guess, or a coincidence
	}
	if ok {
		delete(m.pending, s.ID)
	}
	m.mu.Unlock()
	if !ok {
		return false
	}
	if s.Type == "result" {
		return true
	}
	typ, cond := errorOf(s.Payload())
	log := m.log.With("owner", p.owner.String(), "jid", p.reg.jid, "node", p.reg.node, "condition", cond)
	if typ == "wait" {
		log.Info("push app server reports a temporary error")
		return true
	}
	r := Registration{JID: p.reg.jid, Node: p.reg.node}
	v, err := m.kv.Value(ctx, p.owner.String(), r.key())
	if errors.Is(err, storage.ErrNotFound) {
		return true
	}
	if err == nil && json.Unmarshal(v, &r) == nil && r.Enabled.After(p.sent) {
		return true
	}
	if err := m.remove(ctx, p.owner, r); err != nil {
		log.Error("disabling a failing push registration failed", "err", err)
		return true
	}
	m.Failed.Add(1)
	log.Info("push registration disabled: its app server answered with an error")
	return true
}

// errorOf returns the type and condition of the <error/> child of an error stanza's payload.
func errorOf(payload []byte) (typ, cond string) {
	eachChild(payload, func(local, _ string, raw []byte) {
		if local != "error" || typ != "" {
			return
		}
		var e struct {
			Type  string `xml:"type,attr"`
			Conds []struct {
				XMLName xml.Name
			} `xml:",any"`
		}
		if xml.Unmarshal(raw, &e) != nil {
			return
		}
		typ = e.Type
		for _, c := range e.Conds {
			if c.XMLName.Space == stanza.NSStanzas && c.XMLName.Local != "text" {
				cond = c.XMLName.Local
				break
			}
		}
	})
	return typ, cond
}

// newID returns an unguessable stanza id, so that only the app server can answer a notification.
func newID() string {
	var b [10]byte
	rand.Read(b[:])
	return "push-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
