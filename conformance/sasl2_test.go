package conformance

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

const sasl2NS = "urn:xmpp:sasl:2"

// sasl2Result is the server's answer to a SASL2 <authenticate/> or <response/>.
type sasl2Result struct {
	kind string // challenge, success, or the failure condition
	data []byte // challenge or additional-data, decoded
	el   string // the element as received
}

func (x *xmppConn) sasl2Outcome() sasl2Result {
	x.t.Helper()
	el, err := x.next(10 * time.Second)
	if err != nil {
		x.t.Fatalf("waiting for the SASL2 answer: %v", err)
	}
	var v struct {
		XMLName    xml.Name
		Data       string `xml:",chardata"`
		Additional string `xml:"additional-data"`
		Inner      []struct {
			XMLName xml.Name
		} `xml:",any"`
	}
	if err := xml.Unmarshal([]byte(el), &v); err != nil || v.XMLName.Space != sasl2NS {
		x.t.Fatalf("not a SASL2 element: %s", el)
	}
	switch v.XMLName.Local {
	case "challenge":
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v.Data))
		if err != nil {
			x.t.Fatalf("bad base64 in %s", el)
		}
		return sasl2Result{"challenge", b, el}
	case "success":
		b, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(v.Additional))
		return sasl2Result{"success", b, el}
	case "failure":
		for _, c := range v.Inner {
			if c.XMLName.Local != "text" {
				return sasl2Result{c.XMLName.Local, nil, el}
			}
		}
	}
	x.t.Fatalf("unexpected SASL2 element %s", el)
	return sasl2Result{}
}

// scram2 runs a SCRAM exchange over SASL2 with extra inline elements in <authenticate/> (user agent, Bind 2,
// FAST requests) and returns the final result; on success the server signature is checked.
func (x *xmppConn) scram2(mech, user, password, inline string) sasl2Result {
	x.t.Helper()
	newHash := scramHashes[mech]
	nb := make([]byte, 18)
	rand.Read(nb)
	cnonce := base64.RawURLEncoding.EncodeToString(nb)
	gs2 := "n,,"
	clientFirstBare := "n=" + user + ",r=" + cnonce
	x.send(`<authenticate xmlns='` + sasl2NS + `' mechanism='` + mech + `'><initial-response>` + b64s(gs2+clientFirstBare) +
		`</initial-response>` + inline + `</authenticate>`)
	r := x.sasl2Outcome()
	if r.kind != "challenge" {
		return r
	}
	attrs := map[string]string{}
	for _, kv := range strings.Split(string(r.data), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			attrs[k] = v
		}
	}
	salt, _ := base64.StdEncoding.DecodeString(attrs["s"])
	var iter int
	fmt.Sscan(attrs["i"], &iter)
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
	finalNoProof := "c=" + base64.StdEncoding.EncodeToString([]byte(gs2)) + ",r=" + attrs["r"]
	authMessage := clientFirstBare + "," + string(r.data) + "," + finalNoProof
	sig := mac(h.Sum(nil), authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	x.send(`<response xmlns='` + sasl2NS + `'>` + b64s(finalNoProof+",p="+base64.StdEncoding.EncodeToString(proof)) + `</response>`)
	r = x.sasl2Outcome()
	if r.kind == "success" {
		if want := "v=" + base64.StdEncoding.EncodeToString(mac(mac(salted, "Server Key"), authMessage)); string(r.data) != want {
			x.t.Fatalf("server signature %q, want %q", r.data, want)
		}
	}
	return r
}

// htInitial is a HT-SHA-256-* initial response (draft-schmaus-kitten-sasl-ht): user NUL HMAC(token,
// "Initiator" || cb-data).
func htInitial(user, token string, cb []byte) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("Initiator"))
	m.Write(cb)
	return base64.StdEncoding.EncodeToString(append([]byte(user+"\x00"), m.Sum(nil)...))
}

func htResponder(token string, cb []byte) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("Responder"))
	m.Write(cb)
	return m.Sum(nil)
}

var (
	aidRe   = regexp.MustCompile(`<authorization-identifier>([^<]+)</authorization-identifier>`)
	tokenRe = regexp.MustCompile(`<token xmlns='urn:xmpp:fast:0' expiry='([^']+)' token='([^']+)'/>`)
	smIDRe  = regexp.MustCompile(`<enabled xmlns='urn:xmpp:sm:3' id='([^']+)' resume='true'`)
)

func userAgentEl(id string) string {
	return `<user-agent id='` + id + `'><software>conformance</software><device>test</device></user-agent>`
}

// Issue 13: SASL2 (XEP-0388) with Bind 2 (XEP-0386), inline stream management, carbons and CSI, and FAST
// (XEP-0484) over TCP with every HT mechanism Parley offers: a password login that binds, enables resumption
// and gets a token in one round trip after the exchange; a reconnect with the token alone that resumes the
// session inline, with the messages sent meanwhile replayed after <success/>, and a rotated token; and a logout
// (<fast invalidate='true'/>) after which the token is refused. Password change and expiry: auth's TestFASTTokens.
func TestSASL2Bind2FAST(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	for _, mech := range []string{"HT-SHA-256-EXPR", "HT-SHA-256-ENDP", "HT-SHA-256-NONE"} {
		t.Run(mech, func(t *testing.T) { sasl2FASTRun(t, srv, mech) })
	}
}

func sasl2FASTRun(t *testing.T, srv *Server, mech string) {
	userAgent := userAgentEl("device-" + mech)
	x, feat := dialTLS(t, srv, "sasl2 password "+mech, tlsCfg(srv, tls.VersionTLS13))
	for _, want := range []string{`<authentication xmlns='urn:xmpp:sasl:2'>`, `<mechanism>SCRAM-SHA-256</mechanism>`,
		`<bind xmlns='urn:xmpp:bind:0'>`, `<feature var='urn:xmpp:carbons:2'/>`, `<feature var='urn:xmpp:csi:0'/>`,
		`<feature var='urn:xmpp:sm:3'/>`, `<sm xmlns='urn:xmpp:sm:3'/>`, `<fast xmlns='urn:xmpp:fast:0'>`,
		`<mechanism>HT-SHA-256-EXPR</mechanism>`, `<mechanism>HT-SHA-256-ENDP</mechanism>`, `<mechanism>HT-SHA-256-NONE</mechanism>`} {
		if !strings.Contains(feat, want) {
			t.Fatalf("features lack %s: %s", want, feat)
		}
	}
	bind := `<bind xmlns='urn:xmpp:bind:0'><tag>phone</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/><enable xmlns='urn:xmpp:carbons:2'/><inactive xmlns='urn:xmpp:csi:0'/></bind>`
	r := x.scram2("SCRAM-SHA-256", "alice", "alice-secret", userAgent+bind+`<request-token xmlns='urn:xmpp:fast:0' mechanism='`+mech+`'/>`)
	if r.kind != "success" {
		t.Fatalf("SASL2 SCRAM-SHA-256: %s %s", r.kind, r.el)
	}
	aid := aidRe.FindStringSubmatch(r.el)
	tok := tokenRe.FindStringSubmatch(r.el)
	smID := smIDRe.FindStringSubmatch(r.el)
	if aid == nil || !strings.HasPrefix(aid[1], "alice@localhost/phone.") || tok == nil || smID == nil || !strings.Contains(r.el, "<bound xmlns='urn:xmpp:bind:0'>") {
		t.Fatalf("success lacks the full JID, the token or <enabled/> in <bound/>: %s", r.el)
	}
	if exp, err := time.Parse(time.RFC3339, tok[1]); err != nil || time.Until(exp) < 13*24*time.Hour || time.Until(exp) > 15*24*time.Hour {
		t.Fatalf("token expiry %s, want in 14 days", tok[1])
	}
	full := aid[1]
	// The session works at once, without a stream restart or a bind IQ.
	x.send(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	x.waitFor(5*time.Second, `id='r1'`, `type='result'`)
	x.send(`<presence/>`)
	x.send(`<r xmlns='urn:xmpp:sm:3'/>`)
	x.waitFor(5*time.Second, `<a xmlns='urn:xmpp:sm:3' h='2'/>`)

	// The connection drops; a message waits in the hibernating session.
	x.tcp.Close()
	time.Sleep(200 * time.Millisecond)
	other := Dial(t, srv, "alice", "alice-secret", "other")
	other.Send(`<message to='` + full + `' type='chat'><body>while you were away</body></message>`)
	time.Sleep(200 * time.Millisecond)

	// Reconnect with the token alone: resumed in the same round trip as the authentication.
	y, _ := dialTLS(t, srv, "sasl2 fast "+mech, tlsCfg(srv, tls.VersionTLS13))
	var cb []byte
	switch mech {
	case "HT-SHA-256-EXPR":
		cb = channelBinding(t, y.tls.ConnectionState(), "tls-exporter")
	case "HT-SHA-256-ENDP":
		cb = channelBinding(t, y.tls.ConnectionState(), "tls-server-end-point")
	}
	y.send(`<authenticate xmlns='` + sasl2NS + `' mechanism='` + mech + `'><initial-response>` + htInitial("alice", tok[2], cb) +
		`</initial-response>` + userAgent + `<fast xmlns='urn:xmpp:fast:0'/><request-token xmlns='urn:xmpp:fast:0' mechanism='` + mech + `'/>` +
		`<resume xmlns='urn:xmpp:sm:3' previd='` + smID[1] + `' h='0'/>` + bind + `</authenticate>`)
	r = y.sasl2Outcome()
	if r.kind != "success" || !strings.Contains(r.el, "<resumed xmlns='urn:xmpp:sm:3' previd='"+smID[1]+"' h='2'/>") || strings.Contains(r.el, "<bound") {
		t.Fatalf("FAST with inline resume: %s", r.el)
	}
	if string(r.data) != string(htResponder(tok[2], cb)) {
		t.Fatalf("additional-data is not HMAC(token, Responder): %x", r.data)
	}
	if a := aidRe.FindStringSubmatch(r.el); a == nil || a[1] != full {
		t.Fatalf("authorization-identifier after resumption: %s, want %s", r.el, full)
	}
	tok2 := tokenRe.FindStringSubmatch(r.el)
	if tok2 == nil || tok2[2] == tok[2] {
		t.Fatalf("no rotated token: %s", r.el)
	}
	y.waitFor(5*time.Second, "while you were away")
	y.send(`<message to='` + other.JID.String() + `' type='chat'><body>back</body></message>`)
	other.Expect(5*time.Second, "back")

	// Logout: the token just used is invalidated.
	z, _ := dialTLS(t, srv, "sasl2 logout "+mech, tlsCfg(srv, tls.VersionTLS13))
	cb = nil
	switch mech {
	case "HT-SHA-256-EXPR":
		cb = channelBinding(t, z.tls.ConnectionState(), "tls-exporter")
	case "HT-SHA-256-ENDP":
		cb = channelBinding(t, z.tls.ConnectionState(), "tls-server-end-point")
	}
	z.send(`<authenticate xmlns='` + sasl2NS + `' mechanism='` + mech + `'><initial-response>` + htInitial("alice", tok2[2], cb) +
		`</initial-response>` + userAgent + `<fast xmlns='urn:xmpp:fast:0' invalidate='true'/></authenticate>`)
	if r := z.sasl2Outcome(); r.kind != "success" || strings.Contains(r.el, "<token") {
		t.Fatalf("logout authentication: %s", r.el)
	}
	w, _ := dialTLS(t, srv, "sasl2 after logout "+mech, tlsCfg(srv, tls.VersionTLS13))
	cb = nil
	switch mech {
	case "HT-SHA-256-EXPR":
		cb = channelBinding(t, w.tls.ConnectionState(), "tls-exporter")
	case "HT-SHA-256-ENDP":
		cb = channelBinding(t, w.tls.ConnectionState(), "tls-server-end-point")
	}
	w.send(`<authenticate xmlns='` + sasl2NS + `' mechanism='` + mech + `'><initial-response>` + htInitial("alice", tok2[2], cb) +
		`</initial-response>` + userAgent + `</authenticate>`)
	if r := w.sasl2Outcome(); r.kind != "not-authorized" {
		t.Fatalf("the invalidated token: %s", r.el)
	}
}

// SASL2 without Bind 2: <success/> carries the bare JID and the post-authentication features follow on the
// same stream, without a restart (XEP-0388 section 2.6.3), where RFC 6120 binding works. An inline resumption
// that fails is reported inside <success/> and Bind 2 binds a new session instead (XEP-0198 with SASL2). A
// wrong password is a SASL2 <failure/> with the SASL condition, and the stream stays open for another try.
func TestSASL2WithoutBindAndFailedResume(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")

	x, _ := dialTLS(t, srv, "sasl2 no bind", srv.TLSConfig())
	if r := x.scram2("SCRAM-SHA-256", "alice", "wrong", ""); r.kind != "not-authorized" ||
		!strings.Contains(r.el, "<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>") {
		t.Fatalf("wrong password: %s", r.el)
	}
	r := x.scram2("SCRAM-SHA-256", "alice", "alice-secret", "")
	if r.kind != "success" || !strings.Contains(r.el, "<authorization-identifier>alice@localhost</authorization-identifier>") {
		t.Fatalf("SASL2 without bind: %s", r.el)
	}
	feat := x.expect("<stream:features")
	if !strings.Contains(feat, "urn:ietf:params:xml:ns:xmpp-bind") {
		t.Fatalf("features after SASL2: %s", feat)
	}
	x.send(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>legacy</resource></bind></iq>`)
	x.waitFor(5*time.Second, `alice@localhost/legacy`)

	y, _ := dialTLS(t, srv, "sasl2 failed resume", srv.TLSConfig())
	r = y.scram2("SCRAM-SHA-256", "alice", "alice-secret", userAgentEl("dev-x")+
		`<resume xmlns='urn:xmpp:sm:3' previd='no-such-session' h='0'/><bind xmlns='urn:xmpp:bind:0'><tag>t</tag></bind>`)
	if r.kind != "success" || !strings.Contains(r.el, "<failed xmlns='urn:xmpp:sm:3'><item-not-found") || !strings.Contains(r.el, "<bound xmlns='urn:xmpp:bind:0'>") {
		t.Fatalf("failed inline resumption: %s", r.el)
	}
	if a := aidRe.FindStringSubmatch(r.el); a == nil || !strings.HasPrefix(a[1], "alice@localhost/t.") {
		t.Fatalf("authorization-identifier after Bind 2: %s", r.el)
	}
	y.send(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	y.waitFor(5*time.Second, `id='r1'`, `type='result'`)
}

// fastToken logs in with the password over SASL2 and asks for a HT-SHA-256-NONE token for device.
func fastToken(t *testing.T, srv *Server, user, password, device string) string {
	t.Helper()
	x, _ := dialTLS(t, srv, "token "+user+" "+device, srv.TLSConfig())
	r := x.scram2("SCRAM-SHA-256", user, password, userAgentEl(device)+`<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>`)
	tok := tokenRe.FindStringSubmatch(r.el)
	if r.kind != "success" || tok == nil {
		t.Fatalf("password login asking for a token: %s", r.el)
	}
	x.tcp.Close()
	return tok[2]
}

// fastLogin logs in with a token and returns the outcome.
func fastLogin(t *testing.T, srv *Server, user, token, device string) string {
	t.Helper()
	x, _ := dialTLS(t, srv, "fast "+user+" "+device, srv.TLSConfig())
	defer x.tcp.Close()
	x.send(`<authenticate xmlns='` + sasl2NS + `' mechanism='HT-SHA-256-NONE'><initial-response>` + htInitial(user, token, nil) +
		`</initial-response>` + userAgentEl(device) + `<fast xmlns='urn:xmpp:fast:0'/></authenticate>`)
	return x.sasl2Outcome().kind
}

// Issue 13: FAST tokens die with the password and with the account, however it is changed or removed:
// `parley user passwd`, an XEP-0077 password change, `parley user del`. A token of one device does not log in
// another device.
func TestFASTTokensVoidAfterPasswordChangeAndRemoval(t *testing.T) {
	srv := Start(t, noThrottle)
	srv.AddUser("alice", "first")
	tok := fastToken(t, srv, "alice", "first", "dev-a")
	other := fastToken(t, srv, "alice", "first", "dev-b")
	if got := fastLogin(t, srv, "alice", tok, "dev-a"); got != "success" {
		t.Fatalf("token login: %s", got)
	}
	if got := fastLogin(t, srv, "alice", tok, "dev-b"); got != "not-authorized" {
		t.Fatalf("dev-a's token on dev-b: %s", got)
	}
	out, err := exec.Command(parleyBin, "user", "passwd", "alice@localhost", "-password", "second-password", "-config", srv.config).CombinedOutput()
	if err != nil {
		t.Fatalf("parley user passwd: %v %s", err, out)
	}
	for _, c := range []struct{ tok, dev string }{{tok, "dev-a"}, {other, "dev-b"}} {
		if got := fastLogin(t, srv, "alice", c.tok, c.dev); got != "not-authorized" {
			t.Fatalf("%s's token after parley user passwd: %s", c.dev, got)
		}
	}

	tok = fastToken(t, srv, "alice", "second-password", "dev-a")
	x := rawLogin(t, srv, "alice", "second-password", "pw")
	if got := x.iq("c1", `<iq type='set' id='c1'><query xmlns='jabber:iq:register'><username>alice</username><password>third-password</password></query></iq>`); !strings.Contains(got, "type='result'") {
		t.Fatalf("XEP-0077 password change: %s", got)
	}
	if got := fastLogin(t, srv, "alice", tok, "dev-a"); got != "not-authorized" {
		t.Fatalf("token after an XEP-0077 password change: %s", got)
	}

	tok = fastToken(t, srv, "alice", "third-password", "dev-a")
	out, err = exec.Command(parleyBin, "user", "del", "alice@localhost", "-config", srv.config).CombinedOutput()
	if err != nil {
		t.Fatalf("parley user del: %v %s", err, out)
	}
	srv.AddUser("alice", "third-password") // the same name and password again: a new account
	if got := fastLogin(t, srv, "alice", tok, "dev-a"); got != "not-authorized" {
		t.Fatalf("token of a removed account: %s", got)
	}
}

// Bind 2 inline features take effect: <enable xmlns='urn:xmpp:carbons:2'/> gets the new session copies of what
// the account's other resources send (XEP-0280), and <inactive xmlns='urn:xmpp:csi:0'/> holds back what can wait
// (a chat state) until something urgent comes (XEP-0352).
func TestBind2InlineCarbonsAndCSI(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := Dial(t, srv, "bob", "bob-secret", "mellium")
	x, _ := dialTLS(t, srv, "bind2 phone", srv.TLSConfig())
	r := x.scram2("SCRAM-SHA-256", "alice", "alice-secret", userAgentEl("csi-dev")+
		`<bind xmlns='urn:xmpp:bind:0'><tag>phone</tag><enable xmlns='urn:xmpp:carbons:2'/><inactive xmlns='urn:xmpp:csi:0'/></bind>`)
	a := aidRe.FindStringSubmatch(r.el)
	if r.kind != "success" || a == nil {
		t.Fatalf("SASL2 + Bind 2: %s", r.el)
	}
	bob.Send(`<message to='` + a[1] + `' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	if el, err := x.next(700 * time.Millisecond); err == nil {
		t.Fatalf("the inactive session got %s", el)
	}
	// A carbon of a message with a body is urgent: what was held (the chat state) goes first.
	other := Dial(t, srv, "alice", "alice-secret", "laptop")
	other.Send(`<message to='bob@localhost' type='chat'><body>from the laptop</body></message>`)
	var seen []string
	for {
		el, err := x.next(5 * time.Second)
		if err != nil {
			t.Fatalf("waiting for the carbon: %v; got %q", err, seen)
		}
		seen = append(seen, el)
		if strings.Contains(el, "<sent xmlns='urn:xmpp:carbons:2'>") && strings.Contains(el, "from the laptop") {
			break
		}
	}
	if !strings.Contains(strings.Join(seen, ""), "composing") {
		t.Fatalf("the held chat state was not flushed before the carbon: %q", seen)
	}
}

// The failed-login throttle sees SASL2 and FAST attempts too: wrong passwords over SASL2 and wrong tokens
// delay, then refuse that account from that address, while another account from the same address gets in.
// And SASL2's SCRAM carries the XEP-0474 hash of what the stream offered, like SASL.
func TestSASL2ThrottledAndSSDP(t *testing.T) {
	srv := Start(t, throttleYAML)
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	var outcomes []string
	for len(outcomes) < 8 {
		x := dialQuiet(t, srv, "127.0.0.1")
		for i := 0; i < 3 && len(outcomes) < 8; i++ {
			if len(outcomes)%2 == 0 {
				outcomes = append(outcomes, x.scram2("SCRAM-SHA-256", "alice", "wrong", "").kind)
				continue
			}
			x.send(`<authenticate xmlns='` + sasl2NS + `' mechanism='HT-SHA-256-NONE'><initial-response>` + htInitial("alice", "not-a-token", nil) +
				`</initial-response>` + userAgentEl("dev") + `</authenticate>`)
			outcomes = append(outcomes, x.sasl2Outcome().kind)
		}
		x.tcp.Close()
	}
	want := "not-authorized not-authorized not-authorized not-authorized not-authorized not-authorized temporary-auth-failure temporary-auth-failure"
	if got := strings.Join(outcomes, " "); got != want {
		t.Fatalf("outcomes %s, want %s", got, want)
	}
	x := dialQuiet(t, srv, "127.0.0.1")
	if r := x.scram2("SCRAM-SHA-256", "bob", "bob-secret", ""); r.kind != "success" {
		t.Fatalf("bob from the same address: %s", r.el)
	}

	// XEP-0474: h = H(sorted mechanisms joined by 0x1e, 0x1f, sorted channel-binding types joined by 0x1e).
	y, feat := dialTLS(t, srv, "ssdp", srv.TLSConfig())
	mechs := mechanisms(feat)
	sort.Strings(mechs)
	types := cbTypes(feat)
	sort.Strings(types)
	sum := sha256.Sum256([]byte(strings.Join(mechs, "\x1e") + "\x1f" + strings.Join(types, "\x1e")))
	nb := "n=bob,r=ssdpnonce"
	y.send(`<authenticate xmlns='` + sasl2NS + `' mechanism='SCRAM-SHA-256'><initial-response>` + b64s("n,,"+nb) + `</initial-response></authenticate>`)
	r := y.sasl2Outcome()
	if r.kind != "challenge" || !strings.HasSuffix(string(r.data), ",h="+base64.StdEncoding.EncodeToString(sum[:])) {
		t.Fatalf("server-first %q lacks the XEP-0474 hash of %v and %v", r.data, mechs, types)
	}
}
