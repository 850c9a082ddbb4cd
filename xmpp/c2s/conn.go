package c2s

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/auth"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
	"parley.im/parley/xmpp/stream"
)

const (
	nsClient   = "jabber:client"
	nsStream   = "http://etherx.jabber.org/streams"
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsStreams  = "urn:ietf:params:xml:ns:xmpp-streams"
	nsRegister = "jabber:iq:register"
	nsSASLCB   = "urn:xmpp:sasl-cb:0"
	nsPing     = "urn:xmpp:ping"
	nsSM       = "urn:xmpp:sm:3"
	nsCSI      = "urn:xmpp:csi:0"

	// maxAuthAttempts is how many wrong passwords one connection may try before it is closed.
	maxAuthAttempts = 3
	// maxRefusals is how many exchanges refused for other reasons (mechanism, channel binding, malformed
	// messages) one connection may make: enough for a client to try every mechanism we offer.
	maxRefusals = 10
)

// conn is one client connection. Only its read goroutine touches the negotiation fields.
type conn struct {
	srv       *Server
	nc        net.Conn // raw TCP connection; closing it ends everything
	rw        net.Conn // what is read and written: nc, or the TLS connection over it
	ip, id    string
	directTLS bool
	log       *slog.Logger
	ctx       context.Context
	origin    module.Origin // of the stanzas of the bound session (set by attach)

	rd     *stream.Reader
	raw    syscall.RawConn // the TCP socket, for waiting without reading (nil: read as usual)
	parkFD int32           // the socket's descriptor + 1 while parked in the poller (guarded by its lock)
	// readDeadline is the read deadline set for parking (zero: none); only the loop's goroutine uses it.
	readDeadline time.Time
	batch        batch // writers started while the reader handles a burst (holdWrites)
	tlsConn      *tls.Conn
	// external is set when the transport was secured before the stream started (WebSocket over HTTPS, or a
	// trusted TLS-terminating proxy): no STARTTLS, no channel binding.
	external bool
	// noSTARTTLS is set for transports that cannot upgrade (WebSocket): STARTTLS is neither offered nor required.
	noSTARTTLS bool
	cb         *auth.ChannelBindings
	user       string // authenticated localpart
	jid        jid.JID
	fromAttr   []byte // ` from='full-jid'`, stamped on every stanza the client sends
	lang       string

	bound        atomic.Bool
	serverClosed atomic.Bool // the server ended the stream (stream error, conflict, shutdown): no hibernation
	headerSent   bool
	authAttempts int
	refusals     int
	out          outq
	sess         *session
	hIn          *atomic.Uint32 // the session's XEP-0198 inbound count, shared with whoever resumes it
	rate         bucket

	lastActivity atomic.Int64
	pingSent     atomic.Bool
	timer        *time.Timer

	// one-entry cache of the last to attribute: a client usually talks to one peer at a time, and parsing a JID
	// with PRECIS costs more than the rest of routing.
	lastToRaw []byte
	lastTo    jid.JID
}

// secure reports whether the stream is encrypted.
func (c *conn) secure() bool { return c.tlsConn != nil || c.external }

// streamError is returned by negotiation steps to end the stream with a condition.
type streamError struct{ cond, text string }

func (e *streamError) Error() string { return "stream error: " + e.cond + " " + e.text }

func (c *conn) serve() {
	c.ctx = context.Background()
	c.rw = c.nc
	c.srv.Stats.Connections.Add(1)
	c.nc.SetDeadline(time.Now().Add(c.srv.cfg.NegotiationTimeout))
	if c.directTLS {
		if err := c.handshake(nil); err != nil {
			c.log.Debug("direct tls handshake failed", "err", err)
			c.nc.Close()
			c.gone()
			return
		}
	}
	c.rd = stream.NewReader(c.rw, stream.Limits{MaxElement: c.srv.cfg.MaxStanza})
	err := c.negotiate()
	if err == nil {
		c.nc.SetDeadline(time.Time{})
		c.startKeepalive()
		c.raw = parkable(c.nc)
		room := sendRoom(c.raw)
		c.out.mu.Lock()
		c.out.room = room
		c.out.mu.Unlock()
		if err = c.loop(); err == errParked {
			return // the loop goes on in unpark
		}
	}
	c.end(err)
	c.gone()
}

// gone forgets the connection once its stream has ended.
func (c *conn) gone() {
	c.srv.forget(c)
	c.srv.Stats.Connections.Add(-1)
}

// errParked is returned by loop when it has handed the connection to unpark.
var errParked = errors.New("c2s: parked")

// Parking. A goroutine blocked in a TLS read keeps the stack it grew while it negotiated TLS, SASL and handled
// stanzas (4 to 8 KiB or more), and the read buffer it reads into: most of an idle session's memory. So a bound
// session's read waits at most parkAfter for the client; when that passes with nothing buffered, the loop gives
// the scanner's buffer back (stream.Reader.Park), registers the socket with the process's poller (one epoll set
// and one goroutine for all parked sessions, park_linux.go) and its goroutine returns. When the socket becomes
// readable the poller starts a new goroutine that runs the loop (resumeParked). A busy session never parks. A TLS read
// that times out keeps what it has of a record, so nothing is lost, and TLS holds no complete record then (it
// would have returned it). Where the poller is unavailable a goroutine waits for the socket without reading
// (MSG_PEEK); a connection that cannot be waited on that way (WebSocket) reads as before.

// parkAfter is how long a session's reader waits for its client before parking.
const parkAfter = time.Second

// next returns the next element from the client, or errParked.
func (c *conn) next() (*stream.Element, error) {
	if c.raw == nil {
		return c.rd.Next()
	}
	if c.rd.Buffered() == 0 {
		// The deadline moves only when it is less than half of parkAfter away (a timer change per stanza
		// was 2% of the CPU per chat message): a session parks after between half of parkAfter and parkAfter
		// without input.
		if dl := time.Now().Add(parkAfter); dl.Sub(c.readDeadline) > parkAfter/2 {
			c.nc.SetReadDeadline(dl)
			c.readDeadline = dl
		}
	} // else the deadline of an earlier call may pass while the rest of this element arrives: handled below
	el, err := c.rd.Next()
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return el, err
	}
	c.nc.SetReadDeadline(time.Time{})
	c.readDeadline = time.Time{}
	if c.rd.Buffered() > 0 {
		return c.rd.Next() // part of an element came: the rest is on its way
	}
	c.rd.Park()
	if p := parkPoller(); p == nil || !p.park(c) {
		go c.unpark()
	}
	return nil, errParked
}

// unpark waits for the client to send more and goes on with the stanza loop.
func (c *conn) unpark() {
	waitReadable(c.raw) // an error shows at the next read
	c.resumeParked()
}

// resumeParked goes on with the stanza loop of a parked connection.
func (c *conn) resumeParked() {
	err := c.loop()
	if err == errParked {
		return
	}
	c.end(err)
	c.gone()
}

// wakeClosed resumes the loop of a parked connection whose socket the server closed, so that it ends.
func (c *conn) wakeClosed() {
	if p := parkPoller(); p != nil {
		p.wake(c)
	}
}

// end reports err to the client as a stream error where one applies and tears the session down.
func (c *conn) end(err error) {
	if c.timer != nil {
		c.timer.Stop()
	}
	var se *streamError
	var pe *stream.Error
	switch {
	case err == nil, errors.Is(err, io.EOF):
		c.send([]byte("</stream:stream>"))
	case errors.As(err, &se):
		c.streamError(se.cond, se.text)
	case errors.As(err, &pe):
		c.streamError(pe.Condition, "")
	case isTimeout(err) && !c.bound.Load():
		c.streamError("connection-timeout", "negotiation took too long")
	default:
		c.log.Debug("connection ended", "err", err)
	}
	if c.bound.Load() {
		// A connection that broke under a resumable session leaves it hibernating; any other end ends it.
		broken := err != nil && !errors.Is(err, io.EOF) && !c.serverClosed.Load()
		var se2 *streamError
		var pe2 *stream.Error
		if errors.As(err, &se2) || errors.As(err, &pe2) {
			broken = false
		}
		c.sess.mu.Lock()
		mine, resumable := c.sess.conn == c, c.sess.sm.resumable
		c.sess.mu.Unlock()
		switch {
		case !mine:
			// Resumed on another connection: the session is not ours to end.
		case broken && resumable:
			c.sess.hibernate(c)
		default:
			c.sess.terminate()
		}
	}
	c.out.finish(nil)
	// Give the writer a moment to flush the last bytes, then make sure the socket is gone.
	time.AfterFunc(c.srv.cfg.WriteTimeout, func() { c.nc.Close() })
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// streamError sends a stream error and the close tag, opening the stream first if the header has not been sent
// (RFC 6120 4.9.1.2).
func (c *conn) streamError(cond, text string) {
	c.serverClosed.Store(true)
	c.srv.Stats.StreamErrors.Add(1)
	var b []byte
	if !c.headerSent {
		b = c.appendHeader(b, "")
	}
	b = appendStreamError(b, cond, text)
	b = append(b, "</stream:stream>"...)
	c.log.Info("stream error", "condition", cond, "text", text)
	c.out.finish(b)
}

func appendStreamError(b []byte, cond, text string) []byte {
	b = append(b, "<stream:error><"...)
	b = append(b, cond...)
	b = append(b, " xmlns='"+nsStreams+"'/>"...)
	if text != "" {
		b = append(b, "<text xmlns='"+nsStreams+"'>"...)
		b = stanza.AppendEscape(b, text)
		b = append(b, "</text>"...)
	}
	return append(b, "</stream:error>"...)
}

// closeStream ends the session from another goroutine (conflict, shutdown, slow consumer, keepalive timeout).
func (c *conn) closeStream(cond, text string) {
	c.serverClosed.Store(true)
	if cond == "" {
		c.out.finish([]byte("</stream:stream>"))
		return
	}
	c.srv.Stats.StreamErrors.Add(1)
	c.log.Info("closing session", "condition", cond, "text", text)
	c.out.finish(append(appendStreamError(nil, cond, text), "</stream:stream>"...))
}

// send queues bytes for the client. Before binding only the read goroutine sends, so order is kept.
func (c *conn) send(b []byte) bool { return c.out.push(b) }

// sendSync queues b and waits until the queue has been written (STARTTLS: <proceed/> must be on the wire in
// plaintext before the handshake starts).
func (c *conn) sendSync(b []byte) error {
	c.send(b)
	deadline := time.Now().Add(c.srv.cfg.WriteTimeout)
	for {
		c.out.mu.Lock()
		idle, closed := !c.out.writing, c.out.closed
		c.out.mu.Unlock()
		if closed {
			return errClosed
		}
		if idle {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("c2s: write timed out")
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func (c *conn) appendHeader(b []byte, id string) []byte {
	if id == "" {
		id = randomID(12)
	}
	b = append(b, "<?xml version='1.0'?><stream:stream xmlns='"+nsClient+"' xmlns:stream='"+nsStream+"' id='"...)
	b = append(b, id...)
	b = append(b, "' from='"...)
	b = stanza.AppendEscape(b, c.srv.domain.String())
	b = append(b, "' version='1.0' xml:lang='"...)
	lang := c.lang
	if lang == "" {
		lang = "en"
	}
	b = stanza.AppendEscape(b, lang)
	b = append(b, "'>"...)
	c.headerSent = true
	return b
}

func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// openStream reads the client's stream header and answers it with ours and the features.
func (c *conn) openStream(features []byte) error {
	h, err := c.rd.Header()
	if err != nil {
		return err
	}
	c.lang = h.Lang
	if len(c.lang) > 35 {
		c.lang = ""
	}
	var b []byte
	b = c.appendHeader(b, "")
	switch {
	case h.NS != nsClient:
		return &streamError{"invalid-namespace", "this port serves jabber:client streams"}
	case !equalDomain(h.To, c.srv.domain):
		return &streamError{"host-unknown", "this server does not serve that domain"}
	case h.Version != "1.0" && h.Version != "":
		if v := h.Version; len(v) < 2 || v[0] != '1' {
			return &streamError{"unsupported-version", "only XMPP 1.0 streams are supported"}
		}
	}
	b = append(b, "<stream:features>"...)
	b = append(b, features...)
	b = append(b, "</stream:features>"...)
	c.send(b)
	return nil
}

func equalDomain(to string, domain jid.JID) bool {
	if to == domain.String() {
		return true
	}
	j, err := jid.Parse(to)
	return err == nil && j.Equal(domain)
}

// negotiate runs TLS, SASL and resource binding. It returns nil once a resource is bound.
func (c *conn) negotiate() error {
	for {
		tlsActive := c.secure()
		switch {
		case !tlsActive && c.srv.tls != nil && !c.srv.cfg.AllowPlaintext && !c.external && !c.noSTARTTLS:
			if err := c.openStream([]byte("<starttls xmlns='" + nsTLS + "'><required/></starttls>")); err != nil {
				return err
			}
			if err := c.negotiateTLS(); err != nil {
				return err
			}
		case c.user == "":
			feat := c.saslFeatures()
			if err := c.openStream(feat); err != nil {
				return err
			}
			if err := c.negotiateSASL(); err != nil {
				return err
			}
		default:
			var feat []byte
			feat = append(feat, "<bind xmlns='"+nsBind+"'/><session xmlns='"+nsSession+"'><optional/></session><sm xmlns='"+nsSM+"'/><csi xmlns='"+nsCSI+"'/>"...)
			feat = append(feat, c.srv.features...)
			if err := c.openStream(feat); err != nil {
				return err
			}
			return c.negotiateBind()
		}
	}
}

func (c *conn) saslFeatures() []byte {
	var b []byte
	tlsActive := c.secure()
	if !tlsActive && c.srv.tls != nil && !c.external && !c.noSTARTTLS {
		b = append(b, "<starttls xmlns='"+nsTLS+"'/>"...)
	}
	b = append(b, "<mechanisms xmlns='"+nsSASL+"'>"...)
	for _, m := range c.srv.auth.Mechanisms(c.cb, tlsActive) {
		b = append(b, "<mechanism>"...)
		b = append(b, m...)
		b = append(b, "</mechanism>"...)
	}
	b = append(b, "</mechanisms>"...)
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

func (c *conn) negotiateTLS() error {
	for {
		el, err := c.rd.Next()
		if err != nil {
			return err
		}
		switch {
		case el.Local == "starttls" && el.NS == nsTLS:
			return c.startTLS()
		case el.Local == "auth" && el.NS == nsSASL:
			c.send([]byte("<failure xmlns='" + nsSASL + "'><encryption-required/></failure>"))
		case c.isRegisterIQ(el):
			return &streamError{"policy-violation", "negotiate TLS first"}
		case stanza.KindOf(el.Local) != 0 && el.NS == nsClient:
			return &streamError{"not-authorized", "negotiate TLS and authenticate first"}
		default:
			return &streamError{"policy-violation", "TLS is required on this server"}
		}
	}
}

// startTLS answers <starttls/> and negotiates TLS; the stream then restarts.
func (c *conn) startTLS() error {
	if err := c.sendSync([]byte("<proceed xmlns='" + nsTLS + "'/>")); err != nil {
		return err
	}
	if err := c.handshake(nil); err != nil {
		return err
	}
	// SetSource refuses bytes other than whitespace sent after <starttls/> and before the handshake: they
	// would be trusted as if they had come over TLS (the STARTTLS command injection attack).
	if err := c.rd.SetSource(c.rw); err != nil {
		return err
	}
	c.rd.Restart()
	return nil
}

// handshake runs the server side of TLS on the raw connection and installs it as the stream's transport.
func (c *conn) handshake(_ []byte) error {
	cfg := c.srv.tls
	if c.directTLS {
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"xmpp-client"} // XEP-0368
	}
	tc := tls.Server(c.nc, cfg)
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.NegotiationTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	c.tlsConn, c.rw = tc, tc
	c.out.mu.Lock()
	c.out.conn = tc
	c.out.mu.Unlock()
	c.cb = auth.NewChannelBindings(tc.ConnectionState(), c.srv.leafDER)
	return nil
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
			if c.srv.ipFails.blocked(c.ip, time.Now()) {
				c.log.Warn("authentication throttled", "ip", c.ip)
				c.send([]byte("<failure xmlns='" + nsSASL + "'><temporary-auth-failure/><text>too many failed attempts; try again later</text></failure>"))
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
			ex, err = c.srv.auth.Start(c.ctx, a.Mechanism, c.cb, c.secure(), initial)
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
	if err != nil {
		cond := auth.Condition(err)
		c.send([]byte("<failure xmlns='" + nsSASL + "'><" + cond + "/></failure>"))
		return false, err
	}
	if !done {
		c.send([]byte("<challenge xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString(out) + "</challenge>"))
		return false, nil
	}
	user := ex.Username()
	if c.srv.acctFails.blocked(user, time.Now()) {
		// The account is under a password-guessing attack: refuse even a correct password for the window.
		c.log.Warn("authentication throttled for account", "user", user, "ip", c.ip)
		c.send([]byte("<failure xmlns='" + nsSASL + "'><temporary-auth-failure/><text>too many failed attempts; try again later</text></failure>"))
		return false, errors.New("c2s: account throttled")
	}
	succ := "<success xmlns='" + nsSASL + "'/>"
	if len(out) > 0 {
		succ = "<success xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString(out) + "</success>"
	}
	c.send([]byte(succ))
	c.user = user
	c.srv.Stats.AuthSuccesses.Add(1)
	c.log.Info("authenticated", "user", user, "ip", c.ip, "tls", c.secure())
	c.rd.Restart()
	return true, nil
}

// authFailed records a failed exchange and reports whether the connection has used up its attempts. Only
// failed password or proof checks count: a client that walks down the mechanism list (slixmpp tries every
// -PLUS mechanism with a channel binding we do not offer before falling back) is not guessing passwords.
func (c *conn) authFailed(err error) bool {
	now := time.Now()
	c.srv.Stats.AuthFailures.Add(1)
	if !auth.CredentialFailed(err) {
		c.log.Info("authentication refused", "ip", c.ip, "err", err)
		c.refusals++
		return c.refusals >= maxRefusals
	}
	c.srv.ipFails.fail(c.ip, now)
	var ue interface{ AttemptedUser() string }
	if errors.As(err, &ue) && ue.AttemptedUser() != "" {
		c.srv.acctFails.fail(ue.AttemptedUser(), now)
	}
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

type bindIQ struct {
	Type string `xml:"type,attr"`
	ID   string `xml:"id,attr"`
	Bind *struct {
		Resource string `xml:"resource"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
	Session *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-session session"`
}

func (c *conn) negotiateBind() error {
	for {
		el, err := c.rd.Next()
		if err != nil {
			return err
		}
		if el.NS == nsSM {
			switch el.Local {
			case "resume":
				ok, err := c.resume(el)
				if err != nil {
					return err
				}
				if ok {
					return nil
				}
			case "enable":
				c.send([]byte("<failed xmlns='" + nsSM + "'><unexpected-request xmlns='" + stanza.NSStanzas + "'/></failed>"))
			case "r", "a":
				// Nothing to acknowledge before a session exists.
			default:
				return &streamError{"unsupported-stanza-type", ""}
			}
			continue
		}
		if el.Local != "iq" || el.NS != nsClient {
			if stanza.KindOf(el.Local) != 0 && el.NS == nsClient {
				return &streamError{"not-authorized", "bind a resource first"}
			}
			return &streamError{"unsupported-stanza-type", ""}
		}
		var iq bindIQ
		if err := xml.Unmarshal(el.Raw, &iq); err != nil || iq.Type != "set" || iq.Bind == nil {
			if iq.Session != nil {
				return &streamError{"not-authorized", "bind a resource before establishing a session"}
			}
			c.send(iqError(iq.ID, "bad-request", "bind a resource first"))
			continue
		}
		res := iq.Bind.Resource
		if res == "" {
			res = "parley-" + randomID(6)
		}
		full, err := jid.New(c.user, c.srv.domain.Domainpart(), res)
		if err != nil {
			c.send(iqError(iq.ID, "bad-request", "invalid resource"))
			continue
		}
		if c.srv.cfg.ResourceConflict == "refuse" && c.srv.router.Session(full) != nil {
			c.send(iqError(iq.ID, "conflict", "resource in use"))
			continue
		}
		c.attach(&session{srv: c.srv, id: c.id, jid: full, conn: c}, new(atomic.Uint32))
		var b []byte
		b = append(b, "<iq type='result' id='"...)
		b = stanza.AppendEscape(b, iq.ID)
		b = append(b, "'><bind xmlns='"+nsBind+"'><jid>"...)
		b = stanza.AppendEscape(b, full.String())
		b = append(b, "</jid></bind></iq>"...)
		c.send(b)
		c.srv.router.Notify(c.ctx, module.Bound, c.sess)
		if old := c.srv.router.Bind(c.sess); old != nil {
			old.Close("conflict", "replaced by a new connection with the same resource")
		}
		c.bound.Store(true)
		c.log.Info("resource bound", "ip", c.ip)
		return nil
	}
}

func iqError(id, cond, text string) []byte {
	b := []byte("<iq type='error' id='")
	b = stanza.AppendEscape(b, id)
	b = append(b, "'>"...)
	b = stanza.AppendError(b, &stanza.Error{Condition: cond, Text: text})
	return append(b, "</iq>"...)
}

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
	c.out.push(ping.Raw) // not counted by stream management: the server answers the result itself
	c.timer.Reset(c.srv.cfg.PingTimeout)
}

// holdWrites starts a burst: writers this connection's reader starts, its own and those of the sessions it
// routes to, wait for releaseWrites.
func (c *conn) holdWrites() {
	c.out.hold()
	c.batch.hold()
}

func (c *conn) releaseWrites() {
	c.batch.release()
	c.out.release()
}

// loop is the stanza loop of a bound session.
func (c *conn) loop() error {
	for {
		// While the stanzas already read are handled, what they make this connection send waits (outq.hold),
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

// refuse answers a connection we will not serve with a stream error and closes it.
func refuse(nc net.Conn, domain, cond, text string) {
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	b := []byte("<?xml version='1.0'?><stream:stream xmlns='" + nsClient + "' xmlns:stream='" + nsStream + "' id='" +
		randomID(8) + "' from='" + domain + "' version='1.0'>")
	b = appendStreamError(b, cond, text)
	b = append(b, "</stream:stream>"...)
	nc.Write(b)
	nc.Close()
}
