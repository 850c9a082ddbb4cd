package websocket

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"parley.im/parley/xmpp/stream"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// serve starts an HTTP server with the handler and returns it and the WebSocket URL.
func serve(t *testing.T, cfg Config, accept AcceptFunc) (*Handler, string) {
	t.Helper()
	h, err := New(cfg, accept, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return h, "ws" + strings.TrimPrefix(srv.URL, "http") + h.cfg.Path
}

func dial(t *testing.T, url string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	if opts == nil {
		opts = &websocket.DialOptions{}
	}
	if opts.Subprotocols == nil {
		opts.Subprotocols = []string{Subprotocol}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(1 << 22)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func send(t *testing.T, c *websocket.Conn, s string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func recv(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("recv: message type %v", typ)
	}
	return string(b)
}

// recvClosed waits for the server to close the WebSocket and returns the status.
func recvClosed(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return websocket.CloseStatus(err)
		}
		t.Logf("before close: %.200s", b)
	}
}

// trusted is the configuration for tests: httptest serves plain HTTP on loopback, taken as a TLS proxy.
func trusted() Config { return Config{TrustProxyTLS: true} }

const (
	openMsg      = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>"
	clientClose  = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
	features     = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
	featuresSent = "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
)

// writeChunked writes b in 16 KiB writes, as the c2s queue does with coalesced stanzas.
func writeChunked(c net.Conn, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), 16<<10)
		if _, err := c.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func bigStanza(n int) string {
	return "<message to='b@example.org' id='big'><body>" + strings.Repeat("0123456789", n/10) + "</body></message>"
}

// TestSession plays a session through the adapter with a server that reads like c2s: open, features, a
// stanza each way, stanzas of 10 KB and 200 KB each in one message, a restart, and a clean close.
func TestSession(t *testing.T) {
	done := make(chan struct{})
	var gotSecure atomic.Bool
	var gotIP atomic.Value
	_, url := serve(t, trusted(), func(nc net.Conn, ip string, secure bool) {
		defer close(done)
		gotSecure.Store(secure)
		gotIP.Store(ip)
		r := stream.NewReader(nc, stream.Limits{MaxElement: 256 << 10})
		h, err := r.Header()
		if err != nil || h.To != "example.org" || h.NS != "jabber:client" || h.Version != "1.0" {
			t.Errorf("header %+v, %v", h, err)
			nc.Close()
			return
		}
		nc.Write([]byte(srvHeader + features))
		el, err := r.Next()
		if err != nil || el.Local != "message" || el.NS != "jabber:client" || string(el.To) != "b@example.org" {
			t.Errorf("first stanza: %v %v", el, err)
			nc.Close()
			return
		}
		small := "<message from='b@example.org/r' to='a@example.org/r'><body>hi</body></message>"
		writeChunked(nc, []byte(small+bigStanza(10_000)+small+bigStanza(200_000)))
		el, err = r.Next()
		if err != nil || len(el.Raw) < 200_000 || el.NS != "jabber:client" {
			t.Errorf("large stanza from the client: %d bytes, %v", len(el.Raw), err)
			nc.Close()
			return
		}
		nc.Write([]byte("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"))
		r.Restart()
		if _, err := r.Header(); err != nil {
			t.Errorf("restart: %v", err)
			nc.Close()
			return
		}
		nc.Write([]byte(strings.Replace(srvHeader, "abc", "def", 1) + "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"))
		if _, err := r.Next(); err != io.EOF {
			t.Errorf("after <close/>: %v, want io.EOF", err)
		}
		nc.Write([]byte("</stream:stream>"))
		nc.Close()
	})
	c := dial(t, url, nil)
	if c.Subprotocol() != "xmpp" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	send(t, c, openMsg)
	if got := recv(t, c); got != "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='abc' from='example.org' version='1.0' xml:lang='en'/>" {
		t.Fatalf("open: %s", got)
	}
	if got := recv(t, c); got != featuresSent {
		t.Fatalf("features: %s", got)
	}
	send(t, c, "<message xmlns='jabber:client' to='b@example.org' type='chat'><body>hello</body></message>")
	wantSmall := "<message xmlns='jabber:client' from='b@example.org/r' to='a@example.org/r'><body>hi</body></message>"
	for i, want := range []string{wantSmall, strings.Replace(bigStanza(10_000), "<message ", "<message xmlns='jabber:client' ", 1),
		wantSmall, strings.Replace(bigStanza(200_000), "<message ", "<message xmlns='jabber:client' ", 1)} {
		if got := recv(t, c); got != want {
			t.Fatalf("message %d: %d bytes %.100q..., want %d bytes", i, len(got), got, len(want))
		}
	}
	// A client stanza of 200 KB in one message, without xmlns (the default of the synthetic header applies).
	send(t, c, bigStanza(200_000))
	if got := recv(t, c); got != "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>" {
		t.Fatalf("success: %s", got)
	}
	send(t, c, openMsg)
	if got := recv(t, c); !strings.HasPrefix(got, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='def'") {
		t.Fatalf("restart open: %s", got)
	}
	if got := recv(t, c); got != "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>" {
		t.Fatalf("restart features: %s", got)
	}
	send(t, c, clientClose)
	if got := recv(t, c); got != closeMsg {
		t.Fatalf("close: %s", got)
	}
	if st := recvClosed(t, c); st != websocket.StatusNormalClosure {
		t.Fatalf("close status %v, want 1000", st)
	}
	<-done
	if !gotSecure.Load() || gotIP.Load() != "127.0.0.1" {
		t.Fatalf("accept got secure=%v ip=%v", gotSecure.Load(), gotIP.Load())
	}
}

// An oversized stanza is refused by the stream reader (c2s.max_stanza) with a stream error that reaches the
// client as its own message, followed by <close/>.
func TestStanzaTooLarge(t *testing.T) {
	_, url := serve(t, trusted(), func(nc net.Conn, _ string, _ bool) {
		r := stream.NewReader(nc, stream.Limits{MaxElement: 256 << 10})
		if _, err := r.Header(); err != nil {
			t.Error(err)
		}
		nc.Write([]byte(srvHeader + features))
		_, err := r.Next()
		var se *stream.Error
		if !errors.As(err, &se) || se.Condition != "policy-violation" {
			t.Errorf("oversized stanza: %v", err)
		}
		nc.Write([]byte("<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"))
		nc.Close()
	})
	c := dial(t, url, nil)
	send(t, c, openMsg)
	recv(t, c)
	recv(t, c)
	send(t, c, bigStanza(264_000)) // over the reader's 262144, under max_message
	if got := recv(t, c); got != "<stream:error xmlns:stream='http://etherx.jabber.org/streams'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>" {
		t.Fatalf("got %s", got)
	}
	if got := recv(t, c); got != closeMsg {
		t.Fatalf("got %s", got)
	}
}

// A message over max_message is refused by the WebSocket layer (status 1009).
func TestMessageTooBig(t *testing.T) {
	errc := make(chan error, 1)
	_, url := serve(t, Config{TrustProxyTLS: true, MaxMessage: 20_000}, func(nc net.Conn, _ string, _ bool) {
		_, err := io.Copy(io.Discard, nc)
		errc <- err
		nc.Close()
	})
	c := dial(t, url, nil)
	send(t, c, strings.Repeat(" ", 19_000))
	send(t, c, bigStanza(30_000))
	if st := recvClosed(t, c); st != websocket.StatusMessageTooBig {
		t.Fatalf("status %v, want 1009", st)
	}
	if err := <-errc; err == nil {
		t.Fatal("server read no error")
	}
}

func TestSubprotocolRequired(t *testing.T) {
	_, url := serve(t, trusted(), func(nc net.Conn, _ string, _ bool) { nc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, protos := range [][]string{{}, {"chat"}} {
		_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: protos})
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("subprotocols %v: %v, %v; want 400", protos, err, resp)
		}
	}
	// Offered among others, xmpp is chosen.
	c := dial(t, url, &websocket.DialOptions{Subprotocols: []string{"chat", "xmpp"}})
	if c.Subprotocol() != "xmpp" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	// Plain HTTP on the endpoint says an upgrade is needed.
	resp, err := http.Get("http" + strings.TrimPrefix(url, "ws"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: %d, want 426", resp.StatusCode)
	}
}

func TestOrigins(t *testing.T) {
	h, err := New(Config{AllowedOrigins: []string{"https://app.example.com", "https://*.example.net", "http://localhost:8080"}, PublicURL: "wss://xmpp.example.org/xmpp-websocket"},
		func(net.Conn, string, bool) {}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		origin, host string
		ok           bool
	}{
		{"", "chat.example.org", true},                         // not a browser
		{"https://chat.example.org", "chat.example.org", true}, // same host
		{"https://CHAT.example.org", "chat.example.org", true}, // case
		{"http://chat.example.org:8443", "chat.example.org:8443", true},
		{"https://chat.example.org:8443", "chat.example.org", false}, // other port
		{"https://xmpp.example.org", "127.0.0.1:5280", true},         // host of public_url (behind a proxy)
		{"https://app.example.com", "chat.example.org", true},
		{"http://app.example.com", "chat.example.org", false}, // scheme counts
		{"https://evil.example.com", "chat.example.org", false},
		{"https://a.example.net", "chat.example.org", true},
		{"https://a.b.example.net", "chat.example.org", true},
		{"https://example.net", "chat.example.org", false},
		{"https://evilexample.net", "chat.example.org", false},
		{"http://localhost:8080", "chat.example.org", true},
		{"http://localhost:8081", "chat.example.org", false},
		{"null", "chat.example.org", false},
		{"https://chat.example.org/path", "chat.example.org", false},
		{"file://", "chat.example.org", false},
	} {
		r := httptest.NewRequest("GET", "http://"+tc.host+"/xmpp-websocket", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := h.originAllowed(r); got != tc.ok {
			t.Errorf("origin %q host %q: allowed %v, want %v", tc.origin, tc.host, got, tc.ok)
		}
	}
	any, _ := New(Config{AllowedOrigins: []string{"*"}}, func(net.Conn, string, bool) {}, testLogger(t))
	r := httptest.NewRequest("GET", "http://chat.example.org/xmpp-websocket", nil)
	r.Header.Set("Origin", "https://anything.example")
	if !any.originAllowed(r) {
		t.Error(`"*" does not allow every origin`)
	}

	// End to end: a foreign origin gets 403 before any upgrade.
	_, url := serve(t, trusted(), func(nc net.Conn, _ string, _ bool) { nc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"xmpp"}, HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v, %v; want 403", err, resp)
	}
	c := dial(t, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http" + strings.TrimPrefix(strings.TrimSuffix(url, "/xmpp-websocket"), "ws")}}})
	c.CloseNow()
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trust   bool
		remote  string
		headers map[string]string
		secure  bool
		ip      string
	}{
		{"direct, untrusted", false, "192.0.2.1:1234", nil, false, "192.0.2.1"},
		{"loopback, untrusted", false, "127.0.0.1:1234", map[string]string{"X-Forwarded-For": "198.51.100.7"}, false, "127.0.0.1"},
		{"proxy on loopback", true, "127.0.0.1:1234", map[string]string{"X-Forwarded-For": "203.0.113.9, 198.51.100.7", "X-Forwarded-Proto": "https"}, true, "198.51.100.7"},
		{"proxy with X-Real-IP", true, "127.0.0.1:1234", map[string]string{"X-Real-IP": "2001:db8::1", "X-Forwarded-For": "198.51.100.7"}, true, "2001:db8::1"},
		{"proxy says http", true, "[::1]:1234", map[string]string{"X-Forwarded-Proto": "http"}, false, "::1"},
		{"Forwarded header", true, "127.0.0.1:1234", map[string]string{"Forwarded": `for=192.0.2.60;proto=http, for="[2001:db8::2]:4711";proto=https`}, true, "2001:db8::2"},
		{"garbage address ignored", true, "127.0.0.1:1234", map[string]string{"X-Forwarded-For": "not-an-ip"}, true, "127.0.0.1"},
		{"trust ignored off loopback", true, "192.0.2.1:1234", map[string]string{"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}, false, "192.0.2.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := New(Config{TrustProxyTLS: tc.trust}, func(net.Conn, string, bool) {}, testLogger(t))
			r := httptest.NewRequest("GET", "http://example.org/xmpp-websocket", nil)
			r.RemoteAddr = tc.remote
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			if secure, ip := h.classify(r); secure != tc.secure || ip != tc.ip {
				t.Fatalf("secure=%v ip=%s; want %v %s", secure, ip, tc.secure, tc.ip)
			}
		})
	}
}

func TestInsecureRefused(t *testing.T) {
	_, url := serve(t, Config{}, func(nc net.Conn, _ string, _ bool) { nc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"xmpp"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("plain ws without trust: %v, %v; want 403", err, resp)
	}
	_, url2 := serve(t, trusted(), func(nc net.Conn, _ string, _ bool) { nc.Close() })
	_, resp, err = websocket.Dial(ctx, url2, &websocket.DialOptions{Subprotocols: []string{"xmpp"}, HTTPHeader: http.Header{"X-Forwarded-Proto": {"http"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("proxy says http: %v, %v; want 403", err, resp)
	}
	got := make(chan bool, 1)
	_, url3 := serve(t, Config{AllowPlaintext: true}, func(nc net.Conn, _ string, secure bool) { got <- secure; nc.Close() })
	dial(t, url3, nil)
	if <-got {
		t.Fatal("plain ws passed as secure")
	}
}

// A client that answers pings stays connected past the idle timeout.
func TestPingKeepsAlive(t *testing.T) {
	ended := make(chan error, 1)
	h, url := serve(t, Config{TrustProxyTLS: true, PingInterval: 100 * time.Millisecond, IdleTimeout: time.Second},
		func(nc net.Conn, _ string, _ bool) {
			_, err := nc.Read(make([]byte, 10))
			ended <- err
			nc.Close()
		})
	var pings atomic.Int32
	c := dial(t, url, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true }})
	ctx := c.CloseRead(context.Background()) // reads (and answers pings) in the background
	time.Sleep(2500 * time.Millisecond)
	select {
	case err := <-ended:
		t.Fatalf("connection ended: %v", err)
	case <-ctx.Done():
		t.Fatal("client connection closed")
	default:
	}
	if n := pings.Load(); n < 5 {
		t.Fatalf("%d pings in 2.5s at a 100ms interval", n)
	}
	if h.Stats.Open.Load() != 1 {
		t.Fatalf("open = %d", h.Stats.Open.Load())
	}
}

// A client that does not answer pings is closed after the idle timeout, and Read reports ErrIdle.
func TestIdleClosed(t *testing.T) {
	for _, reads := range []bool{true, false} {
		ended := make(chan error, 1)
		h, url := serve(t, Config{TrustProxyTLS: true, PingInterval: 50 * time.Millisecond, IdleTimeout: 200 * time.Millisecond},
			func(nc net.Conn, _ string, _ bool) {
				_, err := nc.Read(make([]byte, 10))
				ended <- err
				nc.Close()
			})
		c := dial(t, url, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool { return false }})
		if reads {
			c.CloseRead(context.Background())
		}
		start := time.Now()
		select {
		case err := <-ended:
			if !errors.Is(err, ErrIdle) {
				t.Fatalf("reads=%v: Read error %v, want ErrIdle", reads, err)
			}
			if d := time.Since(start); d < 150*time.Millisecond {
				t.Fatalf("closed after %v, before the idle timeout", d)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("reads=%v: silent connection not closed", reads)
		}
		deadline := time.Now().Add(time.Second)
		for h.Stats.Open.Load() != 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if h.Stats.Open.Load() != 0 {
			t.Fatalf("open = %d", h.Stats.Open.Load())
		}
	}
}

// Deadlines behave as on TCP: a timed-out Read can be retried, and a deadline set while Read waits wakes it.
func TestReadDeadline(t *testing.T) {
	result := make(chan string, 1)
	_, url := serve(t, trusted(), func(nc net.Conn, _ string, _ bool) {
		defer nc.Close()
		buf := make([]byte, 1024)
		nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := nc.Read(buf)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			result <- "first read: " + errString(err)
			return
		}
		go func() {
			time.Sleep(50 * time.Millisecond)
			nc.SetReadDeadline(time.Now())
		}()
		nc.SetReadDeadline(time.Time{})
		if _, err := nc.Read(buf); !errors.As(err, &ne) || !ne.Timeout() {
			result <- "read woken by a deadline: " + errString(err)
			return
		}
		nc.SetReadDeadline(time.Time{})
		result <- "ready"
		n, err := nc.Read(buf)
		result <- string(buf[:n]) + errString(err)
	})
	c := dial(t, url, nil)
	if got := <-result; got != "ready" {
		t.Fatal(got)
	}
	send(t, c, "<presence/>")
	if got := <-result; got != "<presence/>" {
		t.Fatalf("after timeouts: %q", got)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestBinaryMessageRefused(t *testing.T) {
	ended := make(chan error, 1)
	_, url := serve(t, trusted(), func(nc net.Conn, _ string, _ bool) {
		_, err := io.Copy(io.Discard, nc)
		ended <- err
		nc.Close()
	})
	c := dial(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Write(ctx, websocket.MessageBinary, []byte("<presence/>"))
	if st := recvClosed(t, c); st != websocket.StatusUnsupportedData {
		t.Fatalf("status %v, want 1003", st)
	}
	if err := <-ended; !errors.Is(err, ErrBinary) {
		t.Fatalf("Read: %v", err)
	}
}

// A WebSocket closed without <close/> is an EOF to the reader (which reports a broken stream), and the
// adapter refuses writes after Close.
func TestClientDrop(t *testing.T) {
	for _, abrupt := range []bool{true, false} {
		ended := make(chan error, 1)
		conns := make(chan net.Conn, 1)
		_, url := serve(t, trusted(), func(nc net.Conn, _ string, _ bool) {
			conns <- nc
			_, err := io.Copy(io.Discard, nc)
			ended <- err
			nc.Close()
		})
		c := dial(t, url, nil)
		send(t, c, "<presence/>")
		nc := <-conns
		if abrupt {
			c.CloseNow()
		} else {
			c.Close(websocket.StatusNormalClosure, "")
		}
		select {
		case err := <-ended:
			if err != nil { // io.Copy turns io.EOF into nil
				t.Fatalf("abrupt=%v: Read error %v, want io.EOF", abrupt, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("abrupt=%v: server did not see the close", abrupt)
		}
		time.Sleep(20 * time.Millisecond)
		if _, err := nc.Write([]byte("<presence/>")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after close: %v", err)
		}
		if err := nc.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second close: %v", err)
		}
	}
}

func TestHostMeta(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // "" = built from the test server's address
	}{
		{Config{PublicURL: "wss://chat.example.org/xmpp-websocket"}, "wss://chat.example.org/xmpp-websocket"},
		{Config{}, "ws://HOST/xmpp-websocket"},
		{Config{TrustProxyTLS: true, Path: "/ws"}, "wss://HOST/ws"},
	} {
		h, err := New(tc.cfg, func(net.Conn, string, bool) {}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		h.Register(mux)
		srv := httptest.NewServer(mux)
		want := strings.Replace(tc.want, "HOST", strings.TrimPrefix(srv.URL, "http://"), 1)

		resp, err := http.Get(srv.URL + "/.well-known/host-meta")
		if err != nil {
			t.Fatal(err)
		}
		var x struct {
			XMLName xml.Name
			Links   []struct {
				Rel  string `xml:"rel,attr"`
				Href string `xml:"href,attr"`
			} `xml:"Link"`
		}
		err = xml.NewDecoder(resp.Body).Decode(&x)
		resp.Body.Close()
		if err != nil || x.XMLName.Space != "http://docs.oasis-open.org/ns/xri/xrd-1.0" || x.XMLName.Local != "XRD" ||
			len(x.Links) != 1 || x.Links[0].Rel != RelWebSocket || x.Links[0].Href != want {
			t.Fatalf("host-meta: %+v %v; want href %s", x, err, want)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/xrd+xml") || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("host-meta headers: %v", resp.Header)
		}

		resp, err = http.Get(srv.URL + "/.well-known/host-meta.json")
		if err != nil {
			t.Fatal(err)
		}
		var j struct {
			Links []struct{ Rel, Href string } `json:"links"`
		}
		err = json.NewDecoder(resp.Body).Decode(&j)
		resp.Body.Close()
		if err != nil || len(j.Links) != 1 || j.Links[0].Rel != RelWebSocket || j.Links[0].Href != want {
			t.Fatalf("host-meta.json: %+v %v; want href %s", j, err, want)
		}
		if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("host-meta.json headers: %v", resp.Header)
		}
		srv.Close()
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		bad string // substring of the error; "" = valid
	}{
		{Config{}, ""},
		{Config{AllowedOrigins: []string{"https://a.example", "https://*.example.org", "*", "http://localhost:8080"}, PublicURL: "wss://x.example/ws"}, ""},
		{Config{Path: "xmpp"}, "websocket.path"},
		{Config{Path: "/.well-known/xmpp"}, "websocket.path"},
		{Config{MaxMessage: 100}, "websocket.max_message"},
		{Config{PingInterval: time.Minute, IdleTimeout: 30 * time.Second}, "websocket.idle_timeout"},
		{Config{PingInterval: -time.Second}, "websocket.ping_interval"},
		{Config{AllowedOrigins: []string{"example.com"}}, "websocket.allowed_origins"},
		{Config{AllowedOrigins: []string{"https://a.*.example"}}, "websocket.allowed_origins"},
		{Config{AllowedOrigins: []string{"https://a.example/path"}}, "websocket.allowed_origins"},
		{Config{PublicURL: "https://x.example/ws"}, "websocket.public_url"},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.bad == "") || err != nil && !strings.Contains(err.Error(), tc.bad) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.bad)
		}
	}
}

// websocket.trusted_proxies: a request from a listed network has its forwarded client address used (the
// right-most X-Forwarded-For entry that is not itself a trusted proxy); one from elsewhere keeps its own
// address whatever it claims; secure still needs trust_proxy_tls (or TLS).
func TestClassifyTrustedProxies(t *testing.T) {
	cfg := Config{TrustedProxies: []string{"10.1.0.0/16", "192.0.2.5"}}
	for _, tc := range []struct {
		name     string
		trustTLS bool
		remote   string
		xff      string
		secure   bool
		ip       string
	}{
		{"listed proxy", false, "10.1.2.3:1234", "198.51.100.7", false, "198.51.100.7"},
		{"listed single address", false, "192.0.2.5:1234", "2001:db8::7", false, "2001:db8::7"},
		{"chain of our proxies", false, "10.1.2.3:1234", "203.0.113.1, 198.51.100.7, 10.1.9.9", false, "198.51.100.7"},
		{"client-written entries ignored", false, "10.1.2.3:1234", "6.6.6.6, 198.51.100.7", false, "198.51.100.7"},
		{"not listed", false, "10.2.0.1:1234", "198.51.100.7", false, "10.2.0.1"},
		{"listed proxy terminating TLS", true, "10.1.2.3:1234", "198.51.100.7", true, "198.51.100.7"},
		{"loopback without trust_proxy_tls", false, "127.0.0.1:1234", "198.51.100.7", false, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.TrustProxyTLS = tc.trustTLS
			h, err := New(c, func(net.Conn, string, bool) {}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "http://example.org/xmpp-websocket", nil)
			r.RemoteAddr = tc.remote
			r.Header.Set("X-Forwarded-For", tc.xff)
			if secure, ip := h.classify(r); secure != tc.secure || ip != tc.ip {
				t.Fatalf("secure=%v ip=%s; want %v %s", secure, ip, tc.secure, tc.ip)
			}
		})
	}
	if _, err := New(Config{TrustedProxies: []string{"10.0.0.0/33"}}, func(net.Conn, string, bool) {}, testLogger(t)); err == nil ||
		!strings.Contains(err.Error(), "websocket.trusted_proxies") {
		t.Fatalf("bad prefix: %v", err)
	}
}
