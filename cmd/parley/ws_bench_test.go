package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The message-throughput benchmarks: alice sends b.N chat messages to bob, pipelined with a window of messages
// in flight; bob must receive all of them, in order, and the op ends when the server has acknowledged them to
// alice (see benchThroughput). BenchmarkWebSocketMessages and BenchmarkTCPMessages differ only in the
// transport of both clients, so their ratio is the cost of RFC 7395 framing and the HTTP listener against TCP
// with TLS. Both clients, the server and its SQLite archive share one process: B/op and allocs/op count all
// of them.

// throughputCases are the sub-benchmarks. Window 1 is one message at a time (latency without queueing), 100
// keeps the pipe full (throughput; latency then is mostly the wait behind the other 99, by Little's law).
// archive=on is the default configuration: each message is archived twice (MAM, sender's and recipient's
// copy) with durable commits, which bound the throughput on this machine's disk; archive=off
// (archive.retention: 0) leaves the transport and routing.
var throughputCases = []struct {
	archive bool
	window  int
}{{true, 1}, {true, 100}, {false, 1}, {false, 100}}

// benchTransport runs the throughput cases, each on a fresh server with clients from dial.
func benchTransport(b *testing.B, dial func(b *testing.B, s *server, user string) benchClient) {
	for _, tc := range throughputCases {
		onOff := map[bool]string{true: "on", false: "off"}[tc.archive]
		b.Run(fmt.Sprintf("archive=%s/window=%d", onOff, tc.window), func(b *testing.B) {
			s := startWebServer(b, tc.archive)
			addUser(b, s, "alice")
			addUser(b, s, "bob")
			benchThroughput(b, dial(b, s, "alice"), dial(b, s, "bob"), tc.window)
		})
	}
}

// BenchmarkWebSocketMessages measures chat messages from one WebSocket client to another (wss to the HTTPS
// listener, one stanza per WebSocket message), through the same c2s core, router and archive as TCP.
func BenchmarkWebSocketMessages(b *testing.B) {
	benchTransport(b, func(b *testing.B, s *server, user string) benchClient {
		return dialWebSocket(b, "wss://"+s.addrs["https"]+"/xmpp-websocket", user, "pw-"+user)
	})
}

// BenchmarkTCPMessages is BenchmarkWebSocketMessages over the STARTTLS c2s port.
func BenchmarkTCPMessages(b *testing.B) {
	benchTransport(b, func(b *testing.B, s *server, user string) benchClient {
		return dialTCP(b, s.addrs["c2s"], user, "pw-"+user)
	})
}

// startWebServer is startTestServer (which also serves HTTPS, for XMPP over WebSocket) with the archive on
// or off (archive.retention: 0).
func startWebServer(tb testing.TB, archive bool) *server {
	tb.Helper()
	return startTestServer(tb, func(cfg *Config) {
		if !archive {
			var off time.Duration
			cfg.Archive.Retention = &off
		}
	})
}

// benchClient is a logged-in client of the throughput benchmarks.
type benchClient interface {
	// send writes one stanza.
	send(stanza []byte) error
	// recv returns the next message stanza (possibly preceded by other top-level elements); the slice is
	// valid until the next call.
	recv() ([]byte, error)
	// until reads until what it read contains marker, for at most a minute, and returns the last of it.
	until(marker string) ([]byte, error)
	// close drops the connection, which also ends a send or recv blocked on it.
	close()
}

// tcpBenchClient reads by the </message> end tag, which is enough for what the benchmark sends.
type tcpBenchClient struct {
	*rawClient
	acc []byte
}

// dialTCP logs in with dialRaw (STARTTLS, PLAIN, bind, presence).
func dialTCP(tb testing.TB, addr, user, password string) *tcpBenchClient {
	c := &tcpBenchClient{rawClient: dialRaw(tb, addr, user, password)}
	tb.Cleanup(c.close)
	c.conn.SetReadDeadline(time.Time{}) // dialRaw's last one would end a run longer than 10 s
	return c
}

func (c *tcpBenchClient) send(stanza []byte) error {
	_, err := c.conn.Write(stanza)
	return err
}

func (c *tcpBenchClient) recv() ([]byte, error) {
	c.acc = c.acc[:0]
	for !bytes.HasSuffix(c.acc, []byte("</message>")) {
		b, err := c.r.ReadSlice('>')
		c.acc = append(c.acc, b...)
		if err != nil && err != bufio.ErrBufferFull {
			return nil, err
		}
	}
	return c.acc, nil
}

func (c *tcpBenchClient) until(marker string) ([]byte, error) {
	c.conn.SetReadDeadline(time.Now().Add(time.Minute))
	defer c.conn.SetReadDeadline(time.Time{})
	c.acc = c.acc[:0]
	for !bytes.Contains(c.acc, []byte(marker)) {
		b, err := c.r.ReadSlice('>')
		c.acc = append(c.acc, b...)
		if err != nil && err != bufio.ErrBufferFull {
			return c.acc, err
		}
	}
	return c.acc, nil
}

func (c *tcpBenchClient) close() { c.conn.Close() }

// wsBenchClient is a raw RFC 7395 client: one stanza per text message each way.
type wsBenchClient struct {
	c   *websocket.Conn
	buf []byte
}

// dialWebSocket opens a WebSocket with the xmpp subprotocol and logs in: <open/>, SASL PLAIN, <open/> again,
// bind, initial presence.
func dialWebSocket(tb testing.TB, url, user, password string) *wsBenchClient {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient: hc, Subprotocols: []string{"xmpp"}, CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		tb.Fatalf("websocket dial %s: %v", url, err)
	}
	w := &wsBenchClient{c: c, buf: make([]byte, 0, 4096)}
	tb.Cleanup(w.close)
	const open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>"
	w.step(tb, open, "</stream:features>")
	w.step(tb, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password))+"</auth>", "<success")
	w.step(tb, open, "</stream:features>")
	w.step(tb, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>bench</resource>"+
		"</bind></iq>", "</iq>")
	w.step(tb, "<presence/>", "<presence")
	return w
}

// step sends one stanza and reads messages until one contains marker.
func (w *wsBenchClient) step(tb testing.TB, stanza, marker string) {
	tb.Helper()
	if err := w.send([]byte(stanza)); err != nil {
		tb.Fatalf("websocket send: %v", err)
	}
	if m, err := w.until(marker); err != nil {
		tb.Fatalf("waiting for %q: %v (last message %q)", marker, err, m)
	}
}

func (w *wsBenchClient) until(marker string) ([]byte, error) {
	timer := time.AfterFunc(time.Minute, w.close)
	defer timer.Stop()
	for {
		m, err := w.read()
		if err != nil || bytes.Contains(m, []byte(marker)) {
			return m, err
		}
	}
}

func (w *wsBenchClient) send(stanza []byte) error {
	return w.c.Write(context.Background(), websocket.MessageText, stanza)
}

// read returns the next WebSocket message, read into the client's buffer.
func (w *wsBenchClient) read() ([]byte, error) {
	typ, r, err := w.c.Reader(context.Background())
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		return nil, fmt.Errorf("message type %v", typ)
	}
	w.buf = w.buf[:0]
	for {
		if len(w.buf) == cap(w.buf) {
			w.buf = slices.Grow(w.buf, len(w.buf))
		}
		n, err := r.Read(w.buf[len(w.buf):cap(w.buf)])
		w.buf = w.buf[:len(w.buf)+n]
		if errors.Is(err, io.EOF) {
			return w.buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (w *wsBenchClient) recv() ([]byte, error) {
	for {
		m, err := w.read()
		if err != nil || bytes.HasPrefix(m, []byte("<message")) {
			return m, err
		}
	}
}

func (w *wsBenchClient) close() { w.c.CloseNow() }

// benchMessage is the stanza alice sends: 170 bytes, near the 218-byte chat message of shared/MELLIUM.md. The
// sender writes the sequence number into the id and the body, and the send time (nanoseconds since the
// start) into the body.
const benchMessage = "<message to='bob@localhost/bench' type='chat' id='m0000000000'>" +
	"<body>0000000000 0000000000000000 Art thou not Romeo, and a Montague? Neither, fair saint.</body></message>"

// putDigits writes v into dst as zero-padded decimal digits.
func putDigits(dst []byte, v int64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// parseDigits reads the decimal number at the start of p, up to the first non-digit.
func parseDigits(p []byte) (v int64, rest []byte) {
	i := 0
	for ; i < len(p) && p[i] >= '0' && p[i] <= '9'; i++ {
		v = v*10 + int64(p[i]-'0')
	}
	return v, p[i:]
}

// processCPU is the user and system CPU time the process has used: server, clients and SQLite together.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ackCount sends <r/> and returns the h of the server's <a/>.
func ackCount(b *testing.B, c benchClient) int64 {
	if err := c.send([]byte("<r xmlns='urn:xmpp:sm:3'/>")); err != nil {
		b.Fatal(err)
	}
	m, err := c.until("<a ")
	if err != nil {
		b.Fatalf("waiting for the ack: %v (read %q)", err, m)
	}
	at := bytes.Index(m, []byte(" h='"))
	if at < 0 {
		b.Fatalf("ack without h: %q", m)
	}
	h, _ := parseDigits(m[at+len(" h='"):])
	return h
}

// benchThroughput sends b.N messages from alice to bob with at most window in flight, checks that bob receives
// each exactly once and in order, and reports messages per second, the process's CPU time per message, the
// latency percentiles, and how long the archive took after the last delivery (ack-wait-ms).
//
// The op also includes the archive: delivery does not wait for the MAM commits (they are queued and shared,
// see storage.Committer), so the last delivery can come well before the last commit. Alice enables stream
// management, and the run ends with her <r/> answered: the server sends <a/> only once every message's two
// archive copies are committed. Without it the figure would count messages whose archiving is still queued.
func benchThroughput(b *testing.B, alice, bob benchClient, window int) {
	if err := alice.send([]byte("<enable xmlns='urn:xmpp:sm:3'/>")); err != nil {
		b.Fatal(err)
	}
	if m, err := alice.until("<enabled"); err != nil {
		b.Fatalf("stream management: %v (read %q)", err, m)
	}
	// The count before the messages: Parley's h also counts the stanzas handled before <enable/> (here the
	// initial presence), where XEP-0198 starts it at zero.
	h0 := ackCount(b, alice)
	msg := []byte(benchMessage)
	idAt := bytes.Index(msg, []byte("id='m")) + len("id='m")
	bodyAt := bytes.Index(msg, []byte("<body>")) + len("<body>")
	latency := make([]int64, b.N)
	inFlight := make(chan struct{}, window)
	var received atomic.Int64
	var sendErr error
	sent, stop := make(chan struct{}), make(chan struct{})
	// fail stops the sender, whether it waits for the window or is blocked in a write, before failing; the
	// sender's error, if any, is often the cause.
	fail := func(format string, args ...any) {
		close(stop)
		alice.close()
		bob.close()
		<-sent
		b.Fatalf(format+" (sender: %v)", append(args, sendErr)...)
	}

	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	start := time.Now()
	go func() {
		defer close(sent)
		for i := range b.N {
			select {
			case inFlight <- struct{}{}:
			case <-stop:
				return
			}
			putDigits(msg[idAt:idAt+10], int64(i))
			putDigits(msg[bodyAt:bodyAt+10], int64(i))
			putDigits(msg[bodyAt+11:bodyAt+27], int64(time.Since(start)))
			if err := alice.send(msg); err != nil {
				sendErr = err
				bob.close() // end the receiver's wait
				return
			}
		}
	}()
	// A message that never arrives would leave bob waiting: close his connection when nothing arrived for 10 s.
	watchdog := time.NewTicker(10 * time.Second)
	done := make(chan struct{})
	go func() {
		last := int64(-1)
		for {
			select {
			case <-done:
				return
			case <-watchdog.C:
			}
			n := received.Load()
			if n == last {
				bob.close()
				return
			}
			last = n
		}
	}()
	defer func() { watchdog.Stop(); close(done) }()
	for want := range int64(b.N) {
		m, err := bob.recv()
		if err != nil {
			fail("bob received %d of %d messages: %v", want, b.N, err)
		}
		at := bytes.Index(m, []byte("<body>"))
		if at < 0 {
			fail("message without a body: %q", m)
		}
		seq, rest := parseDigits(m[at+len("<body>"):])
		if seq != want || len(rest) < 2 {
			fail("message %d arrived when %d was expected: %q", seq, want, m)
		}
		sentAt, _ := parseDigits(rest[1:])
		latency[want] = int64(time.Since(start)) - sentAt
		received.Add(1)
		<-inFlight
	}
	delivered := time.Since(start)
	<-sent
	if sendErr != nil {
		b.Fatal(sendErr)
	}
	if h := ackCount(b, alice); h != h0+int64(b.N) {
		b.Fatalf("the server acknowledged %d messages, want %d", h-h0, b.N)
	}
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	slices.Sort(latency)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(elapsed-delivered)/1e6, "ack-wait-ms")
	// CPU time moves less than wall time when other work shares the cores.
	b.ReportMetric(float64(cpu)/1e3/float64(b.N), "cpu-µs/msg")
	b.ReportMetric(float64(latency[len(latency)/2])/1e3, "p50-µs")
	b.ReportMetric(float64(latency[len(latency)*99/100])/1e3, "p99-µs")
}

var (
	_ benchClient = (*tcpBenchClient)(nil)
	_ benchClient = (*wsBenchClient)(nil)
)
