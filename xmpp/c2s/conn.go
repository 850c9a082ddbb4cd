package c2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/auth"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
	"parley.im/parley/xmpp/stream"
	"parley.im/parley/xmpp/transport"
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
	ipKey     string // addrKey(ip): what the per-address limits count under
	directTLS bool
	log       *slog.Logger
	ctx       context.Context
	origin    module.Origin // of the stanzas of the bound session (set by attach)

	rd      *stream.Reader
	park    transport.Parker // parks the reader of a bound session while its client is idle
	batch   transport.Batch  // writers started while the reader handles a burst (holdWrites)
	tlsConn *tls.Conn
	// external is set when the transport was secured before the stream started (WebSocket over HTTPS, or a
	// trusted TLS-terminating proxy): no STARTTLS, no channel binding.
	external bool
	// noSTARTTLS is set for transports that cannot upgrade (WebSocket): STARTTLS is neither offered nor required.
	noSTARTTLS bool
	cb         *auth.ChannelBindings
	saslStream *auth.Stream // what this stream's SASL offered and saw (auth.Stream)
	// sasl2NoRestart is set when SASL2 authenticated without binding: the post-authentication features follow
	// on the same stream, without a new header (XEP-0388).
	sasl2NoRestart bool
	user           string // authenticated localpart
	jid            jid.JID
	fromAttr       []byte // ` from='full-jid'`, stamped on every stanza the client sends
	lang           string

	bound        atomic.Bool
	serverClosed atomic.Bool // the server ended the stream (stream error, conflict, shutdown): no hibernation
	headerSent   bool
	authAttempts int
	refusals     int
	out          transport.Queue
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
		c.park.Init(c.nc, c.resumeParked)
		c.out.SetRoom(transport.SendRoom(c.park.Raw))
		if err = c.loop(); err == transport.ErrParked {
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
	c.out.Finish(nil)
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
	b = transport.AppendStreamError(b, cond, text)
	b = append(b, "</stream:stream>"...)
	c.log.Info("stream error", "condition", cond, "text", text)
	c.out.Finish(b)
}

// closeStream ends the session from another goroutine (conflict, shutdown, slow consumer, keepalive timeout).
func (c *conn) closeStream(cond, text string) {
	c.serverClosed.Store(true)
	if cond != "" {
		c.srv.Stats.StreamErrors.Add(1)
		c.log.Info("closing session", "condition", cond, "text", text)
	}
	c.out.CloseStream(cond, text)
}

// send queues bytes for the client. Before binding only the read goroutine sends, so order is kept.
func (c *conn) send(b []byte) bool { return c.out.Push(b) }

// sendSync queues b and waits until the queue has been written (STARTTLS: <proceed/> must be on the wire in
// plaintext before the handshake starts).
func (c *conn) sendSync(b []byte) error {
	c.send(b)
	if err := c.out.Flush(c.srv.cfg.WriteTimeout); err != nil {
		return fmt.Errorf("c2s: %w", err)
	}
	return nil
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
		if c.bound.Load() {
			return nil // SASL2 bound (Bind 2) or resumed inline
		}
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
			if c.sasl2NoRestart {
				c.sasl2NoRestart = false
				c.send(append(append([]byte("<stream:features>"), feat...), "</stream:features>"...))
			} else if err := c.openStream(feat); err != nil {
				return err
			}
			return c.negotiateBind()
		}
	}
}

// refuse answers a connection we will not serve with a stream error and closes it.
func refuse(nc net.Conn, domain, cond, text string) {
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	b := []byte("<?xml version='1.0'?><stream:stream xmlns='" + nsClient + "' xmlns:stream='" + nsStream + "' id='" +
		randomID(8) + "' from='" + domain + "' version='1.0'>")
	b = transport.AppendStreamError(b, cond, text)
	b = append(b, "</stream:stream>"...)
	nc.Write(b)
	nc.Close()
}
