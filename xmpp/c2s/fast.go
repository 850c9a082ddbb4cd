package c2s

import (
	"time"

	"parley.im/parley/xmpp/auth"
	"parley.im/parley/xmpp/stanza"
)

// This file is FAST (XEP-0484) on top of SASL2 (sasl2.go): advertising the token mechanisms, checking a token
// (auth.Tokens), and issuing, rotating and invalidating tokens after a successful authentication.
//
// 0-RTT: a FAST token can be replayed from TLS early data, which is why XEP-0484 has the count attribute.
// Parley never accepts early data (Go's TLS server does not implement 0-RTT), so every FAST authentication
// arrives after a full handshake and the count is not needed; it is ignored.

// SetFASTTokens turns FAST on: tokens are issued and checked by t. Call it before Serve.
func (s *Server) SetFASTTokens(t *auth.Tokens) { s.fast = t }

// fastMechanisms lists the HT mechanisms offered on this connection: none without FAST or without TLS (a
// token must not cross the network in the clear).
func (c *conn) fastMechanisms() []string {
	if c.srv.fast == nil || !c.secure() {
		return nil
	}
	return c.srv.fast.Mechanisms(c.cb)
}

func (c *conn) fastOffered(mech string) bool {
	for _, m := range c.fastMechanisms() {
		if m == mech {
			return true
		}
	}
	return false
}

// fastVerify checks a FAST authentication.
func (c *conn) fastVerify(mech, device string, initial []byte) (string, []byte, error) {
	if !c.fastOffered(mech) {
		return "", nil, &auth.Error{Condition: auth.CondInvalidMechanism}
	}
	return c.srv.fast.Verify(c.ctx, mech, c.cb, device, initial)
}

// fastAfterSuccess does what the client asked of FAST in its <authenticate/>: <fast invalidate='true'/> drops
// the token it just used (a logout); <request-token mechanism/> issues a new one (the first, or a rotation),
// returned as the <token/> element for <success/>.
func (c *conn) fastAfterSuccess(a *authenticate2, device, user string) []byte {
	if c.srv.fast == nil || device == "" {
		return nil
	}
	if a.Fast != nil && (a.Fast.Invalidate == "true" || a.Fast.Invalidate == "1") {
		if err := c.srv.fast.Invalidate(c.ctx, user, device); err != nil {
			c.log.Warn("FAST: invalidating a token failed", "err", err)
		} else {
			c.log.Info("FAST token invalidated", "user", user)
		}
		return nil
	}
	if a.RequestToken == nil || !c.fastOffered(a.RequestToken.Mechanism) {
		return nil
	}
	tok, exp, err := c.srv.fast.Issue(c.ctx, user, device, a.RequestToken.Mechanism)
	if err != nil {
		c.log.Warn("FAST: issuing a token failed", "err", err)
		return nil
	}
	b := []byte("<token xmlns='" + nsFAST + "' expiry='" + exp.UTC().Format(time.RFC3339) + "' token='")
	b = stanza.AppendEscape(b, tok)
	return append(b, "'/>"...)
}
