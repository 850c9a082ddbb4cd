package main

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/sasl"

	"parley.im/parley/xmpp/sock"
)

// client holds what every session of a run shares: where to connect, how to log in.
type client struct {
	server       string
	domain       string
	prefix       string
	password     string
	sources      []net.IP
	nextSource   atomic.Uint64
	tls          bool
	tlsVerify    bool
	mech         sasl.Mechanism
	resource     string
	loginTimeout time.Duration
	readBuf      int
	maxStanza    int
}

// Namespaces the login speaks.
const (
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind     = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession  = "urn:ietf:params:xml:ns:xmpp-session"
	nsRegister = "jabber:iq:register"
	nsMUC      = "http://jabber.org/protocol/muc"
)

// mechanisms the -mech flag accepts: mellium.im/sasl's client implementations.
var mechanisms = map[string]sasl.Mechanism{
	"PLAIN":              sasl.Plain,
	"SCRAM-SHA-1":        sasl.ScramSha1,
	"SCRAM-SHA-1-PLUS":   sasl.ScramSha1Plus,
	"SCRAM-SHA-256":      sasl.ScramSha256,
	"SCRAM-SHA-256-PLUS": sasl.ScramSha256Plus,
}

// user returns the localpart of benchmark user i.
func (c *client) user(i int) string { return c.prefix + strconv.Itoa(i) }

// bare returns the bare JID of benchmark user i.
func (c *client) bare(i int) string { return c.user(i) + "@" + c.domain }

// session is one logged-in client connection. After login only its reader goroutine reads; writers
// (the pacer, the reader answering a ping) take wmu for each whole stanza.
type session struct {
	idx     int
	user    string
	jid     string // full JID as bound
	conn    net.Conn
	rd      *streamReader
	wmu     sync.Mutex
	closing atomic.Bool
	// presenceSent is when the initial presence went out (offline drain latency counts from it).
	presenceSent time.Time
}

// write sends one preformatted stanza (or several) as one write.
func (s *session) write(b []byte) error {
	s.wmu.Lock()
	_, err := s.conn.Write(b)
	s.wmu.Unlock()
	return err
}

// close ends the stream politely and closes the connection; the reader goroutine sees EOF or the close.
func (s *session) close() {
	if s.closing.Swap(true) {
		return
	}
	s.wmu.Lock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, _ = s.conn.Write([]byte("</stream:stream>"))
	s.wmu.Unlock()
	_ = s.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
}

// dial opens a TCP connection from the next -sources address (round robin), if any.
func (c *client) dial() (net.Conn, error) {
	d := net.Dialer{Timeout: c.loginTimeout}
	if len(c.sources) > 0 {
		ip := c.sources[c.nextSource.Add(1)%uint64(len(c.sources))]
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	conn, err := d.Dial("tcp", c.server)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		// Stanzas are written whole; no need to wait for more.
		_ = tc.SetNoDelay(true)
	}
	// Reads and writes without the runtime's blocking-syscall bookkeeping, as the server does: less of the
	// generator's CPU per message, so that the machine it shares with the server is less its limit. A write
	// that has to wait gets the login timeout (deadlines set here apply to reads only, see sock.Conn).
	return sock.Wrap(conn, c.loginTimeout), nil
}

// features is the part of <stream:features/> the login needs.
type features struct {
	StartTLS *struct {
		Required *struct{} `xml:"required"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	Mechanisms []string  `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
	Bind       *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
	Session    *struct {
		Optional *struct{} `xml:"optional"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-session session"`
	Register *struct{} `xml:"http://jabber.org/features/iq-register register"`
}

// errorCondition returns the name of the first child of an error element (stream error, SASL failure,
// stanza <error/>) that is not <text/>, for reporting.
func errorCondition(el []byte) string {
	var e struct {
		Inner []struct {
			XMLName xml.Name
		} `xml:",any"`
		Error *struct {
			Inner []struct {
				XMLName xml.Name
			} `xml:",any"`
		} `xml:"error"`
	}
	if err := xml.Unmarshal(el, &e); err != nil {
		return "unparsable"
	}
	list := e.Inner
	if e.Error != nil {
		list = e.Error.Inner
	}
	for _, c := range list {
		if c.XMLName.Local != "text" && c.XMLName.Local != "error" {
			return c.XMLName.Local
		}
	}
	return "unknown"
}

// openStream sends a stream header and reads the server's header and features.
func (s *session) openStream(domain string) (features, error) {
	var f features
	hdr := "<?xml version='1.0'?><stream:stream to='" + domain +
		"' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	if _, err := s.conn.Write([]byte(hdr)); err != nil {
		return f, fmt.Errorf("stream: %w", err)
	}
	kind, _, err := s.rd.next()
	if err != nil {
		return f, fmt.Errorf("stream: %w", err)
	}
	if kind != evOpen {
		return f, errors.New("stream: no stream header")
	}
	el, err := s.expect("features")
	if err != nil {
		return f, err
	}
	if err := xml.Unmarshal(el, &f); err != nil {
		return f, fmt.Errorf("stream: features: %w", err)
	}
	return f, nil
}

// expect reads the next top-level element and checks its local name; a stream error becomes an error.
func (s *session) expect(local ...string) ([]byte, error) {
	kind, el, err := s.rd.next()
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	if kind == evClose {
		return nil, errors.New("stream: closed by server")
	}
	name := localName(elemName(el))
	if string(name) == "error" {
		return nil, fmt.Errorf("stream error: %s", errorCondition(el))
	}
	for _, l := range local {
		if string(name) == l {
			return el, nil
		}
	}
	return nil, fmt.Errorf("stream: expected %v, got <%s>", local, elemName(el))
}

func localName(qname []byte) []byte {
	if i := bytes.IndexByte(qname, ':'); i >= 0 {
		return qname[i+1:]
	}
	return qname
}

// connect dials and negotiates up to (and including) STARTTLS, returning the features of the stream
// that follows.
func (c *client) connect(idx int, deadline time.Time) (*session, features, error) {
	conn, err := c.dial()
	if err != nil {
		return nil, features{}, err
	}
	_ = conn.SetDeadline(deadline)
	s := &session{idx: idx, user: c.user(idx), conn: conn, rd: newStreamReader(conn, c.readBuf, c.maxStanza)}
	f, err := s.openStream(c.domain)
	if err == nil && c.tls {
		f, err = s.startTLS(c)
	}
	if err != nil {
		conn.Close()
		return nil, features{}, err
	}
	return s, f, nil
}

func (s *session) startTLS(c *client) (features, error) {
	if _, err := s.conn.Write([]byte("<starttls xmlns='" + nsTLS + "'/>")); err != nil {
		return features{}, fmt.Errorf("tls: %w", err)
	}
	if _, err := s.expect("proceed"); err != nil {
		return features{}, fmt.Errorf("tls: %w", err)
	}
	tc := tls.Client(s.conn, &tls.Config{
		ServerName: c.domain,
		// Benchmark peers use throwaway self-signed certificates; -tls-verify checks them anyway.
		InsecureSkipVerify: !c.tlsVerify, //nolint:gosec // benchmark against local peers
		// Classic ECDHE only: Go would otherwise also compute a post-quantum key share on every handshake
		// that the peers (OpenSSL 3.0) cannot use, which is generator CPU spent on nothing.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
	})
	if err := tc.Handshake(); err != nil {
		return features{}, fmt.Errorf("tls: %w", err)
	}
	s.conn = tc
	s.rd.reset(tc)
	return s.openStream(c.domain)
}

// login runs the whole client login: TCP, STARTTLS, SASL, bind, session (when the server requires it)
// and initial presence, and waits for the server to echo that presence back (RFC 6121 4.2.2), which is
// where the login latency ends. Stanzas that arrive before the echo (offline messages) go to onStanza.
func (c *client) login(idx int, onStanza func(*session, []byte)) (*session, time.Duration, error) {
	t0 := time.Now()
	deadline := t0.Add(c.loginTimeout)
	s, f, err := c.connect(idx, deadline)
	if err != nil {
		return nil, 0, err
	}
	fail := func(err error) (*session, time.Duration, error) {
		s.conn.Close()
		return nil, 0, err
	}
	if f, err = s.authenticate(c, f); err != nil {
		return fail(err)
	}
	if err := s.bind(c, f); err != nil {
		return fail(err)
	}
	s.presenceSent = time.Now()
	if err := s.write([]byte("<presence/>")); err != nil {
		return fail(fmt.Errorf("presence: %w", err))
	}
	for {
		kind, el, err := s.rd.next()
		if err != nil {
			return fail(fmt.Errorf("presence: %w", err))
		}
		if kind == evClose {
			return fail(errors.New("presence: stream closed by server"))
		}
		if string(elemName(el)) == "presence" && string(attr(el, "from")) == s.jid {
			break
		}
		if string(localName(elemName(el))) == "error" {
			return fail(fmt.Errorf("stream error: %s", errorCondition(el)))
		}
		if onStanza != nil {
			onStanza(s, el)
		}
	}
	_ = s.conn.SetDeadline(time.Time{})
	return s, time.Since(t0), nil
}

func (s *session) authenticate(c *client, f features) (features, error) {
	offered := false
	for _, m := range f.Mechanisms {
		if m == c.mech.Name {
			offered = true
		}
	}
	if !offered {
		return f, fmt.Errorf("auth: %s not offered (server offers %v)", c.mech.Name, f.Mechanisms)
	}
	opts := []sasl.Option{
		sasl.Credentials(func() ([]byte, []byte, []byte) {
			return []byte(s.user), []byte(c.password), nil
		}),
		sasl.RemoteMechanisms(f.Mechanisms...),
	}
	if tc, ok := s.conn.(*tls.Conn); ok {
		opts = append(opts, sasl.TLSState(tc.ConnectionState()))
	}
	neg := sasl.NewClient(c.mech, opts...)
	_, resp, err := neg.Step(nil)
	if err != nil {
		return f, fmt.Errorf("auth: %w", err)
	}
	msg := "<auth xmlns='" + nsSASL + "' mechanism='" + c.mech.Name + "'>" + b64(resp) + "</auth>"
	if _, err := s.conn.Write([]byte(msg)); err != nil {
		return f, fmt.Errorf("auth: %w", err)
	}
	for {
		el, err := s.expect("challenge", "success", "failure")
		if err != nil {
			return f, fmt.Errorf("auth: %w", err)
		}
		switch string(localName(elemName(el))) {
		case "failure":
			return f, fmt.Errorf("auth: %s", errorCondition(el))
		case "challenge":
			data, err := unb64(el)
			if err != nil {
				return f, fmt.Errorf("auth: %w", err)
			}
			_, resp, err := neg.Step(data)
			if err != nil {
				return f, fmt.Errorf("auth: %w", err)
			}
			if _, err := s.conn.Write([]byte("<response xmlns='" + nsSASL + "'>" + b64(resp) + "</response>")); err != nil {
				return f, fmt.Errorf("auth: %w", err)
			}
		case "success":
			data, err := unb64(el)
			if err != nil {
				return f, fmt.Errorf("auth: %w", err)
			}
			// SCRAM's server-final message rides in <success/>: checking it authenticates the server.
			if len(data) > 0 {
				if _, _, err := neg.Step(data); err != nil {
					return f, fmt.Errorf("auth: server signature: %w", err)
				}
			}
			s.rd.reset(s.conn)
			return s.openStream(c.domain)
		}
	}
}

func (s *session) bind(c *client, f features) error {
	if f.Bind == nil {
		return errors.New("bind: not offered")
	}
	res := c.resource + strconv.Itoa(s.idx)
	if _, err := s.conn.Write([]byte("<iq type='set' id='bind1'><bind xmlns='" + nsBind + "'><resource>" +
		res + "</resource></bind></iq>")); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	el, err := s.expect("iq")
	if err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if string(attr(el, "type")) != "result" {
		return fmt.Errorf("bind: %s", errorCondition(el))
	}
	s.jid = string(childText(el, tagJID))
	if s.jid == "" {
		return errors.New("bind: no jid in result")
	}
	// RFC 6121 dropped session establishment; servers that still list it without <optional/> get it.
	if f.Session != nil && f.Session.Optional == nil {
		if _, err := s.conn.Write([]byte("<iq type='set' id='sess1'><session xmlns='" + nsSession + "'/></iq>")); err != nil {
			return fmt.Errorf("session: %w", err)
		}
		el, err := s.expect("iq")
		if err != nil {
			return fmt.Errorf("session: %w", err)
		}
		if string(attr(el, "type")) != "result" {
			return fmt.Errorf("session: %s", errorCondition(el))
		}
	}
	return nil
}

var tagJID = tagPat("jid")

func b64(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// unb64 decodes the base64 text content of a SASL element ("=" means empty).
func unb64(el []byte) ([]byte, error) {
	end, closed, ok := tagEnd(el, 0)
	if !ok || closed {
		return nil, nil
	}
	i := bytes.LastIndex(el, []byte("</"))
	if i < end {
		return nil, nil
	}
	text := bytes.TrimSpace(el[end:i])
	if len(text) == 0 || string(text) == "=" {
		return nil, nil
	}
	return base64.StdEncoding.DecodeString(string(text))
}

// register creates account idx with XEP-0077 in-band registration; an existing account ("conflict")
// counts as success so that runs can repeat.
func (c *client) register(idx int) error {
	s, _, err := c.connect(idx, time.Now().Add(c.loginTimeout))
	if err != nil {
		return err
	}
	defer s.conn.Close()
	msg := "<iq type='set' id='reg1'><query xmlns='" + nsRegister + "'><username>" + s.user +
		"</username><password>" + xmlEscape(c.password) + "</password></query></iq>"
	if _, err := s.conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	el, err := s.expect("iq")
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	if string(attr(el, "type")) != "result" {
		if cond := errorCondition(el); cond != "conflict" {
			return fmt.Errorf("register: %s", cond)
		}
	}
	_, _ = s.conn.Write([]byte("</stream:stream>"))
	return nil
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// runReader is a session's only reader after login: it hands every top-level element to handle until
// the stream ends, answers server pings (XEP-0199) so that a server that pings does not drop idle
// sessions, and reports an unexpected end through dropped.
func (s *session) runReader(handle func(*session, []byte), dropped func(*session, error)) {
	defer s.conn.Close()
	for {
		kind, el, err := s.rd.next()
		if err == nil && kind == evClose {
			err = errors.New("stream closed by server")
		}
		if err != nil {
			if !s.closing.Load() && dropped != nil {
				dropped(s, err)
			}
			return
		}
		name := elemName(el)
		if string(name) == "iq" && string(attr(el, "type")) == "get" && bytes.Contains(el, []byte("urn:xmpp:ping")) {
			id := attr(el, "id")
			from := attr(el, "from")
			reply := "<iq type='result' id='" + string(id) + "'"
			if len(from) > 0 {
				reply += " to='" + string(from) + "'"
			}
			_ = s.write([]byte(reply + "/>"))
			continue
		}
		if handle != nil {
			handle(s, el)
		}
	}
}
