package c2s

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/auth"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
	"parley.im/parley/xmpp/stream"
)

// This file is Extensible SASL Profile (XEP-0388, SASL2) with what may be inlined in its <authenticate/>:
// Bind 2 (XEP-0386) with stream management enable (XEP-0198), carbons (XEP-0280) and CSI (XEP-0352), stream
// resumption (XEP-0198 inside SASL2), and FAST tokens (XEP-0484, fast.go). A client that uses all of it logs
// in, binds and resumes in one round trip after the stream header, and without a stream restart.

const (
	nsSASL2   = "urn:xmpp:sasl:2"
	nsBind2   = "urn:xmpp:bind:0"
	nsFAST    = "urn:xmpp:fast:0"
	nsCarbons = "urn:xmpp:carbons:2"
)

// appendSASL2Feature appends the <authentication/> stream feature: the same mechanisms as <mechanisms/>, and
// what may be inlined.
func (c *conn) appendSASL2Feature(b []byte, mechs []string) []byte {
	b = append(b, "<authentication xmlns='"+nsSASL2+"'>"...)
	for _, m := range mechs {
		b = append(b, "<mechanism>"...)
		b = append(b, m...)
		b = append(b, "</mechanism>"...)
	}
	b = append(b, "<inline><bind xmlns='"+nsBind2+"'><inline>"...)
	if c.srv.carbonsOn {
		b = append(b, "<feature var='"+nsCarbons+"'/>"...)
	}
	b = append(b, "<feature var='"+nsCSI+"'/><feature var='"+nsSM+"'/></inline></bind><sm xmlns='"+nsSM+"'/>"...)
	if fm := c.fastMechanisms(); len(fm) > 0 {
		b = append(b, "<fast xmlns='"+nsFAST+"'>"...)
		for _, m := range fm {
			b = append(b, "<mechanism>"...)
			b = append(b, m...)
			b = append(b, "</mechanism>"...)
		}
		b = append(b, "</fast>"...)
	}
	return append(b, "</inline></authentication>"...)
}

// authenticate2 is a parsed <authenticate xmlns='urn:xmpp:sasl:2'/>.
type authenticate2 struct {
	Mechanism string  `xml:"mechanism,attr"`
	Initial   *string `xml:"initial-response"`
	UserAgent *struct {
		ID       string `xml:"id,attr"`
		Software string `xml:"software"`
		Device   string `xml:"device"`
	} `xml:"user-agent"`
	Bind *struct {
		Tag      string     `xml:"tag"`
		Enable   *smElement `xml:"urn:xmpp:sm:3 enable"`
		Carbons  *struct{}  `xml:"urn:xmpp:carbons:2 enable"`
		Active   *struct{}  `xml:"urn:xmpp:csi:0 active"`
		Inactive *struct{}  `xml:"urn:xmpp:csi:0 inactive"`
	} `xml:"urn:xmpp:bind:0 bind"`
	Resume       *smElement `xml:"urn:xmpp:sm:3 resume"`
	RequestToken *struct {
		Mechanism string `xml:"mechanism,attr"`
	} `xml:"urn:xmpp:fast:0 request-token"`
	Fast *struct {
		Count      string `xml:"count,attr"`
		Invalidate string `xml:"invalidate,attr"`
	} `xml:"urn:xmpp:fast:0 fast"`
}

func sasl2Failure(cond, text string) []byte {
	b := []byte("<failure xmlns='" + nsSASL2 + "'><" + cond + " xmlns='" + nsSASL + "'/>")
	if text != "" {
		b = append(b, "<text>"...)
		b = stanza.AppendEscape(b, text)
		b = append(b, "</text>"...)
	}
	return append(b, "</failure>"...)
}

// deviceID is the client's stable user-agent id, bounded so that it can serve as a key.
func (a *authenticate2) deviceID() string {
	if a.UserAgent == nil || len(a.UserAgent.ID) > 256 {
		return ""
	}
	return strings.TrimSpace(a.UserAgent.ID)
}

// negotiateSASL2 runs one SASL2 authentication begun by el. It returns done when the client is authenticated
// (and then bound or resumed if it asked to be); an error ends the stream. A failed exchange returns neither:
// the client may try again on the same stream.
func (c *conn) negotiateSASL2(el *stream.Element) (done bool, err error) {
	var a authenticate2
	if err := xml.Unmarshal(el.Raw, &a); err != nil {
		c.send(sasl2Failure(auth.CondMalformedRequest, ""))
		return false, nil
	}
	var initial []byte
	if a.Initial != nil {
		d := strings.TrimSpace(*a.Initial)
		if d == "=" {
			d = ""
		}
		initial, err = base64.StdEncoding.DecodeString(d)
		if err != nil {
			c.send(sasl2Failure(auth.CondIncorrectEncoding, ""))
			return false, nil
		}
	}
	device := a.deviceID()

	var user string
	var additional []byte
	if strings.HasPrefix(a.Mechanism, "HT-") {
		// FAST: the token is the whole exchange, in the initial response.
		user, additional, err = c.fastVerify(a.Mechanism, device, initial)
		if err = c.gate2(user, err); err != nil {
			return c.sasl2Failed(err)
		}
	} else {
		ex, err := c.srv.auth.StartStream(c.ctx, c.saslStream, a.Mechanism, c.cb, c.secure(), initial)
		if err != nil {
			return c.sasl2Failed(err)
		}
		in := initial
		for {
			out, fin, err := ex.Step(c.ctx, in)
			if err == nil && !fin {
				c.send([]byte("<challenge xmlns='" + nsSASL2 + "'>" + base64.StdEncoding.EncodeToString(out) + "</challenge>"))
				resp, aborted, err := c.sasl2Response()
				if err != nil {
					return false, err
				}
				if aborted {
					c.send(sasl2Failure(auth.CondAborted, ""))
					return false, nil
				}
				in = resp
				continue
			}
			if err = c.gate(ex, err); err != nil {
				return c.sasl2Failed(err)
			}
			user, additional = ex.Username(), out
			break
		}
	}
	c.authenticated(user)
	return true, c.sasl2Success(&a, device, user, additional)
}

// sasl2Response reads the client's next <response/> (or <abort/>) during an exchange.
func (c *conn) sasl2Response() (resp []byte, aborted bool, err error) {
	el, err := c.rd.Next()
	if err != nil {
		return nil, false, err
	}
	switch {
	case el.NS == nsSASL2 && el.Local == "response":
		resp, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(el.Raw[el.InnerStart:el.InnerEnd])))
		if err != nil {
			return nil, true, nil
		}
		return resp, false, nil
	case el.NS == nsSASL2 && el.Local == "abort":
		return nil, true, nil
	}
	return nil, false, &streamError{"policy-violation", "a SASL2 exchange is under way"}
}

// sasl2Failed tells the client its exchange failed and counts the failure.
func (c *conn) sasl2Failed(err error) (bool, error) {
	text := ""
	if th, ok := err.(*throttledError); ok {
		text = th.text()
	}
	c.send(sasl2Failure(auth.Condition(err), text))
	if c.authFailed(err) {
		return false, &streamError{"policy-violation", "too many failed authentication attempts"}
	}
	return false, nil
}

// gate2 is gate for FAST, whose outcome is known without an auth.Exchange.
func (c *conn) gate2(user string, err error) error {
	if err != nil && !auth.CredentialFailed(err) {
		return err
	}
	var ue interface{ AttemptedUser() string }
	if user == "" && errors.As(err, &ue) {
		user = ue.AttemptedUser()
	}
	delay, refuse := c.srv.throttle.verdict(user, c.ipKey, time.Now())
	if refuse {
		c.log.Warn("authentication refused by the failed-login throttle", "user", user, "ip", c.ip)
		return &throttledError{user: user}
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	return err
}

// sasl2Success completes a successful SASL2 authentication: FAST token, resumption or Bind 2 as the client
// asked, and the <success/> that carries their outcomes. The stream is not restarted (XEP-0388 section 2.6.3).
func (c *conn) sasl2Success(a *authenticate2, device, user string, additional []byte) error {
	var inner []byte
	if len(additional) > 0 {
		inner = append(inner, "<additional-data>"...)
		inner = base64.StdEncoding.AppendEncode(inner, additional)
		inner = append(inner, "</additional-data>"...)
	}
	token := c.fastAfterSuccess(a, device, user)
	bare := user + "@" + c.srv.domain.Domainpart()
	success := func(aid string, extra []byte) []byte {
		b := []byte("<success xmlns='" + nsSASL2 + "'>")
		b = append(b, inner...)
		b = append(b, "<authorization-identifier>"...)
		b = stanza.AppendEscape(b, aid)
		b = append(b, "</authorization-identifier>"...)
		b = append(b, token...)
		b = append(b, extra...)
		return append(b, "</success>"...)
	}

	var resumeFailed []byte
	if a.Resume != nil {
		var ok bool
		var err error
		ok, resumeFailed, err = c.resumeWith(*a.Resume, func(resumed []byte) []byte {
			return success(c.jid.String(), resumed)
		})
		if err != nil {
			return err
		}
		if ok {
			return nil // <success/> with <resumed/> went out, and the replayed stanzas after it
		}
	}
	if a.Bind == nil {
		// Authenticated only: the client gets the post-authentication features on the same stream.
		c.send(success(bare, resumeFailed))
		c.sasl2NoRestart = true
		return nil
	}
	return c.bind2(a, device, user, resumeFailed, success)
}

// bind2Resource derives the resource of a Bind 2 request: the client's tag, then a part that is stable per
// device (a hash of the account and user-agent id), so that a device that reconnects gets its resource back
// and replaces its stale session, while two devices never collide (XEP-0386 section 4).
func bind2Resource(tag, user, device string) string {
	tag = strings.Map(func(r rune) rune {
		if r < 0x20 || r == '/' || r == '@' {
			return -1
		}
		return r
	}, tag)
	if len(tag) > 64 {
		tag = tag[:64]
	}
	if tag == "" {
		tag = "parley"
	}
	if device == "" {
		return tag + "." + randomID(6)
	}
	h := sha256.Sum256([]byte(user + "\x00" + device))
	return tag + "." + hex.EncodeToString(h[:6])
}

// bind2 binds a resource as Bind 2 asks, with its inline stream management, carbons and CSI, and sends the
// <success/> with <bound/>.
func (c *conn) bind2(a *authenticate2, device, user string, resumeFailed []byte, success func(string, []byte) []byte) error {
	res := bind2Resource(a.Bind.Tag, user, device)
	full, err := jid.New(user, c.srv.domain.Domainpart(), res)
	if err != nil {
		full, err = jid.New(user, c.srv.domain.Domainpart(), "parley."+randomID(6))
		if err != nil {
			return &streamError{"internal-server-error", "cannot form a JID"}
		}
	}
	s := &session{srv: c.srv, id: c.id, jid: full, conn: c}
	c.attach(s, new(atomic.Uint32))
	bound := []byte("<bound xmlns='" + nsBind2 + "'>")
	var resumeID string
	if e := a.Bind.Enable; e != nil {
		s.mu.Lock()
		s.sm.enabled = true
		s.sm.resumable = e.Resume == "true" || e.Resume == "1"
		resp := "<enabled xmlns='" + nsSM + "'"
		if s.sm.resumable {
			s.sm.id = randomID(16)
			resumeID = s.sm.id
			resp += " id='" + s.sm.id + "' resume='true' max='" + strconv.Itoa(int(c.srv.cfg.ResumeTimeout.Seconds())) + "'"
		}
		s.mu.Unlock()
		bound = append(bound, resp+"/>"...)
	}
	bound = append(bound, "</bound>"...)
	if a.Bind.Inactive != nil {
		s.setActive(false)
	}
	c.send(success(full.String(), append(resumeFailed, bound...)))
	if a.Bind.Carbons != nil && c.srv.carbonsOn {
		c.enableCarbons()
	}
	c.srv.router.Notify(c.ctx, module.Bound, c.sess)
	if old := c.srv.router.Bind(c.sess); old != nil {
		old.Close("conflict", "replaced by a new connection with the same resource")
	}
	if resumeID != "" {
		c.srv.keepResumable(resumeID, s)
	}
	c.bound.Store(true)
	c.log.Info("resource bound (bind 2)", "ip", c.ip, "sm", a.Bind.Enable != nil, "carbons", a.Bind.Carbons != nil)
	return nil
}

// enableCarbons enables XEP-0280 for the new session as its <enable/> IQ would, through the carbons module.
func (c *conn) enableCarbons() {
	payload := []byte("<enable xmlns='" + nsCarbons + "'/>")
	st := stanza.New(stanza.IQ, "set", "bind2-carbons", c.jid, jid.JID{}, payload)
	local, ns, p, _ := stanza.FirstChild(st.Payload())
	reply := c.srv.router.HandleIQ(c.ctx, module.Account, &module.IQ{Stanza: st, Origin: c.origin, Local: local, NS: ns, Payload: p, RemoteAddr: c.ip})
	if reply != nil && reply.Type == "error" {
		c.log.Warn("bind 2: enabling carbons failed", "reply", string(reply.Raw))
	}
}
