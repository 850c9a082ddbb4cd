package conformance

// XMPP over WebSocket (RFC 7395), black-box: a raw WebSocket client checks the framing (one top-level element
// per message, each a document of its own, large stanzas never split), stream management resumption after the
// socket drops, discovery (XEP-0156), and xmpp.js (conformance/web, installed with npm) chats with a mellium
// client on TCP.
//
// The WebSocket endpoint is Parley's own (listen.http, /xmpp-websocket) once cmd/parley wires package
// xmpp/websocket. Until then each test runs the adapter itself, relaying every WebSocket connection to the
// server's direct-TLS c2s port, and says so in its log.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	pws "parley.im/parley/xmpp/websocket"
)

const (
	wsOpen  = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
	wsClose = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
)

var wiredOnce struct {
	sync.Once
	wired bool
}

// webSocketWired reports whether cmd/parley serves XMPP over WebSocket (it imports package xmpp/websocket).
func webSocketWired() bool {
	wiredOnce.Do(func() {
		files, _ := filepath.Glob("../cmd/parley/*.go")
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err == nil && bytes.Contains(b, []byte(`"parley.im/parley/xmpp/websocket"`)) {
				wiredOnce.wired = true
			}
		}
	})
	return wiredOnce.wired
}

// startWS starts Parley with its plain HTTP listener on a free loopback port, taken as a TLS-terminating proxy
// (websocket.trust_proxy_tls), as a deployment behind nginx would be.
func startWS(t *testing.T) *Server {
	t.Helper()
	// The harness writes the listen: block; the environment adds to it (unknown keys are ignored, so this also
	// works before the websocket section exists).
	t.Setenv("PARLEY_LISTEN_HTTP", "127.0.0.1:0")
	t.Setenv("PARLEY_WEBSOCKET_TRUST_PROXY_TLS", "true")
	return Start(t, "")
}

// wsBase returns the http:// base of the server's WebSocket endpoint and discovery documents.
func wsBase(t *testing.T, srv *Server) string {
	t.Helper()
	if webSocketWired() {
		if srv.Addrs["http"] == "" {
			t.Fatalf("parley has no plain HTTP listener (listen.http); ready file: %v", srv.Addrs)
		}
		return "http://" + srv.Addrs["http"]
	}
	t.Log("cmd/parley does not wire xmpp/websocket yet: the adapter runs in this test and relays to the direct-TLS c2s port")
	h, err := pws.New(pws.Config{TrustProxyTLS: true}, func(nc net.Conn, _ string, _ bool) {
		tc, err := tls.Dial("tcp", srv.Addrs["c2s_tls"], srv.TLSConfig())
		if err != nil {
			t.Errorf("relay: %v", err)
			nc.Close()
			return
		}
		go func() {
			io.Copy(tc, nc)
			tc.Close()
		}()
		io.Copy(nc, tc)
		nc.Close()
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs.URL
}

func wsURL(t *testing.T, srv *Server) string {
	return "ws" + strings.TrimPrefix(wsBase(t, srv), "http") + "/xmpp-websocket"
}

// wsClient is a raw RFC 7395 client. Every message it receives is checked to be one complete XML document
// whose namespaces are all declared in it, and recorded in the transcript.
type wsClient struct {
	t    *testing.T
	c    *websocket.Conn
	tr   *transcript
	msgs chan string
	done chan struct{}
	err  error
	buf  string
	all  []string
}

func dialWS(t *testing.T, url, name string) *wsClient {
	t.Helper()
	return dialWSHeader(t, url, name, nil)
}

// dialWSHeader is dialWS with extra request headers.
func dialWSHeader(t *testing.T, url, name string, hdr http.Header) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"xmpp"}, HTTPHeader: hdr})
	if err != nil {
		t.Fatalf("websocket dial %s: %v", url, err)
	}
	if c.Subprotocol() != "xmpp" {
		t.Fatalf("subprotocol %q, want xmpp", c.Subprotocol())
	}
	c.SetReadLimit(1 << 22)
	w := &wsClient{t: t, c: c, tr: newTranscript(t, name, nil), msgs: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			typ, b, err := c.Read(context.Background())
			if err != nil {
				w.err = err
				return
			}
			w.tr.record("S:", b)
			if typ != websocket.MessageText {
				t.Errorf("%s: binary message", name)
			}
			if err := checkStandalone(b); err != nil {
				t.Errorf("%s: message is not one standalone element (%v): %.300s", name, err, b)
			}
			w.msgs <- string(b)
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return w
}

// checkStandalone parses msg as a document: exactly one root element, and every prefix it uses declared in it.
// A stanza must be in jabber:client by its own declaration (RFC 7395 section 3.3.3).
func checkStandalone(msg []byte) error {
	d := xml.NewDecoder(bytes.NewReader(msg))
	depth, roots := 0, 0
	var root xml.Name
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				root = tok.Name
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(tok)) > 0 {
				return errors.New("text outside the element")
			}
		}
	}
	if roots != 1 || depth != 0 {
		return fmt.Errorf("%d root elements", roots)
	}
	// Namespace resolution: encoding/xml leaves an undeclared prefix as the Space of the name.
	d = xml.NewDecoder(bytes.NewReader(msg))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Space == "" || !strings.Contains(se.Name.Space, ":") {
				return fmt.Errorf("element %s has no namespace (%q)", se.Name.Local, se.Name.Space)
			}
		}
	}
	switch root.Local {
	case "message", "presence", "iq":
		if !bytes.Contains(msg[:bytes.IndexByte(msg, '>')], []byte("jabber:client")) {
			return errors.New("stanza without xmlns='jabber:client'")
		}
	}
	return nil
}

func (w *wsClient) send(s string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w.tr.record("C:", []byte(s))
	if err := w.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		w.t.Fatalf("websocket send: %v", err)
	}
}

// next returns the next message.
func (w *wsClient) next(d time.Duration) string {
	w.t.Helper()
	select {
	case m := <-w.msgs:
		w.all = append(w.all, m)
		return m
	case <-w.done:
		select {
		case m := <-w.msgs:
			w.all = append(w.all, m)
			return m
		default:
		}
		w.t.Fatalf("websocket closed: %v", w.err)
	case <-time.After(d):
		w.t.Fatalf("no message within %s", d)
	}
	return ""
}

// await reads messages until re matches the unread input (messages joined) and returns the match; the input up
// to the match is consumed.
func (w *wsClient) await(re string, d time.Duration) []string {
	w.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(d)
	for {
		if m := rx.FindStringSubmatchIndex(w.buf); m != nil {
			out := make([]string, len(m)/2)
			for i := range out {
				if m[2*i] >= 0 {
					out[i] = w.buf[m[2*i]:m[2*i+1]]
				}
			}
			w.buf = w.buf[m[1]:]
			return out
		}
		left := time.Until(deadline)
		if left <= 0 {
			w.t.Fatalf("waiting for %s: timeout; unread input:\n%.2000s", re, w.buf)
		}
		w.buf += w.next(left)
	}
}

// login authenticates with PLAIN and returns after the restarted stream's features.
func (w *wsClient) login(user, password string) (features string) {
	w.t.Helper()
	w.send(wsOpen)
	if m := w.next(5 * time.Second); !strings.HasPrefix(m, "<open ") || !strings.Contains(m, "urn:ietf:params:xml:ns:xmpp-framing") {
		w.t.Fatalf("first message is not <open/>: %s", m)
	}
	feats := w.next(5 * time.Second)
	if !strings.HasPrefix(feats, "<stream:features") || !strings.Contains(feats, "PLAIN") {
		w.t.Fatalf("features: %s", feats)
	}
	if strings.Contains(feats, "urn:ietf:params:xml:ns:xmpp-tls") {
		w.t.Errorf("STARTTLS offered over WebSocket (RFC 7395 section 3.8): %s", feats)
	}
	w.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + plainB64(user, password) + `</auth>`)
	if m := w.next(5 * time.Second); !strings.HasPrefix(m, "<success") {
		w.t.Fatalf("auth: %s", m)
	}
	w.send(wsOpen)
	if m := w.next(5 * time.Second); !strings.HasPrefix(m, "<open ") {
		w.t.Fatalf("after restart: %s", m)
	}
	return w.next(5 * time.Second)
}

func (w *wsClient) bindAndEnable() (full, smID string) {
	w.t.Helper()
	w.send(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`)
	full = w.await(`<jid>([^<]+)</jid>`, 5*time.Second)[1]
	w.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
	smID = w.await(`<enabled xmlns='urn:xmpp:sm:3' id='([^']+)' resume='true'`, 5*time.Second)[1]
	w.send(`<presence xmlns='jabber:client'/>`)
	return full, smID
}

// A session over WebSocket: stream restart after SASL, bind, a stanza each way with a TCP client, stanzas of
// 10 KB and 200 KB each arriving as exactly one message, and a clean close.
func TestWebSocketSession(t *testing.T) {
	srv := startWS(t)
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := Dial(t, srv, "bob", "bob-secret", "tcp")
	bob.Send(`<presence/>`)

	alice := dialWS(t, wsURL(t, srv), "alice/ws")
	feats := alice.login("alice", "alice-secret")
	for _, want := range []string{"<stream:features xmlns:stream='http://etherx.jabber.org/streams'", "urn:ietf:params:xml:ns:xmpp-bind", "urn:xmpp:sm:3"} {
		if !strings.Contains(feats, want) {
			t.Fatalf("features after restart lack %q: %s", want, feats)
		}
	}
	alice.send(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>ws</resource></bind></iq>`)
	aliceJID := alice.await(`<jid>([^<]+)</jid>`, 5*time.Second)[1]
	alice.send(`<presence xmlns='jabber:client'/>`)

	// Client stanzas with and without their own xmlns='jabber:client' are both accepted.
	alice.send(`<message xmlns='jabber:client' to='` + bob.JID.String() + `' type='chat'><body>hello over websocket</body></message>`)
	bob.Expect(5*time.Second, "hello over websocket", `from="`+aliceJID+`"`)
	alice.send(`<message to='` + bob.JID.String() + `' type='chat'><body>no namespace declared</body></message>`)
	bob.Expect(5*time.Second, "no namespace declared")

	bob.Send(`<message to='` + aliceJID + `' type='chat'><body>hello from tcp</body></message>`)
	alice.await(`<body>hello from tcp</body>`, 5*time.Second)
	for _, n := range []int{10_000, 200_000} {
		body := strings.Repeat("z", n)
		bob.Send(`<message to='` + aliceJID + `' type='chat' id='big` + fmt.Sprint(n) + `'><body>` + body + `</body></message>`)
		for {
			m := alice.next(10 * time.Second)
			if !strings.HasPrefix(m, "<message") {
				continue // presence
			}
			if !strings.Contains(m, `big`+fmt.Sprint(n)) || !strings.Contains(m, "<body>"+body+"</body>") || !strings.HasSuffix(m, "</message>") {
				t.Fatalf("the %d-byte stanza did not arrive whole in one message: %d bytes: %.200s", n, len(m), m)
			}
			break
		}
	}
	// A 200 KB stanza from the WebSocket side reaches the TCP client.
	alice.send(`<message xmlns='jabber:client' to='` + bob.JID.String() + `' type='chat'><body>big:` + strings.Repeat("q", 200_000) + `</body></message>`)
	bob.Expect(10*time.Second, "big:qqqq")

	alice.send(wsClose)
	alice.await(`<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`, 5*time.Second)
	select {
	case <-alice.done:
		if st := websocket.CloseStatus(alice.err); st != websocket.StatusNormalClosure {
			t.Fatalf("websocket closed with %v, want 1000 (%v)", st, alice.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not close the websocket after <close/>")
	}
}

// XEP-0198 over WebSocket: the socket drops without <close/>, messages sent meanwhile wait in the hibernating
// session, and a new WebSocket resumes it and gets each unacknowledged message once, in order.
func TestWebSocketResume(t *testing.T) {
	srv := startWS(t)
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	url := wsURL(t, srv)
	bob := dialWS(t, url, "bob/ws1")
	bob.login("bob", "bob-secret")
	bobJID, smID := bob.bindAndEnable()
	alice := Dial(t, srv, "alice", "alice-secret", "")

	for i := 0; i < 10; i++ {
		alice.Send(fmt.Sprintf(`<message to='%s' type='chat' id='m%d'><body>msg %d</body></message>`, bobJID, i, i))
	}
	for i := 0; i < 10; i++ {
		bob.await(fmt.Sprintf(`<body>msg %d</body>`, i), 5*time.Second)
	}
	// Stanza 1 is bob's own presence; messages 0..4 are stanzas 2..6.
	bob.send(`<a xmlns='urn:xmpp:sm:3' h='6'/>`)
	time.Sleep(100 * time.Millisecond)
	bob.c.CloseNow() // no <close/>, no close frame: the phone lost its network

	for i := 10; i < 20; i++ {
		alice.Send(fmt.Sprintf(`<message to='%s' type='chat' id='m%d'><body>msg %d</body></message>`, bobJID, i, i))
	}
	time.Sleep(300 * time.Millisecond)

	bob2 := dialWS(t, url, "bob/ws2")
	bob2.login("bob", "bob-secret")
	bob2.send(fmt.Sprintf(`<resume xmlns='urn:xmpp:sm:3' previd='%s' h='6'/>`, smID))
	bob2.await(`<resumed xmlns='urn:xmpp:sm:3' previd='[^']+' h='\d+'/>`, 5*time.Second)
	got := bob2.await(`(?s)(.*<body>msg 19</body>)`, 10*time.Second)[1]
	last := -1
	for i := 0; i < 20; i++ {
		want := 1
		if i < 5 {
			want = 0
		}
		if c := strings.Count(got, fmt.Sprintf("<body>msg %d</body>", i)); c != want {
			t.Errorf("msg %d delivered %d times after resumption, want %d", i, c, want)
		}
	}
	for _, m := range regexp.MustCompile(`<body>msg (\d+)</body>`).FindAllStringSubmatch(got, -1) {
		var k int
		fmt.Sscan(m[1], &k)
		if k <= last {
			t.Errorf("out of order: msg %d after msg %d", k, last)
		}
		last = k
	}
	bob2.send(`<message xmlns='jabber:client' to='` + alice.JID.String() + `' type='chat'><body>resumed over websocket</body></message>`)
	alice.Expect(5*time.Second, "resumed over websocket")
}

// Upgrades without the xmpp subprotocol are refused (RFC 7395 section 3.2); discovery documents advertise the
// endpoint (XEP-0156).
func TestWebSocketHandshakeAndDiscovery(t *testing.T) {
	srv := startWS(t)
	base := wsBase(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/xmpp-websocket", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("upgrade without the xmpp subprotocol: %v %v; want 400", err, resp)
	}
	_, resp, err = websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/xmpp-websocket",
		&websocket.DialOptions{Subprotocols: []string{"xmpp"}, HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("upgrade from a foreign origin: %v %v; want 403", err, resp)
	}

	resp, err = http.Get(base + "/.well-known/host-meta")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := "wss://" + strings.TrimPrefix(base, "http://") + "/xmpp-websocket" // loopback proxy: wss
	if !strings.Contains(string(b), `rel="urn:xmpp:alt-connections:websocket"`) || !strings.Contains(string(b), `href="`+want+`"`) {
		t.Fatalf("host-meta: %s", b)
	}
	resp, err = http.Get(base + "/.well-known/host-meta.json")
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Links []struct{ Rel, Href string } `json:"links"`
	}
	err = json.NewDecoder(resp.Body).Decode(&j)
	resp.Body.Close()
	if err != nil || len(j.Links) != 1 || j.Links[0].Rel != "urn:xmpp:alt-connections:websocket" || j.Links[0].Href != want {
		t.Fatalf("host-meta.json: %+v %v", j, err)
	}
}

var xmppjsOnce struct {
	sync.Once
	node []string
	err  error
}

// requireXmppJS returns the node command line for the xmpp.js peer, or skips (fails with
// PARLEY_REQUIRE_SERVICES) when node or conformance/web/node_modules is missing.
func requireXmppJS(t *testing.T) []string {
	t.Helper()
	xmppjsOnce.Do(func() {
		node, err := exec.LookPath("node")
		if err != nil {
			xmppjsOnce.err = fmt.Errorf("node not found: %v", err)
			return
		}
		if _, err := os.Stat(filepath.Join("web", "node_modules", "@xmpp", "client", "package.json")); err != nil {
			xmppjsOnce.err = fmt.Errorf("@xmpp/client is not installed (npm ci --prefix conformance/web): %v", err)
			return
		}
		xmppjsOnce.node = []string{node}
		// Node 20 has WebSocket behind a flag; 22 and later have it built in.
		out, err := exec.Command(node, "-e", "process.stdout.write(typeof WebSocket)").Output()
		if err != nil || string(out) != "function" {
			xmppjsOnce.node = append(xmppjsOnce.node, "--experimental-websocket")
		}
	})
	requirePeer(t, "xmpp.js (node and conformance/web/node_modules)", xmppjsOnce.err)
	return xmppjsOnce.node
}

// xmpp.js, a client nobody here wrote, logs in over WebSocket and chats with a mellium client on TCP,
// including a 100 KB stanza each way.
func TestWebSocketXmppJS(t *testing.T) {
	node := requireXmppJS(t)
	srv := startWS(t)
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := Dial(t, srv, "bob", "bob-secret", "mellium")
	bob.Send(`<presence/>`)

	script, _ := filepath.Abs(filepath.Join("web", "xmppjs_client.mjs"))
	args := append(node[1:], script, "--service", wsURL(t, srv), "--domain", "localhost", "--username", "alice",
		"--password", "alice-secret", "--peer", bob.JID.String(), "--send", "hello from xmpp.js",
		"--expect", "hello from mellium", "--timeout", "30")
	p := startPeer(t, "xmpp.js", exec.Command(node[0], args...))
	online := p.waitLine(30*time.Second, "online ")
	aliceJID := strings.Fields(strings.TrimPrefix(online, "online "))[0]
	if !strings.HasPrefix(aliceJID, "alice@localhost/") {
		t.Fatalf("xmpp.js bound %q", aliceJID)
	}
	expectWhilePeer(bob, p, 15*time.Second, "hello from xmpp.js", `from="`+aliceJID+`"`)
	expectWhilePeer(bob, p, 15*time.Second, "big:yyyy")
	bob.Send(`<message to='` + aliceJID + `' type='chat'><body>big:` + strings.Repeat("x", 100_000) + `</body></message>`)
	p.waitLine(15*time.Second, "big message 100004")
	bob.Send(`<message to='` + aliceJID + `' type='chat'><body>hello from mellium</body></message>`)
	p.waitLine(15*time.Second, "got expected")
	expectWhilePeer(bob, p, 15*time.Second, "bye from xmpp.js")
	p.waitLine(15*time.Second, "closed")
	p.wait(15 * time.Second)
}
