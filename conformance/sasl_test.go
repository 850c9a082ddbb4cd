package conformance

// SASL (RFC 6120 section 6) as clients see it: every mechanism Parley offers, with and without channel binding,
// over STARTTLS and direct TLS, on TLS 1.2 and 1.3. mellium's client covers SCRAM-SHA-1/256, their -PLUS
// variants with tls-exporter, and PLAIN; SCRAM-SHA-512, tls-server-end-point and the refusals need a client
// that can be told to misbehave, so scramAuth below is one, written from RFC 5802 and RFC 7677.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// noThrottle lifts the failed-login limits so that a test may fail on purpose many times from 127.0.0.1.
const noThrottle = "c2s:\n  auth_failures_per_ip: 100000\n  auth_failures_per_account: 100000\n  auth_refuse_after: 100000\n"

const saslNS = "urn:ietf:params:xml:ns:xmpp-sasl"

// xmppConn is a client stream driven by hand: the test writes raw XML and reads whole top-level elements. Both
// directions go to the test's transcript, TLS or not.
type xmppConn struct {
	t   *testing.T
	tcp net.Conn
	tr  *transcript
	tls *tls.Conn
	buf []byte
}

func newXMPPConn(t *testing.T, name string, nc net.Conn) *xmppConn {
	x := &xmppConn{t: t, tcp: nc, tr: newTranscript(t, name, nc)}
	if tc, ok := nc.(*tls.Conn); ok {
		x.tls = tc
		x.note("direct TLS %s, ALPN %q", tlsVersion(tc.ConnectionState().Version), tc.ConnectionState().NegotiatedProtocol)
	}
	t.Cleanup(func() { nc.Close() })
	return x
}

func (x *xmppConn) note(format string, a ...any) {
	x.tr.record("--", []byte(fmt.Sprintf(format, a...)))
}

func (x *xmppConn) send(s string) {
	x.t.Helper()
	if _, err := x.tr.Write([]byte(s)); err != nil {
		x.t.Fatalf("write: %v", err)
	}
}

// next returns the next top-level element (or the stream header, or the stream close tag) as text.
func (x *xmppConn) next(d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	tmp := make([]byte, 8192)
	for {
		if el, n := splitElement(x.buf); n > 0 {
			x.buf = x.buf[n:]
			return el, nil
		}
		x.tr.SetReadDeadline(deadline)
		n, err := x.tr.Read(tmp)
		x.buf = append(x.buf, tmp[:n]...)
		if err != nil {
			if el, n := splitElement(x.buf); n > 0 {
				x.buf = x.buf[n:]
				return el, nil
			}
			return "", err
		}
	}
}

// expect returns the next element and fails the test unless it contains every one of subs.
func (x *xmppConn) expect(subs ...string) string {
	x.t.Helper()
	el, err := x.next(5 * time.Second)
	if err != nil {
		x.t.Fatalf("waiting for %q: %v", subs, err)
	}
	for _, s := range subs {
		if !strings.Contains(el, s) {
			x.t.Fatalf("got %s\nwant it to contain %q", el, s)
		}
	}
	return el
}

// waitFor skips elements until one contains every one of subs, and returns it.
func (x *xmppConn) waitFor(d time.Duration, subs ...string) string {
	x.t.Helper()
	deadline := time.Now().Add(d)
	for {
		el, err := x.next(time.Until(deadline))
		if err != nil {
			x.t.Fatalf("waiting for an element with %q: %v", subs, err)
		}
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(el, s)
		}
		if ok {
			return el
		}
	}
}

// closed waits for the server to end the stream and returns everything it sent until then.
func (x *xmppConn) closed(d time.Duration) string {
	x.t.Helper()
	var all []string
	deadline := time.Now().Add(d)
	for {
		el, err := x.next(time.Until(deadline))
		if el != "" {
			all = append(all, el)
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
				return strings.Join(all, "\n")
			}
			x.t.Fatalf("stream still open after %s (%v); got:\n%s", d, err, strings.Join(all, "\n"))
		}
		if el == "</stream:stream>" {
			return strings.Join(all, "\n")
		}
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// splitElement finds the first complete top-level piece of a client's view of a stream in buf: an XML
// declaration is skipped, the stream header and close tag count as elements.
func splitElement(buf []byte) (string, int) {
	i := len(buf) - len(bytes.TrimLeft(buf, " \t\r\n"))
	rest := buf[i:]
	switch {
	case len(rest) == 0:
		return "", 0
	case bytes.HasPrefix(rest, []byte("<?xml")):
		j := bytes.Index(rest, []byte("?>"))
		if j < 0 {
			return "", 0
		}
		el, n := splitElement(rest[j+2:])
		if n == 0 {
			return "", 0
		}
		return el, i + j + 2 + n
	case bytes.HasPrefix(rest, []byte("<stream:stream")):
		j := bytes.IndexByte(rest, '>')
		if j < 0 {
			return "", 0
		}
		return string(rest[:j+1]), i + j + 1
	case bytes.HasPrefix(rest, []byte("</stream:stream>")):
		return "</stream:stream>", i + len("</stream:stream>")
	}
	dec := xml.NewDecoder(bytes.NewReader(rest))
	depth := 0
	for {
		tok, err := dec.RawToken()
		if err != nil {
			return "", 0
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				n := int(dec.InputOffset())
				return string(rest[:n]), i + n
			}
		}
	}
}

// open sends a stream header and returns the server's features.
func (x *xmppConn) open() string {
	x.t.Helper()
	x.send(streamHeader)
	x.expect("<stream:stream", "from='localhost'")
	return x.expect("<stream:features")
}

// dialStartTLS connects to the STARTTLS port and negotiates TLS with cfg. It returns the stream and the
// features offered after TLS, or the handshake error.
func dialStartTLS(t *testing.T, srv *Server, name string, cfg *tls.Config) (*xmppConn, string, error) {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addrs["c2s"])
	if err != nil {
		t.Fatal(err)
	}
	x := newXMPPConn(t, name, nc)
	x.open()
	x.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	x.expect("<proceed")
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(context.Background()); err != nil {
		x.note("TLS handshake failed: %v", err)
		return x, "", err
	}
	x.tls = tc
	x.tr.Conn = tc
	x.note("STARTTLS done: %s", tlsVersion(tc.ConnectionState().Version))
	return x, x.open(), nil
}

// dialTLS is dialStartTLS that fails the test on a handshake error.
func dialTLS(t *testing.T, srv *Server, name string, cfg *tls.Config) (*xmppConn, string) {
	t.Helper()
	x, feat, err := dialStartTLS(t, srv, name, cfg)
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	return x, feat
}

func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLS 1.0"
	case tls.VersionTLS11:
		return "TLS 1.1"
	case tls.VersionTLS12:
		return "TLS 1.2"
	case tls.VersionTLS13:
		return "TLS 1.3"
	}
	return fmt.Sprintf("TLS %#x", v)
}

// tlsCfg is the server-trusting config capped at version max.
func tlsCfg(srv *Server, max uint16) *tls.Config {
	c := srv.TLSConfig()
	c.MaxVersion = max
	return c
}

// mechanisms lists the <mechanism/> names in features.
func mechanisms(features string) []string {
	var f struct {
		Mechs []string `xml:"mechanisms>mechanism"`
	}
	xml.Unmarshal([]byte(features), &f)
	return f.Mechs
}

// cbTypes lists the XEP-0440 channel-binding types in features.
func cbTypes(features string) []string {
	var f struct {
		Types []struct {
			Type string `xml:"type,attr"`
		} `xml:"sasl-channel-binding>channel-binding"`
	}
	xml.Unmarshal([]byte(features), &f)
	var out []string
	for _, t := range f.Types {
		out = append(out, t.Type)
	}
	return out
}

func listHas(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// saslOutcome reads the server's answer to the last SASL message: "challenge", "success" or the failure
// condition, and the decoded payload.
func (x *xmppConn) saslOutcome() (string, []byte) {
	x.t.Helper()
	el, err := x.next(10 * time.Second)
	if err != nil {
		x.t.Fatalf("waiting for the SASL answer: %v", err)
	}
	var v struct {
		XMLName xml.Name
		Data    string `xml:",chardata"`
		Inner   []struct {
			XMLName xml.Name
		} `xml:",any"`
	}
	if err := xml.Unmarshal([]byte(el), &v); err != nil || v.XMLName.Space != saslNS {
		x.t.Fatalf("not a SASL element: %s", el)
	}
	switch v.XMLName.Local {
	case "challenge", "success":
		d := strings.TrimSpace(v.Data)
		if d == "=" {
			d = ""
		}
		b, err := base64.StdEncoding.DecodeString(d)
		if err != nil {
			x.t.Fatalf("bad base64 in %s", el)
		}
		return v.XMLName.Local, b
	case "failure":
		for _, c := range v.Inner {
			if c.XMLName.Local != "text" {
				return c.XMLName.Local, nil
			}
		}
		x.t.Fatalf("failure without a condition: %s", el)
	}
	x.t.Fatalf("unexpected SASL element %s", el)
	return "", nil
}

// plainAuth authenticates with PLAIN (RFC 4616) and returns "success" or the failure condition.
func (x *xmppConn) plainAuth(user, password string) string {
	x.t.Helper()
	x.send(`<auth xmlns='` + saslNS + `' mechanism='PLAIN'>` + plainB64(user, password) + `</auth>`)
	got, _ := x.saslOutcome()
	return got
}

var scramHashes = map[string]func() hash.Hash{
	"SCRAM-SHA-1":   sha1.New,
	"SCRAM-SHA-256": sha256.New,
	"SCRAM-SHA-512": sha512.New,
}

// scramAuth runs a SCRAM exchange (RFC 5802 sections 3, 5 and 7; RFC 7677 for SHA-256; the same construction
// with SHA-512) and returns "success" or the server's failure condition. flag is the gs2-cbind-flag: "n", "y"
// or "p=<type>"; cb is the channel-binding data sent with "p". On success the server's signature is checked.
func (x *xmppConn) scramAuth(mech, user, password, flag string, cb []byte) string {
	x.t.Helper()
	newHash := scramHashes[strings.TrimSuffix(mech, "-PLUS")]
	if newHash == nil {
		x.t.Fatalf("no hash for %s", mech)
	}
	nb := make([]byte, 18)
	rand.Read(nb)
	cnonce := base64.RawURLEncoding.EncodeToString(nb)
	gs2 := flag + ",,"
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(user)
	clientFirstBare := "n=" + name + ",r=" + cnonce
	x.send(`<auth xmlns='` + saslNS + `' mechanism='` + mech + `'>` + b64s(gs2+clientFirstBare) + `</auth>`)
	kind, serverFirst := x.saslOutcome()
	if kind != "challenge" {
		return kind
	}
	attrs := map[string]string{}
	for _, kv := range strings.Split(string(serverFirst), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			attrs[k] = v
		}
	}
	nonce := attrs["r"]
	if !strings.HasPrefix(nonce, cnonce) || len(nonce) == len(cnonce) {
		x.t.Fatalf("server nonce %q does not extend ours %q", nonce, cnonce)
	}
	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	if err != nil || len(salt) == 0 {
		x.t.Fatalf("bad salt in %q", serverFirst)
	}
	var iter int
	if _, err := fmt.Sscan(attrs["i"], &iter); err != nil || iter < 4096 {
		x.t.Fatalf("bad iteration count in %q (RFC 7677 asks for at least 4096)", serverFirst)
	}
	salted, err := saltedPassword(mech, newHash, password, salt, iter)
	if err != nil {
		x.t.Fatal(err)
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(newHash, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	h := newHash()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	finalNoProof := "c=" + base64.StdEncoding.EncodeToString(append([]byte(gs2), cb...)) + ",r=" + nonce
	authMessage := clientFirstBare + "," + string(serverFirst) + "," + finalNoProof
	sig := mac(storedKey, authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	x.send(`<response xmlns='` + saslNS + `'>` + b64s(finalNoProof+",p="+base64.StdEncoding.EncodeToString(proof)) + `</response>`)
	kind, serverFinal := x.saslOutcome()
	if kind != "success" {
		return kind
	}
	want := "v=" + base64.StdEncoding.EncodeToString(mac(mac(salted, "Server Key"), authMessage))
	if string(serverFinal) != want {
		x.t.Fatalf("server signature: got %q, want %q (the server does not know the password?)", serverFinal, want)
	}
	return "success"
}

func b64s(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// bind restarts the stream after authentication and binds resource, returning the full JID.
func (x *xmppConn) bind(resource string) string {
	x.t.Helper()
	feat := x.open()
	if !strings.Contains(feat, "urn:ietf:params:xml:ns:xmpp-bind") {
		x.t.Fatalf("no bind feature after authentication: %s", feat)
	}
	x.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + resource + `</resource></bind></iq>`)
	el := x.expect(`type='result'`, `id='bind1'`)
	var v struct {
		JID string `xml:"bind>jid"`
	}
	xml.Unmarshal([]byte(el), &v)
	return v.JID
}

// channelBinding returns the binding data a client computes for a connection: tls-exporter (RFC 9266) or
// tls-server-end-point (RFC 5929 section 4.1: the certificate hashed with its signature's hash, SHA-256 in
// place of MD5 and SHA-1).
func channelBinding(t *testing.T, cs tls.ConnectionState, typ string) []byte {
	t.Helper()
	switch typ {
	case "tls-exporter":
		b, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			t.Fatalf("tls-exporter on %s: %v", tlsVersion(cs.Version), err)
		}
		return b
	case "tls-server-end-point":
		cert := cs.PeerCertificates[0]
		var h hash.Hash
		switch cert.SignatureAlgorithm {
		case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
			h = sha512.New384()
		case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
			h = sha512.New()
		default:
			h = sha256.New()
		}
		h.Write(cert.Raw)
		return h.Sum(nil)
	}
	t.Fatalf("unknown channel-binding type %s", typ)
	return nil
}

// scramCase is one way of logging in with SCRAM.
type scramCase struct {
	mech   string
	tlsMax uint16
	cb     string // channel-binding type for -PLUS
}

func (c scramCase) String() string {
	s := c.mech + "/" + strings.ReplaceAll(tlsVersion(c.tlsMax), " ", "")
	if c.cb != "" {
		s += "/" + c.cb
	}
	return s
}

// login runs the case's mechanism on a fresh connection and returns the outcome.
func (c scramCase) login(t *testing.T, srv *Server, user, password string) (*xmppConn, string) {
	t.Helper()
	x, feat := dialTLS(t, srv, "raw "+c.String()+" "+user, tlsCfg(srv, c.tlsMax))
	if !listHas(mechanisms(feat), c.mech) {
		t.Fatalf("%s not offered on %s: %s", c.mech, tlsVersion(c.tlsMax), feat)
	}
	switch {
	case c.mech == "PLAIN":
		return x, x.plainAuth(user, password)
	case c.cb != "":
		if !listHas(cbTypes(feat), c.cb) {
			t.Fatalf("channel binding %s not advertised (XEP-0440) on %s: %s", c.cb, tlsVersion(c.tlsMax), feat)
		}
		return x, x.scramAuth(c.mech, user, password, "p="+c.cb, channelBinding(t, x.tls.ConnectionState(), c.cb))
	default:
		return x, x.scramAuth(c.mech, user, password, "n", nil)
	}
}

func everyMechanism() []scramCase {
	var cases []scramCase
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for _, m := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
			cases = append(cases, scramCase{mech: m, tlsMax: v})
			cases = append(cases, scramCase{mech: m + "-PLUS", tlsMax: v, cb: "tls-server-end-point"})
			if v == tls.VersionTLS13 {
				cases = append(cases, scramCase{mech: m + "-PLUS", tlsMax: v, cb: "tls-exporter"})
			}
		}
		cases = append(cases, scramCase{mech: "PLAIN", tlsMax: v})
	}
	return cases
}

// Every mechanism logs in with the right password and binds; a wrong password and an unknown user are both
// refused with not-authorized (RFC 6120 6.5.10), so the answer does not tell which one it was.
func TestSASLEveryMechanism(t *testing.T) {
	srv := Start(t, noThrottle)
	srv.AddUser("alice", "alice-secret")
	for _, c := range everyMechanism() {
		t.Run(c.String(), func(t *testing.T) {
			x, got := c.login(t, srv, "alice", "alice-secret")
			if got != "success" {
				t.Fatalf("right password: got %s, want success", got)
			}
			if j := x.bind("sasl"); j != "alice@localhost/sasl" {
				t.Fatalf("bound %q, want alice@localhost/sasl", j)
			}
			x.send(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
			x.waitFor(5*time.Second, `id='p1'`, `type='result'`)

			if _, got := c.login(t, srv, "alice", "wrong-password"); got != "not-authorized" {
				t.Fatalf("wrong password: got %s, want not-authorized", got)
			}
			if _, got := c.login(t, srv, "nobody", "alice-secret"); got != "not-authorized" {
				t.Fatalf("unknown user: got %s, want not-authorized", got)
			}
		})
	}
}

// mellium's client, an implementation nobody here wrote, logs in with each mechanism it has (its -PLUS
// variants bind with tls-exporter on TLS 1.3) and is refused with a wrong password.
func TestSASLMelliumClient(t *testing.T) {
	srv := Start(t, noThrottle)
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := Dial(t, srv, "bob", "bob-secret", "b")
	bob.Send(`<presence/>`)
	for _, m := range []sasl.Mechanism{sasl.ScramSha1, sasl.ScramSha256, sasl.ScramSha1Plus, sasl.ScramSha256Plus, sasl.Plain} {
		t.Run(m.Name, func(t *testing.T) {
			// mellium v0.23 never asks for the resource of its JID (bindPayload sends an empty <resource/>), so the
			// server picks one.
			c := Dial(t, srv, "alice", "alice-secret", "", m)
			if c.JID.Bare().String() != "alice@localhost" || c.JID.Resourcepart() == "" {
				t.Fatalf("bound %s", c.JID)
			}
			c.Send(`<message to='bob@localhost' type='chat'><body>via ` + m.Name + `</body></message>`)
			bob.Expect(5*time.Second, "via "+m.Name, `from="`+c.JID.String()+`"`)
			if _, err := DialErr(t, srv, "alice", "wrong-password", "x", m); err == nil {
				t.Fatal("wrong password accepted")
			}
		})
	}
}

// RFC 5802 section 6: a client that can bind but sends "y" says it believes the server cannot, while the server
// did offer -PLUS: someone removed it on the way, and the server must fail the exchange even with the right
// password. The other channel-binding mistakes fail too.
func TestSASLChannelBindingRefusals(t *testing.T) {
	srv := Start(t, noThrottle)
	srv.AddUser("alice", "alice-secret")
	type refusal struct {
		name   string
		tlsMax uint16
		mech   string
		flag   string
		cb     func(cs tls.ConnectionState) []byte
	}
	none := func(tls.ConnectionState) []byte { return nil }
	cases := []refusal{
		{"downgrade y,, on TLS 1.3", tls.VersionTLS13, "SCRAM-SHA-256", "y", none},
		{"downgrade y,, on TLS 1.2", tls.VersionTLS12, "SCRAM-SHA-256", "y", none},
		{"downgrade y,, SCRAM-SHA-1", tls.VersionTLS13, "SCRAM-SHA-1", "y", none},
		{"downgrade y,, SCRAM-SHA-512", tls.VersionTLS13, "SCRAM-SHA-512", "y", none},
		{"tls-exporter data of another connection", tls.VersionTLS13, "SCRAM-SHA-256-PLUS", "p=tls-exporter",
			func(tls.ConnectionState) []byte { return bytes.Repeat([]byte{7}, 32) }},
		{"tls-server-end-point of another certificate", tls.VersionTLS12, "SCRAM-SHA-512-PLUS", "p=tls-server-end-point",
			func(tls.ConnectionState) []byte { return bytes.Repeat([]byte{7}, 32) }},
		{"tls-exporter on TLS 1.2", tls.VersionTLS12, "SCRAM-SHA-256-PLUS", "p=tls-exporter", none},
		{"tls-unique, not offered", tls.VersionTLS12, "SCRAM-SHA-1-PLUS", "p=tls-unique", none},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x, _ := dialTLS(t, srv, "raw "+c.name, tlsCfg(srv, c.tlsMax))
			if got := x.scramAuth(c.mech, "alice", "alice-secret", c.flag, c.cb(x.tls.ConnectionState())); got != "not-authorized" {
				t.Fatalf("got %s, want not-authorized", got)
			}
		})
	}
	// A -PLUS mechanism without binding is a malformed request, not a login.
	x, _ := dialTLS(t, srv, "raw PLUS with n", tlsCfg(srv, tls.VersionTLS13))
	if got := x.scramAuth("SCRAM-SHA-256-PLUS", "alice", "alice-secret", "n", nil); got == "success" {
		t.Fatal("SCRAM-SHA-256-PLUS with gs2 flag n succeeded")
	}
}

// XEP-0368: the direct TLS port negotiates ALPN xmpp-client, offers SASL at once (no STARTTLS), and logs in.
func TestSASLDirectTLS(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tlsVersion(v), func(t *testing.T) {
			cfg := tlsCfg(srv, v)
			cfg.NextProtos = []string{"xmpp-client"}
			tc, err := tls.Dial("tcp", srv.Addrs["c2s_tls"], cfg)
			if err != nil {
				t.Fatal(err)
			}
			if p := tc.ConnectionState().NegotiatedProtocol; p != "xmpp-client" {
				t.Fatalf("ALPN: negotiated %q, want xmpp-client", p)
			}
			x := newXMPPConn(t, "direct", tc)
			feat := x.open()
			if strings.Contains(feat, "starttls") {
				t.Fatalf("STARTTLS offered on the direct TLS port: %s", feat)
			}
			mechs := mechanisms(feat)
			for _, m := range []string{"SCRAM-SHA-512-PLUS", "SCRAM-SHA-256", "PLAIN"} {
				if !listHas(mechs, m) {
					t.Fatalf("%s not offered over direct TLS: %v", m, mechs)
				}
			}
			cb := "tls-server-end-point"
			if v == tls.VersionTLS13 {
				cb = "tls-exporter"
			}
			if got := x.scramAuth("SCRAM-SHA-512-PLUS", "alice", "alice-secret", "p="+cb, channelBinding(t, tc.ConnectionState(), cb)); got != "success" {
				t.Fatalf("got %s", got)
			}
			if j := x.bind("direct"); j != "alice@localhost/direct" {
				t.Fatalf("bound %q", j)
			}
		})
	}
	// mellium over the direct TLS port too.
	cfg := srv.TLSConfig()
	cfg.NextProtos = []string{"xmpp-client"}
	tc, err := tls.Dial("tcp", srv.Addrs["c2s_tls"], cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := xmpp.NewClientSession(ctx, jid.MustParse("bob@localhost/direct"), tc,
		xmpp.SASL("", "bob-secret", sasl.ScramSha256Plus), xmpp.BindResource())
	if err != nil {
		t.Fatalf("mellium over direct TLS: %v", err)
	}
	defer s.Close()
	if got := s.LocalAddr().Bare().String(); got != "bob@localhost" {
		t.Fatalf("mellium bound %s", got)
	}
}

// RFC 6120 5.3.1 and 13.8: with TLS required nothing but STARTTLS is offered before it, PLAIN in particular,
// and an attempt to authenticate anyway is refused. After TLS, PLAIN is offered unless the operator turned it
// off.
func TestSASLPlainNotOfferedBeforeTLS(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	nc, err := net.Dial("tcp", srv.Addrs["c2s"])
	if err != nil {
		t.Fatal(err)
	}
	x := newXMPPConn(t, "plaintext", nc)
	feat := x.open()
	if !strings.Contains(feat, "<starttls") || !strings.Contains(feat, "<required") {
		t.Fatalf("STARTTLS not required: %s", feat)
	}
	if strings.Contains(feat, "PLAIN") || strings.Contains(feat, "<mechanism") {
		t.Fatalf("mechanisms offered before TLS: %s", feat)
	}
	x.send(`<auth xmlns='` + saslNS + `' mechanism='PLAIN'>` + plainB64("alice", "alice-secret") + `</auth>`)
	if got, _ := x.saslOutcome(); got != "encryption-required" {
		t.Fatalf("PLAIN before TLS: got %s, want encryption-required", got)
	}

	_, feat = dialTLS(t, srv, "after tls", srv.TLSConfig())
	if !listHas(mechanisms(feat), "PLAIN") {
		t.Fatalf("PLAIN not offered after TLS: %s", feat)
	}

	off := Start(t, "auth:\n  allow_plain: false\n")
	off.AddUser("alice", "alice-secret")
	x, feat = dialTLS(t, off, "plain off", off.TLSConfig())
	if listHas(mechanisms(feat), "PLAIN") {
		t.Fatalf("PLAIN offered with auth.allow_plain false: %s", feat)
	}
	if got := x.plainAuth("alice", "alice-secret"); got == "success" {
		t.Fatal("PLAIN accepted with auth.allow_plain false")
	}
}

// TLS below 1.2 is refused on both ports (RFC 9325 section 3.1.1: TLS 1.0 and 1.1 MUST NOT be negotiated).
func TestTLS11ClientRefused(t *testing.T) {
	srv := Start(t, "")
	old := srv.TLSConfig()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if _, _, err := dialStartTLS(t, srv, "starttls tls1.1", old); err == nil {
		t.Fatal("STARTTLS handshake with TLS 1.1 succeeded")
	} else {
		t.Logf("STARTTLS with TLS 1.1: %v", err)
	}
	tc, err := tls.Dial("tcp", srv.Addrs["c2s_tls"], old)
	if err == nil {
		tc.Close()
		t.Fatalf("direct TLS handshake with TLS 1.1 succeeded (%s)", tlsVersion(tc.ConnectionState().Version))
	}
	t.Logf("direct TLS with TLS 1.1: %v", err)
	// The listener is unharmed.
	x, _ := dialTLS(t, srv, "after", srv.TLSConfig())
	x.send(`<auth xmlns='` + saslNS + `' mechanism='PLAIN'>` + plainB64("nobody", "x") + `</auth>`)
	if got, _ := x.saslOutcome(); got != "not-authorized" {
		t.Fatalf("got %s", got)
	}
}

// `parley user passwd` replaces every stored SCRAM hash: the old password fails with SHA-1, SHA-256, SHA-512 and
// PLAIN, and the new one works with each.
func TestUserPasswdChangesEveryHash(t *testing.T) {
	srv := Start(t, noThrottle)
	srv.AddUser("alice", "old-password")
	byHash := []scramCase{
		{mech: "SCRAM-SHA-1", tlsMax: tls.VersionTLS13},
		{mech: "SCRAM-SHA-256", tlsMax: tls.VersionTLS13},
		{mech: "SCRAM-SHA-512", tlsMax: tls.VersionTLS13},
		{mech: "SCRAM-SHA-512-PLUS", tlsMax: tls.VersionTLS13, cb: "tls-exporter"},
		{mech: "PLAIN", tlsMax: tls.VersionTLS13},
	}
	for _, c := range byHash {
		if _, got := c.login(t, srv, "alice", "old-password"); got != "success" {
			t.Fatalf("%s before the change: %s", c, got)
		}
	}
	out, err := exec.Command(parleyBin, "user", "passwd", "alice@localhost", "-password", "new-password", "-config", srv.config).CombinedOutput()
	t.Logf("parley user passwd alice@localhost: %s", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range byHash {
		if _, got := c.login(t, srv, "alice", "old-password"); got != "not-authorized" {
			t.Errorf("%s with the old password: got %s, want not-authorized", c, got)
		}
		if _, got := c.login(t, srv, "alice", "new-password"); got != "success" {
			t.Errorf("%s with the new password: got %s, want success", c, got)
		}
	}
	// And for an account that does not exist the command fails instead of creating it.
	out, err = exec.Command(parleyBin, "user", "passwd", "ghost@localhost", "-password", "x", "-config", srv.config).CombinedOutput()
	if err == nil {
		t.Fatalf("passwd of a missing account succeeded: %s", out)
	}
}

// go-sendxmpp could not connect over STARTTLS (found 2026-11-23, since fixed in xmpp/c2s): like every client built
// on github.com/xmppo/go-xmpp it writes a newline after each element, so "<starttls/>\n" arrives in one segment and
// the newline sits in the server's plaintext buffer when the handshake starts. RFC 6120 5.3.3 asks clients not to
// send whitespace there, but a lone whitespace carries no command, so it is discarded rather than refused.
func TestStartTLSWithTrailingNewline(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	nc, err := net.Dial("tcp", srv.Addrs["c2s"])
	if err != nil {
		t.Fatal(err)
	}
	x := newXMPPConn(t, "go-sendxmpp style", nc)
	x.open()
	x.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n")
	x.expect("<proceed")
	tc := tls.Client(nc, srv.TLSConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake after <starttls/> plus a newline: %v (server log: %s)", err, lastLine(srv.Log(), "connection ended"))
	}
	x.tls, x.tr.Conn = tc, tc
	feat := x.open()
	if got := x.scramAuth("SCRAM-SHA-256", "alice", "alice-secret", "n", nil); got != "success" {
		t.Fatalf("login after STARTTLS: %s (features %s)", got, feat)
	}
}

// The STARTTLS injection defence itself must stay: a command pipelined after <starttls/> in plaintext is never
// taken as if it had come over TLS.
func TestStartTLSRefusesPipelinedCommand(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	nc, err := net.Dial("tcp", srv.Addrs["c2s"])
	if err != nil {
		t.Fatal(err)
	}
	x := newXMPPConn(t, "injection", nc)
	x.open()
	x.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><auth xmlns='" + saslNS + "' mechanism='PLAIN'>" + plainB64("alice", "alice-secret") + "</auth>")
	x.expect("<proceed")
	tc := tls.Client(nc, srv.TLSConfig())
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err == nil {
		x.tls, x.tr.Conn = tc, tc
		x.send(streamHeader)
		if el, err := x.next(2 * time.Second); err == nil && strings.Contains(el, "<success") {
			t.Fatalf("the pipelined plaintext <auth/> was honoured: %s", el)
		}
	}
}

// Bug: a login that fails before any password is checked (an unsupported channel-binding type, here exactly what
// slixmpp 1.8.3 sends: SCRAM-SHA-512/256/1-PLUS with p=tls-unique) counts as a failed password guess for the
// account and the IP (xmpp/c2s/conn.go authFailed). Two such connections from a client that has the right
// password lock the account out for c2s.auth_failure_window, and four lock out its whole IP address: the
// throttle then refuses the right password with temporary-auth-failure.
func TestUnsupportedChannelBindingDoesNotLockOutAccount(t *testing.T) {
	srv := Start(t, "") // default throttles: 10 failures per IP, 5 per account
	srv.AddUser("alice", "alice-secret")
	for i := 0; i < 2; i++ {
		x, _ := dialTLS(t, srv, fmt.Sprintf("slixmpp-like %d", i), srv.TLSConfig())
		for _, m := range []string{"SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"} {
			if got := x.scramAuth(m, "alice", "alice-secret", "p=tls-unique", bytes.Repeat([]byte{1}, 12)); got == "success" {
				t.Fatalf("%s with p=tls-unique succeeded", m)
			}
		}
	}
	x, _ := dialTLS(t, srv, "right password", srv.TLSConfig())
	if got := x.scramAuth("SCRAM-SHA-256", "alice", "alice-secret", "n", nil); got != "success" {
		t.Fatalf("right password after six channel-binding refusals: got %s, want success", got)
	}
}

// lastLine returns the last line of log containing sub.
func lastLine(log, sub string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return lines[i]
		}
	}
	return ""
}

// With c2s.allow_plaintext, STARTTLS is offered without <required/> next to the SASL mechanisms, and a client
// that takes it gets TLS, then SASL over TLS; a client that does not authenticates in plaintext.
func TestOptionalSTARTTLS(t *testing.T) {
	srv := Start(t, "c2s:\n  allow_plaintext: true\n")
	srv.AddUser("alice", "alice-secret")
	nc, err := net.Dial("tcp", srv.Addrs["c2s"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte(streamHeader))
	feats := readUntil(t, nc, "</stream:features>", 5*time.Second)
	if !strings.Contains(feats, "<starttls") || strings.Contains(feats, "<required") || !strings.Contains(feats, "<mechanisms") {
		t.Fatalf("features with allow_plaintext: %s", feats)
	}
	// Taking the optional STARTTLS works (it used to end the stream with policy-violation).
	c := loginRaw(t, srv, "alice", "alice-secret")
	c.Write([]byte(`<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`))
	readUntil(t, c, "id='p1'", 5*time.Second)
	// And plaintext SCRAM without TLS is still possible on this server.
	nc.Write([]byte(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>` +
		base64.StdEncoding.EncodeToString([]byte("n,,n=alice,r=abcdefghijklmnop")) + `</auth>`))
	readUntil(t, nc, "<challenge", 5*time.Second)
}

// Issue 13: the gs2 flag "y" after a -PLUS attempt refused only for its channel-binding type on the same stream
// is slixmpp's honest fallback (it saw -PLUS offered) and logs in; "y" from a client that never tried -PLUS on
// its stream is still refused as a downgrade (RFC 5802 section 6), also with PLAIN turned off, and so is "y"
// after a -PLUS attempt that failed for another reason (wrong binding data).
func TestSASLFlagYOnlyAfterRefusedBindingType(t *testing.T) {
	srv := Start(t, noThrottle+"auth:\n  allow_plain: false\n")
	srv.AddUser("alice", "alice-secret")
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for _, mech := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256"} {
			name := mech + "/" + strings.ReplaceAll(tlsVersion(v), " ", "")
			t.Run(name, func(t *testing.T) {
				x, feat := dialTLS(t, srv, "slixmpp-like "+name, tlsCfg(srv, v))
				if listHas(mechanisms(feat), "PLAIN") {
					t.Fatalf("PLAIN offered with auth.allow_plain false: %s", feat)
				}
				if got := x.scramAuth(mech+"-PLUS", "alice", "alice-secret", "p=tls-unique", []byte("0123456789ab")); got != "not-authorized" {
					t.Fatalf("%s-PLUS with tls-unique: got %s, want not-authorized", mech, got)
				}
				if got := x.scramAuth(mech, "alice", "alice-secret", "y", nil); got != "success" {
					t.Fatalf("%s with y after the refused binding type: got %s, want success", mech, got)
				}
				if jid := x.bind("slix"); !strings.HasPrefix(jid, "alice@localhost/") {
					t.Fatalf("bound %q", jid)
				}

				crafted, _ := dialTLS(t, srv, "crafted y "+name, tlsCfg(srv, v))
				if got := crafted.scramAuth(mech, "alice", "alice-secret", "y", nil); got != "not-authorized" {
					t.Fatalf("y without a -PLUS attempt: got %s, want not-authorized", got)
				}

				other, _ := dialTLS(t, srv, "y after wrong binding data "+name, tlsCfg(srv, v))
				if got := other.scramAuth(mech+"-PLUS", "alice", "alice-secret", "p=tls-server-end-point", bytes.Repeat([]byte{7}, 32)); got != "not-authorized" {
					t.Fatalf("wrong binding data: got %s, want not-authorized", got)
				}
				if got := other.scramAuth(mech, "alice", "alice-secret", "y", nil); got != "not-authorized" {
					t.Fatalf("y after a binding mismatch: got %s, want not-authorized", got)
				}
			})
		}
	}
}

// saltedCache memoizes SCRAM's Hi(): a test that tries one password a thousand times pays PBKDF2 once.
var saltedCache sync.Map

func saltedPassword(mech string, newHash func() hash.Hash, password string, salt []byte, iter int) ([]byte, error) {
	key := fmt.Sprintf("%s\x00%s\x00%x\x00%d", strings.TrimSuffix(mech, "-PLUS"), password, salt, iter)
	if v, ok := saltedCache.Load(key); ok {
		return v.([]byte), nil
	}
	b, err := pbkdf2.Key(newHash, password, salt, iter, newHash().Size())
	if err == nil {
		saltedCache.Store(key, b)
	}
	return b, err
}
