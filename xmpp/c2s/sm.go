package c2s

import (
	"encoding/xml"
	"strconv"
	"sync/atomic"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
	"parley.im/parley/xmpp/stream"
)

// This file is XEP-0198 Stream Management: acknowledgements both ways and session resumption.

var ackRequest = []byte("<r xmlns='" + nsSM + "'/>")

// attach makes s the connection's session (a new one at bind, or a hibernating one at resumption).
func (c *conn) attach(s *session, hIn *atomic.Uint32) {
	c.sess, c.hIn = s, hIn
	s.hIn = hIn
	if s.pending == nil {
		s.pending = newPending()
	}
	// The origin of every stanza this connection routes: its writes to others join the reader's batch, and its
	// durable writes are tracked for XEP-0198 acknowledgement.
	c.origin = module.Origin{Kind: module.OriginSession, Session: s, Durability: s.pending, Batch: &c.batch}
	c.jid = s.jid
	c.fromAttr = append(stanza.AppendEscape([]byte(" from='"), s.jid.String()), '\'')
	c.log = c.log.With("jid", s.jid.String())
	c.out.AfterDrain = func() []byte {
		if s.wantAck() {
			return ackRequest
		}
		return nil
	}
}

type smElement struct {
	Resume string `xml:"resume,attr"`
	H      string `xml:"h,attr"`
	PrevID string `xml:"previd,attr"`
}

func parseH(v string) (uint32, bool) {
	n, err := strconv.ParseUint(v, 10, 32)
	return uint32(n), err == nil
}

// handleSM handles enable, r and a on a bound session.
func (c *conn) handleSM(el *stream.Element) error {
	s := c.sess
	switch el.Local {
	case "r":
		h := c.hIn.Load()
		if err := s.pending.wait(); err != nil {
			c.log.Error("a durable write failed; not acknowledging", "err", err)
			return &streamError{"internal-server-error", "storage failure"}
		}
		c.out.Push(appendAck(nil, h))
	case "a":
		var a smElement
		if err := xml.Unmarshal(el.Raw, &a); err != nil {
			return &streamError{"bad-format", "invalid <a/>"}
		}
		h, ok := parseH(a.H)
		if !ok {
			return &streamError{"bad-format", "invalid h"}
		}
		s.mu.Lock()
		enabled, sent := s.sm.enabled, s.sm.hOut
		s.mu.Unlock()
		if !enabled {
			return nil
		}
		if !s.ack(h) {
			c.serverClosed.Store(true)
			c.out.Finish([]byte("<stream:error><undefined-condition xmlns='" + nsStreams + "'/><handled-count-too-high xmlns='" +
				nsSM + "' h='" + strconv.FormatUint(uint64(h), 10) + "' send-count='" + strconv.FormatUint(uint64(sent), 10) +
				"'/></stream:error></stream:stream>"))
			return &streamError{"undefined-condition", "handled count too high"}
		}
	case "enable":
		var e smElement
		xml.Unmarshal(el.Raw, &e)
		s.mu.Lock()
		if s.sm.enabled {
			s.mu.Unlock()
			c.out.Push([]byte("<failed xmlns='" + nsSM + "'><unexpected-request xmlns='" + stanza.NSStanzas + "'/></failed>"))
			return nil
		}
		s.sm.enabled = true
		// XEP-0198 counts what the client sends from <enable/> on; stanzas it sent before are not counted.
		c.hIn.Store(0)
		s.sm.resumable = e.Resume == "true" || e.Resume == "1"
		resp := "<enabled xmlns='" + nsSM + "'"
		if s.sm.resumable {
			s.sm.id = randomID(16)
			resp += " id='" + s.sm.id + "' resume='true' max='" + strconv.Itoa(int(c.srv.cfg.ResumeTimeout.Seconds())) + "'"
		}
		resp += "/>"
		// Queued under the session lock so no stanza counted after enabling can overtake it.
		c.out.Push([]byte(resp))
		id, resumable := s.sm.id, s.sm.resumable
		s.mu.Unlock()
		if resumable {
			c.srv.keepResumable(id, s)
		}
	default:
		return &streamError{"unsupported-stanza-type", ""}
	}
	return nil
}

func appendAck(b []byte, h uint32) []byte {
	b = append(b, "<a xmlns='"+nsSM+"' h='"...)
	b = strconv.AppendUint(b, uint64(h), 10)
	return append(b, "'/>"...)
}

// resume takes over a hibernating (or still attached, half-open) session named by previd. It reports false
// when the session cannot be resumed (the client then binds a new one).
func (c *conn) resume(el *stream.Element) (bool, error) {
	var r smElement
	xml.Unmarshal(el.Raw, &r)
	ok, failure, err := c.resumeWith(r, nil)
	if failure != nil {
		c.send(failure)
	}
	return ok, err
}

// resumeWith is resume for a parsed <resume/>. wrap, if not nil, turns the <resumed/> element into what is
// sent before the replayed stanzas (SASL2 puts it in its <success/>, XEP-0388). When the session cannot be
// resumed, failure is the <failed/> element to tell the client, unsent.
func (c *conn) resumeWith(r smElement, wrap func([]byte) []byte) (ok bool, failure []byte, err error) {
	h, ok := parseH(r.H)
	failed := func(cond string) (bool, []byte, error) {
		return false, []byte("<failed xmlns='" + nsSM + "'><" + cond + " xmlns='" + stanza.NSStanzas + "'/></failed>"), nil
	}
	if !ok {
		return failed("bad-request")
	}
	s := c.srv.resumableSession(r.PrevID)
	if s == nil || s.jid.Localpart() != c.user {
		return failed("item-not-found")
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return failed("item-not-found")
	}
	old := s.conn
	if s.sm.timer != nil {
		s.sm.timer.Stop()
		s.sm.timer = nil
	}
	s.conn = c
	s.mu.Unlock()
	if old != nil {
		// The old connection is half-open (the client noticed before we did): it must not end the session.
		old.serverClosed.Store(true)
		old.nc.Close()
		old.wakeClosed()
	}
	if !s.ack(h) {
		return false, nil, &streamError{"undefined-condition", "handled count too high"}
	}
	c.attach(s, s.hIn)
	// <resumed h/> acknowledges what the old connection handled: its writes must have committed.
	if err := s.pending.wait(); err != nil {
		return false, nil, &streamError{"internal-server-error", "storage failure"}
	}
	s.mu.Lock()
	b := []byte("<resumed xmlns='" + nsSM + "' previd='" + r.PrevID + "' h='")
	b = strconv.AppendUint(b, uint64(c.hIn.Load()), 10)
	b = append(b, "'/>"...)
	if wrap != nil {
		b = wrap(b)
	}
	c.out.Push(b)
	for _, st := range s.sm.unacked {
		c.out.Push(st.Raw)
	}
	replayed := len(s.sm.unacked)
	s.mu.Unlock()
	c.bound.Store(true)
	c.log.Info("session resumed", "ip", c.ip, "replayed", replayed)
	return true, nil, nil
}
