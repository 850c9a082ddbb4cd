package transport

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"parley.im/parley/xmpp/internal/tcptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// Write-path benchmarks of the queue alone: stanzas queued with Queue.Push and written by the writer goroutine,
// which coalesces what is queued into one net.Conn write, over a connection that only counts and over TLS on a
// net.Pipe. One op is one stanza. The benchmarks of a session's sends and of the whole read-route-write path
// are in xmpp/c2s (write_bench_test.go). Baselines: docs/bench/baseline/c2s.txt.

// benchStanza and sink: the shared write-path benchmark helpers of xmpp/internal/tcptest.
var benchStanza = tcptest.BenchStanza

type sink = tcptest.Sink

var newSink = tcptest.NewSink

// countConn is a net.Conn that counts writes instead of sending them.
type countConn struct {
	sink   *sink
	writes atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) {
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

// writeCounter counts the writes into the server side of a TLS connection (each becomes at least one record).
type writeCounter struct {
	net.Conn
	writes atomic.Int64
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// tlsPipe returns the server side of a TLS 1.3 connection over net.Pipe, wrapped to count writes, whose client
// side is read by a goroutine that reports the plaintext bytes to s.
func tlsPipe(tb testing.TB, s *sink) *writeCounter {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example.net"},
		DNSNames: []string{"example.net"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cs, ss := net.Pipe()
	srv := tls.Server(ss, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	cli := tls.Client(cs, &tls.Config{ServerName: "example.net", InsecureSkipVerify: true})
	errc := make(chan error, 1)
	go func() { errc <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		tb.Fatal(err)
	}
	if err := <-errc; err != nil {
		tb.Fatal(err)
	}
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
	tb.Cleanup(func() { cs.Close(); ss.Close() })
	return &writeCounter{Conn: srv}
}

// Limits of the queues of the benchmarks: c2s's defaults (c2s.max_queue, c2s.write_timeout).
const (
	benchMax     = 4 << 20
	benchTimeout = 30 * time.Second
)

// newBenchQueue returns a queue writing to a counting connection, or to TLS over a pipe, with c2s's default
// limits.
func newBenchQueue(b *testing.B, useTLS bool) (*Queue, *sink, *atomic.Int64) {
	s := newSink()
	q := &Queue{Max: benchMax, Timeout: benchTimeout}
	if useTLS {
		wc := tlsPipe(b, s)
		q.conn = wc
		return q, s, &wc.writes
	}
	cc := &countConn{sink: s}
	q.conn = cc
	return q, s, &cc.writes
}

// waitIdle waits until the queue's writer has finished.
func waitIdle(q *Queue) {
	for !q.Idle() {
		runtime.Gosched()
	}
}

// BenchmarkQueue (BenchmarkOutq in xmpp/c2s before the transport moved here) queues stanzas with Queue.Push and waits until the writer has written them, in batches:
//   - batch=1: one stanza at a time, so each pays for starting a writer goroutine and one write;
//   - batch=64: 64 pushed back to back; the writer started by the first may run meanwhile (writes/op shows
//     whether it did);
//   - batch=64/queued: 64 queued before the writer runs (a router fan-out, or GOMAXPROCS=1), written in one
//     coalesced write.
//
// writes/op is conn.Write calls (for TLS, tls.Conn writes) per stanza.
func BenchmarkQueue(b *testing.B) {
	for _, useTLS := range []bool{false, true} {
		for _, bc := range []struct {
			name   string
			batch  int
			queued bool
		}{{"batch=1", 1, false}, {"batch=64", 64, false}, {"batch=64/queued", 64, true}} {
			name := "conn=count/" + bc.name
			if useTLS {
				name = "conn=tls-pipe/" + bc.name
			}
			b.Run(name, func(b *testing.B) {
				q, s, writes := newBenchQueue(b, useTLS)
				b.SetBytes(int64(len(benchStanza)))
				b.ReportAllocs()
				b.ResetTimer()
				for n := 0; n < b.N; n += bc.batch {
					k := min(bc.batch, b.N-n)
					s.Expect(k * len(benchStanza))
					if bc.queued {
						// What push does for the first stanza, with the writer's start held back until all are queued.
						waitIdle(q)
						q.mu.Lock()
						q.writing = true
						q.mu.Unlock()
					}
					for range k {
						if !q.Push(benchStanza) {
							b.Fatal("queue refused a stanza")
						}
					}
					if bc.queued {
						go q.drain()
					}
					s.Wait()
				}
				b.StopTimer()
				b.ReportMetric(float64(writes.Load())/float64(b.N), "writes/op")
				waitIdle(q)
			})
		}
	}
}

// TestQueueCoalescesQueued checks what BenchmarkQueue relies on: a pushed batch arrives whole and in order, in
// one write when queued before the writer runs, over the counting connection and over TLS.
func TestQueueCoalescesQueued(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		s := newSink()
		q := &Queue{Max: benchMax, Timeout: benchTimeout}
		var writes *atomic.Int64
		var got *bytes.Buffer
		if useTLS {
			wc := tlsPipe(t, s)
			q.conn, writes = wc, &wc.writes
		} else {
			rc := &recordConn{countConn: countConn{sink: s}, buf: new(bytes.Buffer)}
			q.conn, writes, got = rc, &rc.writes, rc.buf
		}
		s.Expect(3 * len(benchStanza))
		q.mu.Lock()
		q.writing = true
		q.mu.Unlock()
		for range 3 {
			q.Push(benchStanza)
		}
		go q.drain()
		s.Wait()
		waitIdle(q)
		if n := writes.Load(); n != 1 {
			t.Errorf("tls=%v: 3 queued stanzas took %d writes, want 1", useTLS, n)
		}
		if want := bytes.Repeat(benchStanza, 3); got != nil && !bytes.Equal(got.Bytes(), want) {
			t.Errorf("written\n%s\nwant\n%s", got.Bytes(), want)
		}
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
