package c2s

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"parley.im/parley/xmpp/internal/tcptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/router"
	"parley.im/parley/xmpp/stanza"
	"parley.im/parley/xmpp/stream"
	"parley.im/parley/xmpp/transport"
)

// Write-path benchmarks: a stanza queued to a session (session.Send) and written, by the writer goroutine that
// coalesces what is queued into one net.Conn write, or by the sender itself when the socket has room (loopback
// TCP with the send-room check, as serve sets up for TCP clients); over a connection that only counts and
// loopback TCP. The queue alone (BenchmarkQueue, was BenchmarkOutq here) is benchmarked in xmpp/transport. BenchmarkReadRouteWrite is the whole path of one message from
// the sender's socket to the recipient's (read loop, router, queue, write). One op is one stanza.
// Baselines: docs/bench/baseline/c2s.txt.

// benchStanza and sink: the shared write-path benchmark helpers of xmpp/internal/tcptest.
var benchStanza = tcptest.BenchStanza

type sink = tcptest.Sink

var newSink = tcptest.NewSink

// countConn is a net.Conn that counts writes instead of sending them. XEP-0198 ack requests, which the writer
// sends alone after a drain, are counted apart and not passed to the sink.
type countConn struct {
	sink   *sink
	writes atomic.Int64
	acks   atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) {
	if bytes.Equal(p, ackRequest) {
		c.acks.Add(1)
		return len(p), nil
	}
	c.writes.Add(1)
	c.sink.Add(len(p))
	return len(p), nil
}
func (c *countConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *countConn) Close() error                     { return nil }
func (c *countConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *countConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *countConn) SetDeadline(time.Time) error      { return nil }
func (c *countConn) SetReadDeadline(time.Time) error  { return nil }
func (c *countConn) SetWriteDeadline(time.Time) error { return nil }

// writeCounter counts the writes into a connection.
type writeCounter struct {
	net.Conn
	writes atomic.Int64
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// waitIdle waits until the queue's writer has finished.
func waitIdle(q *transport.Queue) {
	for !q.Idle() {
		runtime.Gosched()
	}
}

// benchServer returns a listener with a router and no modules, for sessions built without a handshake.
func benchServer(tb testing.TB) *Server {
	tb.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	domain := jid.MustParse("example.net")
	reg := module.NewRegistry()
	r := router.New(domain, reg, nil, log)
	if err := reg.Register(nil, r, domain, log); err != nil {
		tb.Fatal(err)
	}
	r.Start()
	srv, err := New(Config{AllowPlaintext: true}, domain, nil, nil, r, reg, nil, log)
	if err != nil {
		tb.Fatal(err)
	}
	return srv
}

// benchConn returns a connection on nc with a session bound to full and available, as after negotiateBind and
// initial presence.
func benchConn(srv *Server, nc net.Conn, full string) *conn {
	c := srv.newConn(nc, "192.0.2.1", false)
	c.ctx = context.Background()
	c.attach(&session{srv: srv, id: c.id, jid: jid.MustParse(full), conn: c}, new(atomic.Uint32))
	srv.router.Bind(c.sess)
	c.sess.SetPresence(stanza.New(stanza.Presence, "", "", c.sess.jid, jid.JID{}, nil), 0)
	c.bound.Store(true)
	return c
}

// recipient is where a benchmark session's queue writes: a connection that only counts ("count"), or loopback
// TCP read by a goroutine, with the queue's writer goroutine doing every write ("tcp") or, as serve sets it up
// for a TCP client, with the send-room check that lets the sender write to an idle socket itself ("tcp-room").
type recipient struct {
	nc     net.Conn
	sink   *sink
	writes *atomic.Int64 // conn.Write calls
	acks   *atomic.Int64 // XEP-0198 ack requests (count only)
	room   *transport.RoomCheck
}

func newRecipient(tb testing.TB, kind string) *recipient {
	tb.Helper()
	s := newSink()
	if kind == "count" {
		cc := &countConn{sink: s}
		return &recipient{nc: cc, sink: s, writes: &cc.writes, acks: &cc.acks}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close(); sc.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := cli.Read(buf)
			if n > 0 {
				s.Add(n)
			}
			if err != nil {
				return
			}
		}
	}()
	wc := &writeCounter{Conn: sc}
	r := &recipient{nc: wc, sink: s, writes: &wc.writes, acks: new(atomic.Int64)}
	if kind == "tcp-room" {
		if r.room = transport.SendRoom(transport.Parkable(sc)); r.room == nil {
			tb.Skip("no send-room check on this platform")
		}
	}
	return r
}

// bind returns a connection writing to the recipient with a session bound to full.
func (r *recipient) bind(srv *Server, full string) *conn {
	c := benchConn(srv, r.nc, full)
	c.out.SetRoom(r.room)
	return c
}

// BenchmarkSessionSend queues stanzas with session.Send, the module.Session method the router delivers with, and
// waits until they are written, in batches of 1 and 64. Over the counting connection and plain TCP a writer
// goroutine starts at the first stanza of a batch; over tcp-room the sender writes itself while the socket has
// room. With sm=true, XEP-0198 is enabled: each stanza is kept until acknowledged, the writer asks for an ack
// after each drain (acks/op), and the client acknowledges everything after each batch.
func BenchmarkSessionSend(b *testing.B) {
	type variant struct {
		conn string
		sm   bool
	}
	for _, v := range []variant{{"count", false}, {"count", true}, {"tcp", false}, {"tcp-room", false}} {
		for _, batch := range []int{1, 64} {
			b.Run(fmt.Sprintf("conn=%s/sm=%v/batch=%d", v.conn, v.sm, batch), func(b *testing.B) {
				srv := benchServer(b)
				rc := newRecipient(b, v.conn)
				c := rc.bind(srv, "bob@example.net/phone")
				sess := c.sess
				sess.sm.enabled = v.sm
				st, err := stanza.Parse(benchStanza)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(benchStanza)))
				b.ReportAllocs()
				b.ResetTimer()
				for n := 0; n < b.N; n += batch {
					k := min(batch, b.N-n)
					rc.sink.Expect(k * len(benchStanza))
					for range k {
						if err := sess.Send(st); err != nil {
							b.Fatal(err)
						}
					}
					rc.sink.Wait()
					if v.sm {
						sess.mu.Lock()
						h := sess.sm.hOut
						sess.mu.Unlock()
						if !sess.ack(h) {
							b.Fatal("ack refused")
						}
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(rc.writes.Load())/float64(b.N), "writes/op")
				if v.sm {
					b.ReportMetric(float64(rc.acks.Load())/float64(b.N), "acks/op")
				}
				waitIdle(&c.out)
			})
		}
	}
}

// streamSource is a client's side of the stream after negotiation: the header (read by the benchmark before
// the loop starts), n copies of el in reads of up to 4 KiB, and the close tag.
type streamSource struct {
	pending []byte
	el      []byte
	left    int
}

func (s *streamSource) Read(p []byte) (int, error) {
	p = p[:min(len(p), 4096)]
	n := 0
	for n < len(p) {
		if len(s.pending) == 0 {
			switch {
			case s.left > 0:
				s.pending, s.left = s.el, s.left-1
			case s.left == 0:
				s.pending, s.left = []byte("</stream:stream>"), -1
			default:
				if n == 0 {
					return 0, io.EOF
				}
				return n, nil
			}
		}
		k := copy(p[n:], s.pending)
		s.pending = s.pending[k:]
		n += k
	}
	return n, nil
}

// clientChat is benchStanza as the client sends it: no from.
var clientChat = bytes.Replace(benchStanza, []byte(" from='alice@example.net/desk'"), nil, 1)

// BenchmarkReadRouteWrite runs the real read loop of alice's connection over a stream of chat messages to
// bob's full JID: each is framed by the scanner, stamped, routed, queued to bob's session and written to bob's
// connection: a counting one or loopback TCP by a writer goroutine, which coalesces what accumulates while the
// loop runs, or loopback TCP with the send-room check by alice's goroutine itself while the socket has room.
// One op is one message from alice's socket to bob's.
func BenchmarkReadRouteWrite(b *testing.B) {
	for _, kind := range []string{"count", "tcp", "tcp-room"} {
		b.Run("conn="+kind, func(b *testing.B) {
			srv := benchServer(b)
			bob := newRecipient(b, kind)
			bob.bind(srv, "bob@example.net/phone")
			alice := benchConn(srv, &countConn{sink: newSink()}, "alice@example.net/desk")
			// Unthrottled: c2s.rate_bytes (1 MiB/s by default) would make one op cost what the limit allows.
			alice.rate = bucket{}
			delivered := len(clientChat) + len(alice.fromAttr)
			b.SetBytes(int64(len(clientChat)))
			b.ReportAllocs()
			b.ResetTimer()
			src := &streamSource{
				pending: []byte("<stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream + "' to='example.net' version='1.0'>"),
				el:      clientChat, left: b.N}
			alice.rd = stream.NewReader(src, stream.Limits{MaxElement: srv.cfg.MaxStanza})
			if _, err := alice.rd.Header(); err != nil {
				b.Fatal(err)
			}
			bob.sink.Expect(b.N * delivered)
			if err := alice.loop(); err != io.EOF {
				b.Fatalf("loop ended with %v, want io.EOF", err)
			}
			bob.sink.Wait()
			b.StopTimer()
			b.ReportMetric(float64(bob.writes.Load())/float64(b.N), "writes/op")
			if got := alice.hIn.Load(); got != uint32(b.N) {
				b.Fatalf("alice's loop handled %d stanzas, want %d", got, b.N)
			}
		})
	}
}

// TestWriteBenchHarness checks what the benchmarks rely on: session.Send delivers over loopback TCP with and
// without the send-room check, and the read loop delivers alice's message to bob stamped with her JID. (The
// queue's own coalescing is checked in xmpp/transport, TestQueueCoalescesQueued.)
func TestWriteBenchHarness(t *testing.T) {
	for _, kind := range []string{"tcp", "tcp-room"} {
		rc := newRecipient(t, kind)
		c := rc.bind(benchServer(t), "bob@example.net/phone")
		rc.sink.Expect(3 * len(benchStanza))
		st := &stanza.Stanza{Kind: stanza.Message, Raw: benchStanza}
		for range 3 {
			if err := c.sess.Send(st); err != nil {
				t.Fatal(err)
			}
		}
		rc.sink.Wait()
		waitIdle(&c.out)
	}

	srv := benchServer(t)
	var got bytes.Buffer
	bob := &recordConn{countConn: countConn{sink: newSink()}, buf: &got}
	benchConn(srv, bob, "bob@example.net/phone")
	alice := benchConn(srv, &countConn{sink: newSink()}, "alice@example.net/desk")
	src := &streamSource{pending: []byte("<stream:stream xmlns='jabber:client' xmlns:stream='" + nsStream + "'>"), el: clientChat, left: 2}
	alice.rd = stream.NewReader(src, stream.Limits{})
	if _, err := alice.rd.Header(); err != nil {
		t.Fatal(err)
	}
	bob.sink.Expect(2 * len(benchStanza))
	if err := alice.loop(); err != io.EOF {
		t.Fatalf("loop ended with %v", err)
	}
	bob.sink.Wait()
	if want := string(benchStanza) + string(benchStanza); got.String() != want {
		t.Fatalf("bob got\n%s\nwant\n%s", got.String(), want)
	}
}

// recordConn is a countConn that also keeps what was written.
type recordConn struct {
	countConn
	buf *bytes.Buffer
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.buf.Write(p)
	return c.countConn.Write(p)
}

var (
	_ net.Conn = (*countConn)(nil)
	_ net.Conn = (*recordConn)(nil)
)

// TestBurstCoalescesInlineWrites: 64 messages that arrive in one read for the same recipient go out in far
// fewer writes than messages even when the recipient's socket has room (inline writes), because the reader
// releases the writers only at the end of the burst.
func TestBurstCoalescesInlineWrites(t *testing.T) {
	srv := benchServer(t)
	bob := newRecipient(t, "tcp-room")
	bob.bind(srv, "bob@example.net/phone")
	alice := benchConn(srv, &countConn{sink: newSink()}, "alice@example.net/desk")
	const n = 64
	burst := bytes.Repeat(clientChat, n)
	src := &streamSource{pending: append([]byte("<stream:stream xmlns='jabber:client' xmlns:stream='"+nsStream+
		"' to='example.net' version='1.0'>"), burst...)}
	alice.rd = stream.NewReader(src, stream.Limits{MaxElement: srv.cfg.MaxStanza, Buffer: 64 << 10})
	if _, err := alice.rd.Header(); err != nil {
		t.Fatal(err)
	}
	bob.sink.Expect(n * (len(clientChat) + len(alice.fromAttr)))
	if err := alice.loop(); err != io.EOF {
		t.Fatalf("loop ended with %v, want io.EOF", err)
	}
	bob.sink.Wait()
	if w := bob.writes.Load(); w > n/4 {
		t.Errorf("a burst of %d messages to bob took %d writes to his socket, want a few", n, w)
	}
}
