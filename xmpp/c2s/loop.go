package c2s

import (
	"bytes"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/stanza"
	"parley.im/parley/xmpp/stream"
	"parley.im/parley/xmpp/transport"
)

// This file is the stanza loop of a bound session: reading (parking while idle), keepalive pings, holding
// writes for a burst, and stamping and routing what the client sends.

// next returns the next element from the client, or transport.ErrParked when the session has parked (see
// transport.Parker): the loop then goes on in resumeParked.
func (c *conn) next() (*stream.Element, error) { return c.park.Next(c.rd) }

// resumeParked goes on with the stanza loop of a parked connection.
func (c *conn) resumeParked() {
	err := c.loop()
	if err == transport.ErrParked {
		return
	}
	c.end(err)
	c.gone()
}

// wakeClosed resumes the loop of a parked connection whose socket the server closed, so that it ends.
func (c *conn) wakeClosed() { c.park.Wake() }

// startKeepalive arms the idle timer: after PingInterval without traffic the server pings (XEP-0199); after a
// further PingTimeout without traffic it closes the stream.
func (c *conn) startKeepalive() {
	c.lastActivity.Store(time.Now().UnixNano())
	c.timer = time.AfterFunc(c.srv.cfg.PingInterval, c.onIdle)
}

func (c *conn) onIdle() {
	idle := time.Duration(time.Now().UnixNano() - c.lastActivity.Load())
	if idle < c.srv.cfg.PingInterval && !c.pingSent.Load() {
		c.timer.Reset(c.srv.cfg.PingInterval - idle)
		return
	}
	if c.pingSent.Load() {
		if idle >= c.srv.cfg.PingInterval+c.srv.cfg.PingTimeout-time.Millisecond || idle >= c.srv.cfg.PingTimeout {
			c.closeStream("connection-timeout", "no answer to ping")
			return
		}
		c.timer.Reset(c.srv.cfg.PingTimeout - idle)
		return
	}
	c.pingSent.Store(true)
	ping := stanza.New(stanza.IQ, "get", "ping-"+randomID(4), c.srv.domain, c.jid, []byte("<ping xmlns='"+nsPing+"'/>"))
	c.out.Push(ping.Raw) // not counted by stream management: the server answers the result itself
	c.timer.Reset(c.srv.cfg.PingTimeout)
}

// holdWrites starts a burst: writers this connection's reader starts, its own and those of the sessions it
// routes to, wait for releaseWrites.
func (c *conn) holdWrites() {
	c.out.Hold()
	c.batch.Hold()
}

func (c *conn) releaseWrites() {
	c.batch.Release()
	c.out.Release()
}

// loop is the stanza loop of a bound session.
func (c *conn) loop() error {
	for {
		// While the stanzas already read are handled, what they make this connection send waits (Queue.Hold),
		// and goes out in one write before the reader waits for more: a MAM page, the presences of a login or
		// a burst of messages to one contact is one TLS record, not one per stanza.
		el, ok, err := c.rd.TryNext()
		if err == nil && !ok {
			c.releaseWrites()
			el, err = c.next()
		}
		if err != nil {
			c.releaseWrites()
			return err
		}
		now := time.Now()
		c.lastActivity.Store(now.UnixNano())
		c.pingSent.Store(false)
		c.srv.Stats.BytesIn.Add(uint64(len(el.Raw)))
		if d := c.rate.take(len(el.Raw), now); d > 0 {
			c.releaseWrites()
			time.Sleep(d)
		}
		c.holdWrites()
		if el.NS == nsSM {
			if err := c.handleSM(el); err != nil {
				return err
			}
			continue
		}
		if el.NS == nsCSI && (el.Local == "active" || el.Local == "inactive") {
			c.sess.setActive(el.Local == "active")
			continue
		}
		kind := stanza.KindOf(el.Local)
		if kind == 0 || el.NS != nsClient {
			return &streamError{"unsupported-stanza-type", ""}
		}
		c.srv.Stats.StanzasIn.Add(1)
		if err := c.handleStanza(kind, el); err != nil {
			return err
		}
		// Counted once handled: the router has routed it and whatever makes it durable has committed, so an
		// <a/> carrying this count promises only what is true (DESIGN.md: durable before acknowledged).
		c.hIn.Add(1)
	}
}

func (c *conn) handleStanza(kind stanza.Kind, el *stream.Element) error {
	if len(el.From) > 0 && string(el.From) != c.jid.String() {
		from, err := jid.Parse(string(el.From))
		if err != nil || !(from.Equal(c.jid) || from.Equal(c.jid.Bare())) {
			return &streamError{"invalid-from", "from does not match the bound JID"}
		}
	}
	st := c.stamp(kind, el)
	if len(el.To) > 0 {
		if !bytes.Equal(el.To, c.lastToRaw) {
			to, err := jid.Parse(string(el.To))
			if err != nil {
				c.sess.Send(stanza.ErrorReply(st, jid.JID{}, stanza.ErrJIDMalformed))
				return nil
			}
			c.lastToRaw = append(c.lastToRaw[:0], el.To...)
			c.lastTo = to
		}
		st.To = c.lastTo
	}
	if kind == stanza.IQ && st.Type == "set" && len(el.To) == 0 {
		// RFC 3921 session establishment, still sent by older clients: a no-op that must succeed.
		if local, ns, _, ok := stanza.FirstChild(st.Payload()); ok && local == "session" && ns == nsSession {
			c.sess.Send(stanza.Result(st, nil))
			return nil
		}
	}
	c.srv.router.RouteFrom(c.ctx, c.origin, st)
	c.sess.pending.flush() // the stanza's copies in every archive commit as one unit
	return nil
}

// stamp copies the element with from set to the session's full JID (RFC 6120 8.1.2.1) and namespace
// declarations it inherited from the stream header added, so that the bytes stand on their own.
func (c *conn) stamp(kind stanza.Kind, el *stream.Element) *stanza.Stanza {
	raw := el.Raw
	extra := len(c.fromAttr)
	for _, d := range el.Inherited {
		extra += len(d.Prefix) + len(d.URI) + 10
	}
	out := make([]byte, 0, len(raw)+extra)
	out = append(out, raw[:el.NameEnd]...)
	out = append(out, c.fromAttr...)
	for _, d := range el.Inherited {
		out = append(out, " xmlns:"...)
		out = append(out, d.Prefix...)
		out = append(out, "='"...)
		out = stanza.AppendEscape(out, d.URI)
		out = append(out, '\'')
	}
	delta := len(out) - el.NameEnd
	if fs := el.FromSpan; fs[0] >= 0 {
		out = append(out, raw[el.NameEnd:fs[0]]...)
		out = append(out, raw[fs[1]:]...)
		delta -= fs[1] - fs[0]
	} else {
		out = append(out, raw[el.NameEnd:]...)
	}
	return &stanza.Stanza{
		Kind:       kind,
		Type:       internType(el.Type),
		ID:         string(el.ID),
		From:       c.jid,
		Raw:        out,
		InnerStart: el.InnerStart + delta,
		InnerEnd:   el.InnerEnd + delta,
	}
}

// internType returns the type attribute as a string without allocating for the values RFC 6120/6121 define.
func internType(b []byte) string {
	switch string(b) {
	case "":
		return ""
	case "chat":
		return "chat"
	case "normal":
		return "normal"
	case "groupchat":
		return "groupchat"
	case "headline":
		return "headline"
	case "error":
		return "error"
	case "get":
		return "get"
	case "set":
		return "set"
	case "result":
		return "result"
	case "unavailable":
		return "unavailable"
	case "subscribe":
		return "subscribe"
	case "subscribed":
		return "subscribed"
	case "unsubscribe":
		return "unsubscribe"
	case "unsubscribed":
		return "unsubscribed"
	case "probe":
		return "probe"
	}
	return string(b)
}
