package conformance

// A real browser against a real Parley: headless Chromium (Debian's chromium, driven by playwright-core) loads
// Converse.js (conformance/web, installed with npm) from a page this test serves and logs in through Converse's
// login form over XMPP over WebSocket (listen.http, taken as behind a TLS proxy as in startWS). In the contact
// list it opens the chat with bob, a mellium client on TCP, answers bob's message by typing into the chat, and
// uploads a PNG through the chat toolbar's file input: Converse itself asks the XEP-0363 service for a slot,
// PUTs the file to Parley's HTTPS listener from another origin (CORS) and sends the GET URL. bob must receive
// the typed text and the URL, and the URL must give back the uploaded bytes. The browser may reach nothing but
// loopback. The page runs Converse at loglevel debug, so the peer log holds a C:/S: transcript of the
// WebSocket. The screenshot is kept in $PARLEY_ARTIFACTS when that is set (docs/screenshots/converse.png is
// one).
//
// Without chromium, node or conformance/web/node_modules the test skips; with PARLEY_REQUIRE_SERVICES or CI
// set it fails instead.

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// chromiumPath is Debian's chromium; PARLEY_TEST_CHROMIUM names another.
func chromiumPath() string {
	if p := os.Getenv("PARLEY_TEST_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

var converseOnce struct {
	sync.Once
	node string
	err  error
}

// requireConverse returns the node binary for web/converse_browser.mjs, or skips the test (fails it with
// PARLEY_REQUIRE_SERVICES or CI set) when node, chromium or the npm packages are missing.
func requireConverse(t *testing.T) string {
	t.Helper()
	converseOnce.Do(func() {
		node, err := exec.LookPath("node")
		if err != nil {
			converseOnce.err = fmt.Errorf("node not found: %v", err)
			return
		}
		for _, f := range []string{"converse.js/dist/converse.min.js", "converse.js/dist/converse.min.css",
			"playwright-core/package.json"} {
			if _, err := os.Stat(filepath.Join("web", "node_modules", f)); err != nil {
				converseOnce.err = fmt.Errorf("%s is not installed (npm ci --prefix conformance/web): %v", f, err)
				return
			}
		}
		if _, err := os.Stat(chromiumPath()); err != nil {
			converseOnce.err = fmt.Errorf("chromium is not installed (apt-get install chromium): %v", err)
			return
		}
		converseOnce.node = node
	})
	if converseOnce.err != nil && os.Getenv("CI") != "" {
		t.Fatalf("Converse.js in chromium is required (CI is set) but unavailable: %v", converseOnce.err)
	}
	requirePeer(t, "Converse.js in chromium (node, chromium and conformance/web/node_modules)", converseOnce.err)
	return converseOnce.node
}

// servePage serves web/converse.html at / and Converse's dist directory at /dist/, and logs every request, so
// that the log shows what the page fetched.
func servePage(t *testing.T) *httptest.Server {
	t.Helper()
	dist, _ := filepath.Abs(filepath.Join("web", "node_modules", "converse.js", "dist"))
	page, _ := filepath.Abs(filepath.Join("web", "converse.html"))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, page) })
	mux.Handle("GET /dist/", http.StripPrefix("/dist/", http.FileServer(http.Dir(dist))))
	var mu sync.Mutex
	var log []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		mux.ServeHTTP(sw, r)
		mu.Lock()
		log = append(log, fmt.Sprintf("%d %s %s", sw.code, r.Method, r.URL.Path))
		mu.Unlock()
	}))
	t.Cleanup(func() {
		hs.Close()
		if testing.Verbose() || t.Failed() {
			mu.Lock()
			t.Logf("test page server:\n%s", strings.Join(log, "\n"))
			mu.Unlock()
		}
	})
	return hs
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// artifactPath returns where the test keeps a file worth looking at: $PARLEY_ARTIFACTS, else the test's
// temporary directory.
func artifactPath(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("PARLEY_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// testPicture writes a small PNG to upload, so that Converse shows it inline.
func testPicture(t *testing.T) (string, []byte) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 320, 180))
	for y := 0; y < 180; y++ {
		for x := 0; x < 320; x++ {
			c := color.RGBA{R: uint8(40 + x/2), G: uint8(90 + y/2), B: 200, A: 255}
			if (x/20+y/20)%2 == 0 {
				c.B = 150
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "parley-upload.png")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b.Bytes()
}

// befriend makes alice and bob contacts of each other (roster items, subscription both) in a short TCP session
// of alice's, so that Converse lists bob with his presence. It also avoids a Converse limit: Converse 12 to
// 14 open no chat with a JID outside the roster on a server without XEP-0191 blocking (it waits for the block
// list that never comes).
func befriend(t *testing.T, srv *Server, bob *Client) {
	t.Helper()
	alice := Dial(t, srv, "alice", "alice-secret", "setup")
	// Subscription requests and roster pushes go to the resources that have asked for the roster (RFC 6121).
	for _, c := range []*Client{bob, alice} {
		c.Send(`<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>`)
		c.Expect(5*time.Second, `id="r0"`, `type="result"`)
	}
	alice.Send(`<presence/>`)
	alice.Send(`<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'/></query></iq>`)
	alice.Expect(5*time.Second, `id="r1"`, `type="result"`)
	alice.Send(`<presence type='subscribe' to='bob@localhost'/>`)
	bob.Expect(5*time.Second, `type="subscribe"`, `from="alice@localhost`)
	bob.Send(`<presence type='subscribed' to='alice@localhost'/>`)
	bob.Send(`<presence type='subscribe' to='alice@localhost'/>`)
	alice.Expect(5*time.Second, `type="subscribe"`, `from="bob@localhost`)
	alice.Send(`<presence type='subscribed' to='bob@localhost'/>`)
	alice.Expect(5*time.Second, `jabber:iq:roster`, `subscription="both"`)
	alice.S.Close()
}

// browserEvent is one JSON line of web/converse_browser.mjs.
type browserEvent struct {
	Event string `json:"event"`
	JID   string `json:"jid"`
	URL   string `json:"url"`
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
}

func (p *peer) event(d time.Duration, name string) browserEvent {
	p.t.Helper()
	line := p.waitLine(d, `"event":"`+name+`"`)
	var e browserEvent
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		p.t.Fatalf("%s: %q: %v", p.name, line, err)
	}
	return e
}

// TestConverseBrowser: Converse.js in Chromium logs in over WebSocket, chats with a TCP client and uploads a file
// through XEP-0363; the TCP client gets the text and a URL that serves the same bytes.
func TestConverseBrowser(t *testing.T) {
	node := requireConverse(t)
	page := servePage(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpsPort := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	// As startWS: the plain listener is taken as behind a TLS-terminating proxy on loopback. The upload URLs
	// point at the HTTPS listener, so its port is fixed before the server starts.
	t.Setenv("PARLEY_LISTEN_HTTP", "127.0.0.1:0")
	t.Setenv("PARLEY_LISTEN_HTTPS", "127.0.0.1:"+httpsPort)
	t.Setenv("PARLEY_WEBSOCKET_TRUST_PROXY_TLS", "true")
	srv := Start(t, fmt.Sprintf("httpupload:\n  public_url: https://localhost:%s\n  max_file_size: 1048576\n"+
		"websocket:\n  allowed_origins: [%q]\n", httpsPort, page.URL))
	if srv.Addrs["http"] == "" || srv.Addrs["https"] == "" {
		t.Fatalf("parley lacks listen.http or listen.https; ready file: %v", srv.Addrs)
	}
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := Dial(t, srv, "bob", "bob-secret", "mellium")
	bob.Send(`<presence/>`)
	befriend(t, srv, bob)

	file, want := testPicture(t)
	shot := artifactPath(t, "converse.png")
	os.Remove(shot)
	ws := "ws://" + srv.Addrs["http"] + "/xmpp-websocket"
	script, _ := filepath.Abs(filepath.Join("web", "converse_browser.mjs"))
	p := startPeer(t, "converse", exec.Command(node, script,
		"--page", page.URL+"/?loglevel=debug&ws="+url.QueryEscape(ws), "--chromium", chromiumPath(),
		"--jid", "alice@localhost", "--password", "alice-secret", "--peer", "bob@localhost",
		"--expect", "hello from mellium", "--send", "hello from Converse.js",
		"--file", file, "--screenshot", shot, "--timeout", "50"))

	alice := p.event(30*time.Second, "online").JID
	if !strings.HasPrefix(alice, "alice@localhost/") {
		t.Fatalf("Converse bound %q", alice)
	}
	bob.Send(`<message to='` + alice + `' type='chat' id='m1'><body>hello from mellium</body></message>`)
	p.event(25*time.Second, "received")
	expectWhilePeer(bob, p, 15*time.Second, "<body", "hello from Converse.js", `from="`+alice+`"`)

	// The upload: the message carries the GET URL in its body and in jabber:x:oob (XEP-0066).
	raw := expectWhilePeer(bob, p, 20*time.Second, "jabber:x:oob", `from="`+alice+`"`)
	var m struct {
		Body string `xml:"body"`
		OOB  struct {
			URL string `xml:"url"`
		} `xml:"jabber:x:oob x"`
	}
	if err := xml.Unmarshal([]byte(raw), &m); err != nil || m.OOB.URL == "" {
		t.Fatalf("upload message without an OOB URL (%v):\n%s", err, raw)
	}
	if m.Body != "" && m.Body != m.OOB.URL {
		t.Errorf("body %q is not the OOB URL %q", m.Body, m.OOB.URL)
	}
	if !strings.HasPrefix(m.OOB.URL, "https://localhost:"+httpsPort+"/upload/") ||
		!strings.HasSuffix(m.OOB.URL, "/parley-upload.png") {
		t.Errorf("upload URL %s is not a local-backend URL for parley-upload.png", m.OOB.URL)
	}
	resp, got := httpGet(t, httpClient(srv), m.OOB.URL)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
		t.Fatalf("GET %s: %s, %d bytes; want the %d bytes uploaded", m.OOB.URL, resp.Status, len(got), len(want))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "image/png" {
		t.Errorf("uploaded file served as %q, want image/png", ct)
	}
	if u := p.event(15*time.Second, "uploaded").URL; u != m.OOB.URL {
		t.Errorf("the page shows %s, the message carried %s", u, m.OOB.URL)
	}

	p.event(15*time.Second, "screenshot")
	p.event(15*time.Second, "done")
	p.wait(15 * time.Second)
	if strings.Contains(p.Output(), `"event":"blocked"`) {
		t.Errorf("the page tried to reach beyond loopback:\n%s", p.Output())
	}
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil || cfg.Width == 0 || cfg.Height == 0 {
		t.Fatalf("screenshot %s is not a PNG (%d bytes): %v", shot, len(b), err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot (%dx%d, %d bytes): %s", cfg.Width, cfg.Height, len(b), shot)
}
