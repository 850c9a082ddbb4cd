package c2s

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"time"

	"parley.im/parley/xmpp/auth"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
	"parley.im/parley/xmpp/stream"
)

// This file is the SASL phase of negotiation (RFC 6120 6) through package auth, and the in-band registration
// IQs (XEP-0077) a client may send before it authenticates.

func (c *conn) saslFeatures() []byte {
	var b []byte
	tlsActive := c.secure()
	if !tlsActive && c.srv.tls != nil && !c.external && !c.noSTARTTLS {
		b = append(b, "<starttls xmlns='"+nsTLS+"'/>"...)
	}
	b = append(b, "<mechanisms xmlns='"+nsSASL+"'>"...)
	mechs := c.srv.auth.Mechanisms(c.cb, tlsActive)
	// What this stream offers, for the gs2 "y" rule and the XEP-0474 hash (auth.Stream). A new stream (after
	// STARTTLS) starts a new record.
	c.saslStream = &auth.Stream{Mechanisms: mechs, CBTypes: c.cb.Types()}
	for _, m := range mechs {
		b = append(b, "<mechanism>"...)
		b = append(b, m...)
		b = append(b, "</mechanism>"...)
	}
	b = append(b, "</mechanisms>"...)
	b = c.appendSASL2Feature(b, mechs)
	if c.cb != nil && len(c.cb.Types()) > 0 {
		// XEP-0440: tell the client which channel-binding types it may use.
		b = append(b, "<sasl-channel-binding xmlns='"+nsSASLCB+"'>"...)
		for _, t := range c.cb.Types() {
			b = append(b, "<channel-binding type='"...)
			b = append(b, t...)
			b = append(b, "'/>"...)
		}
		b = append(b, "</sasl-channel-binding>"...)
	}
	if c.srv.registerOn {
		b = append(b, "<register xmlns='http://jabber.org/features/iq-register'/>"...)
	}
	return b
}

type saslElement struct {
	Mechanism string `xml:"mechanism,attr"`
	Data      string `xml:",chardata"`
}

func (c *conn) negotiateSASL() error {
	var ex *auth.Exchange
	fail := func(cond string) {
		c.send([]byte("<failure xmlns='" + nsSASL + "'><" + cond + "/></failure>"))
	}
	for {
		el, err := c.rd.Next()
		if err != nil {
			return err
		}
		switch {
		case el.NS == nsSASL && el.Local == "auth":
			var a saslElement
			if err := xml.Unmarshal(el.Raw, &a); err != nil {
				fail("malformed-request")
				continue
			}
			var initial []byte
			switch d := bytes.TrimSpace([]byte(a.Data)); {
			case len(d) == 0:
			case string(d) == "=":
				initial = []byte{}
			default:
				initial, err = base64.StdEncoding.DecodeString(string(d))
				if err != nil {
					fail("incorrect-encoding")
					continue
				}
			}
			ex, err = c.srv.auth.StartStream(c.ctx, c.saslStream, a.Mechanism, c.cb, c.secure(), initial)
			if err != nil {
				fail(auth.Condition(err))
				ex = nil
				continue
			}
			if done, err := c.saslStep(ex, initial); err != nil || done {
				if err != nil {
					ex = nil
					if c.authFailed(err) {
						return &streamError{"policy-violation", "too many failed authentication attempts"}
					}
					continue
				}
				return nil
			}
		case el.NS == nsSASL && el.Local == "response":
			if ex == nil {
				fail("malformed-request")
				continue
			}
			resp, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(el.Raw[el.InnerStart:el.InnerEnd])))
			if err != nil {
				ex = nil
				fail("incorrect-encoding")
				continue
			}
			done, err := c.saslStep(ex, resp)
			if err != nil {
				ex = nil
				if c.authFailed(err) {
					return &streamError{"policy-violation", "too many failed authentication attempts"}
				}
				continue
			}
			if done {
				return nil
			}
		case el.NS == nsSASL2 && el.Local == "authenticate":
			if ex != nil {
				return &streamError{"policy-violation", "SASL2 in the middle of a SASL exchange"}
			}
			done, err := c.negotiateSASL2(el)
			if err != nil || done {
				return err
			}
		case el.NS == nsSASL && el.Local == "abort":
			ex = nil
			fail("aborted")
		case el.NS == nsTLS && el.Local == "starttls":
			// Offered, optional, when c2s.allow_plaintext is set: the stream restarts over TLS and SASL is
			// offered again.
			if c.secure() || c.srv.tls == nil || c.noSTARTTLS {
				return &streamError{"policy-violation", "TLS is already negotiated or not available"}
			}
			if ex != nil {
				return &streamError{"policy-violation", "STARTTLS in the middle of authentication"}
			}
			return c.startTLS()
		case c.isRegisterIQ(el):
			if err := c.preAuthIQ(el); err != nil {
				return err
			}
		case stanza.KindOf(el.Local) != 0 && el.NS == nsClient:
			return &streamError{"not-authorized", "authenticate first"}
		default:
			return &streamError{"unsupported-stanza-type", ""}
		}
	}
}

// saslStep runs one step and answers the client. On success it restarts the stream.
func (c *conn) saslStep(ex *auth.Exchange, in []byte) (bool, error) {
	out, done, err := ex.Step(c.ctx, in)
	if err == nil && !done {
		c.send([]byte("<challenge xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString(out) + "</challenge>"))
		return false, nil
	}
	if err = c.gate(ex, err); err != nil {
		cond := auth.Condition(err)
		if th, ok := err.(*throttledError); ok {
			c.send([]byte("<failure xmlns='" + nsSASL + "'><" + cond + "/><text>" + th.text() + "</text></failure>"))
		} else {
			c.send([]byte("<failure xmlns='" + nsSASL + "'><" + cond + "/></failure>"))
		}
		return false, err
	}
	user := ex.Username()
	succ := "<success xmlns='" + nsSASL + "'/>"
	if len(out) > 0 {
		succ = "<success xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString(out) + "</success>"
	}
	c.send([]byte(succ))
	c.authenticated(user)
	c.rd.Restart()
	return true, nil
}

// authenticated records a successful login of user.
func (c *conn) authenticated(user string) {
	c.user = user
	c.srv.throttle.succeeded(user, c.ipKey)
	c.srv.Stats.AuthSuccesses.Add(1)
	c.log.Info("authenticated", "user", user, "ip", c.ip, "tls", c.secure())
}

// throttledError is an attempt refused by the throttle (authThrottle) whatever its password: its account has
// had too many failures from this address.
type throttledError struct{ user string }

func (e *throttledError) Error() string         { return "c2s: " + e.user + " throttled for this address" }
func (e *throttledError) AttemptedUser() string { return e.user }
func (e *throttledError) text() string {
	return "too many failed attempts for this account from your address; try again later"
}

// gate applies the failed-login throttle to an exchange whose outcome is known (err nil: success), before the
// client is told: it waits what the throttle says, and returns the error to answer with, a *throttledError if
// the attempt is refused. Exchanges that failed before a password or proof was checked pass untouched: they
// are no guess.
func (c *conn) gate(ex *auth.Exchange, err error) error {
	var user string
	switch {
	case err == nil:
		user = ex.Username()
	case auth.CredentialFailed(err):
		var ue interface{ AttemptedUser() string }
		if errors.As(err, &ue) {
			user = ue.AttemptedUser()
		}
	default:
		return err
	}
	delay, refuse := c.srv.throttle.verdict(user, c.ipKey, time.Now())
	if refuse {
		c.log.Warn("authentication refused by the failed-login throttle", "user", user, "ip", c.ip)
		return &throttledError{user: user}
	}
	if delay > 0 {
		c.log.Info("authentication delayed by the failed-login throttle", "user", user, "ip", c.ip, "delay", delay)
		time.Sleep(delay)
	}
	return err
}

// authFailed records a failed exchange and reports whether the connection has used up its attempts. Only
// failed password or proof checks, and attempts the throttle refused, count: a client that walks down the
// mechanism list (slixmpp tries every -PLUS mechanism with a channel binding we do not offer before falling
// back) is not guessing passwords.
func (c *conn) authFailed(err error) bool {
	c.srv.Stats.AuthFailures.Add(1)
	var th *throttledError
	if !auth.CredentialFailed(err) && !errors.As(err, &th) {
		c.log.Info("authentication refused", "ip", c.ip, "err", err)
		c.refusals++
		return c.refusals >= maxRefusals
	}
	var user string
	var ue interface{ AttemptedUser() string }
	if errors.As(err, &ue) {
		user = ue.AttemptedUser()
	}
	c.srv.throttle.fail(user, c.ipKey, time.Now())
	c.log.Info("authentication failed", "ip", c.ip, "err", err)
	c.authAttempts++
	return c.authAttempts >= maxAuthAttempts
}

func (c *conn) isRegisterIQ(el *stream.Element) bool {
	if !c.srv.registerOn || el.Local != "iq" || el.NS != nsClient {
		return false
	}
	_, ns, _, ok := stanza.FirstChild(el.Raw[el.InnerStart:el.InnerEnd])
	return ok && ns == nsRegister
}

// preAuthIQ answers an in-band registration IQ on an unauthenticated stream (XEP-0077).
func (c *conn) preAuthIQ(el *stream.Element) error {
	st := &stanza.Stanza{Kind: stanza.IQ, Type: string(el.Type), ID: string(el.ID),
		Raw: append([]byte(nil), el.Raw...), InnerStart: el.InnerStart, InnerEnd: el.InnerEnd}
	local, ns, payload, _ := stanza.FirstChild(st.Payload())
	iq := &module.IQ{Stanza: st, Local: local, NS: ns, Payload: payload, RemoteAddr: c.ip}
	if !st.IsIQRequest() {
		return nil
	}
	if reply := c.srv.router.HandleIQ(c.ctx, module.PreAuth, iq); reply != nil {
		c.send(reply.Raw)
	}
	return nil
}
