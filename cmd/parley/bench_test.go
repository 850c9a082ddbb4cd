package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// startTestServer runs a server in-process on free loopback ports (c2s and HTTPS) with a throwaway data
// directory; edit changes the configuration first.
func startTestServer(tb testing.TB, edit ...func(*Config)) *server {
	tb.Helper()
	cfg := defaultConfig()
	cfg.DataDir = tb.TempDir()
	cfg.Storage.SQLitePath = cfg.DataDir + "/parley.db"
	cfg.Listen.C2S, cfg.Listen.C2STLS, cfg.Listen.Metrics = "127.0.0.1:0", "off", "off"
	cfg.Listen.HTTPS, cfg.Listen.HTTP = "127.0.0.1:0", "off"
	cfg.C2S.RateBytes = -1
	for _, e := range edit {
		e(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	s, err := newServer(ctx, cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
	return s
}

// rawClient is a minimal client: STARTTLS, PLAIN, bind; then it reads whole messages by their end tag.
type rawClient struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(tb testing.TB, addr, user, password string) *rawClient {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	const hdr = "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	c := &rawClient{conn: nc, r: bufio.NewReader(nc)}
	c.write(tb, hdr)
	c.until(tb, "</stream:features>")
	c.write(tb, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	c.until(tb, "<proceed")
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.write(tb, hdr)
	c.until(tb, "</stream:features>")
	c.write(tb, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password))+"</auth>")
	c.until(tb, "<success")
	c.write(tb, hdr)
	c.until(tb, "</stream:features>")
	c.write(tb, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>bench</resource></bind></iq><presence/>")
	c.until(tb, "</iq>")
	c.until(tb, "<presence")
	return c
}

func (c *rawClient) write(tb testing.TB, s string) {
	if _, err := io.WriteString(c.conn, s); err != nil {
		tb.Fatal(err)
	}
}

// until reads until the input contains marker and returns what it read.
func (c *rawClient) until(tb testing.TB, marker string) []byte {
	var acc []byte
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !bytes.Contains(acc, []byte(marker)) {
		b, err := c.r.ReadSlice('>')
		acc = append(acc, b...)
		if err != nil && err != bufio.ErrBufferFull {
			tb.Fatalf("waiting for %q: %v (read %q)", marker, err, acc)
		}
	}
	return acc
}

func addUser(tb testing.TB, s *server, user string) {
	tb.Helper()
	if err := userCmd(context.Background(), s.cfg, "add", []string{user + "@localhost"}, "pw-"+user, nil, io.Discard); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkMessageRoundTrip measures one chat message from alice to bob and bob's answer back, through the server
// over loopback TCP with TLS: two routed stanzas per op. Client and server share the machine's cores.
func BenchmarkMessageRoundTrip(b *testing.B) {
	s := startTestServer(b)
	addUser(b, s, "alice")
	addUser(b, s, "bob")
	alice := dialRaw(b, s.addrs["c2s"], "alice", "pw-alice")
	bob := dialRaw(b, s.addrs["c2s"], "bob", "pw-bob")
	toBob := fmt.Sprintf("<message to='bob@localhost/bench' type='chat' id='x'><body>%s</body></message>", bytes.Repeat([]byte("a"), 100))
	toAlice := fmt.Sprintf("<message to='alice@localhost/bench' type='chat' id='y'><body>%s</body></message>", bytes.Repeat([]byte("b"), 100))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		alice.write(b, toBob)
		bob.until(b, "</message>")
		bob.write(b, toAlice)
		alice.until(b, "</message>")
	}
}

// BenchmarkOfflineMessageAck measures one message to an offline account with stream management: from the client
// writing it to the server's <a/> for it, which the server sends only once the message is committed to the
// recipient's archive and offline store (synchronous=FULL SQLite). One sender, so no group commit helps.
func BenchmarkOfflineMessageAck(b *testing.B) {
	s := startTestServer(b)
	addUser(b, s, "alice")
	addUser(b, s, "bob")
	alice := dialRaw(b, s.addrs["c2s"], "alice", "pw-alice")
	alice.write(b, "<enable xmlns='urn:xmpp:sm:3'/>")
	alice.until(b, "<enabled")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		alice.write(b, fmt.Sprintf("<message to='bob@localhost' type='chat'><body>offline %d</body></message><r xmlns='urn:xmpp:sm:3'/>", i))
		alice.until(b, "<a ")
	}
}

// BenchmarkOfflineMessageBurst measures messages to an offline account sent in bursts of 100 with one <r/> per
// burst, as a client catching up after a reconnect sends them: the writes of a burst share group commits.
// The figure is per message, ack included.
func BenchmarkOfflineMessageBurst(b *testing.B) {
	s := startTestServer(b)
	addUser(b, s, "alice")
	addUser(b, s, "bob")
	alice := dialRaw(b, s.addrs["c2s"], "alice", "pw-alice")
	alice.write(b, "<enable xmlns='urn:xmpp:sm:3'/>")
	alice.until(b, "<enabled")
	b.ReportAllocs()
	b.ResetTimer()
	var burst bytes.Buffer
	for i := 0; i < b.N; i++ {
		fmt.Fprintf(&burst, "<message to='bob@localhost' type='chat'><body>offline %d</body></message>", i)
		if i%100 == 99 || i == b.N-1 {
			burst.WriteString("<r xmlns='urn:xmpp:sm:3'/>")
			alice.write(b, burst.String())
			burst.Reset()
			alice.until(b, "<a ")
		}
	}
}
