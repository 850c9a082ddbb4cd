package c2s

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"parley.im/parley/xmpp/internal/tcptest"
	"parley.im/parley/xmpp/stream"
)

// The sender writes to the socket itself while the client reads; once the client stops reading and the send
// buffer fills, writes go to a writer goroutine and the sender is never blocked.
func TestInlineWriteNeverBlocksTheSender(t *testing.T) {
	sc, cc := tcptest.Pair(t)
	sc.SetWriteBuffer(64 << 10)
	q := &outq{conn: sc, max: 64 << 20, timeout: 5 * time.Second}
	q.room = sendRoom(parkable(sc))
	if q.room == nil {
		t.Fatal("no send-buffer check on a TCP socket")
	}
	msg := bytes.Repeat([]byte("x"), 1000)

	// A reading client: the first stanza is on the wire when kick returns (written by this goroutine).
	ok, start := q.enqueue(msg)
	if !ok || !start {
		t.Fatalf("enqueue on an idle queue: ok=%v start=%v", ok, start)
	}
	if !q.kick() {
		t.Fatal("an idle socket with room was not written by the sender itself")
	}
	cc.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 4096)
	first, err := cc.Read(buf)
	if err != nil || first == 0 {
		t.Fatalf("nothing written inline: %d, %v", first, err)
	}

	// The client stops reading. The sender keeps sending; every kick returns at once even when the kernel's
	// buffer is full, because the check sends the rest to a writer goroutine.
	inlineSeen, handedOff := 0, 0
	for range 2000 {
		ok, start := q.enqueue(msg)
		if !ok {
			t.Fatal("queue refused a stanza under its limit")
		}
		if !start {
			continue
		}
		t0 := time.Now()
		if q.kick() {
			inlineSeen++
		} else {
			handedOff++
		}
		if d := time.Since(t0); d > 500*time.Millisecond {
			t.Fatalf("kick blocked the sender for %v with a client that does not read", d)
		}
	}
	if handedOff == 0 {
		t.Errorf("2 MB to a client that does not read and the queue never handed off to a writer goroutine (inline %d)", inlineSeen)
	}
	// Reading again drains everything, in order and complete.
	want := 2001 * len(msg)
	got := first
	cc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for got < want {
		n, err := cc.Read(buf)
		if err != nil {
			t.Fatalf("after %d of ~%d bytes: %v", got, want, err)
		}
		got += n
	}
}

// streamConn returns a bound session on loopback TCP past its stream header, with its loop not started, and the
// client's end of its socket.
func streamConn(t *testing.T, full string) (*Server, *conn, *net.TCPConn) {
	t.Helper()
	srv := benchServer(t)
	sc, cc := tcptest.Pair(t)
	c := benchConn(srv, sc, full)
	c.rd = stream.NewReader(sc, stream.Limits{})
	cc.Write([]byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.net' version='1.0'>"))
	if _, err := c.rd.Header(); err != nil {
		t.Fatal(err)
	}
	c.raw = parkable(sc)
	c.out.room = sendRoom(c.raw)
	return srv, c, cc
}

// parkedConn returns a bound session whose stanza loop runs (and parks once idle), and the client's end of its
// socket.
func parkedConn(t *testing.T) (*Server, *conn, *net.TCPConn) {
	t.Helper()
	srv, c, cc := streamConn(t, "juliet@example.net/balcony")
	go c.resumeParked()
	return srv, c, cc
}

// waitParked waits until c is in the poller, and checks that no goroutine of a connection is left.
func waitParked(t *testing.T, c *conn) {
	t.Helper()
	p := parkPoller()
	if p == nil {
		t.Fatal("no poller on Linux")
	}
	deadline := time.Now().Add(parkAfter + 3*time.Second)
	for {
		p.mu.Lock()
		parked := p.waiting[c.parkFD-1] == c && c.parkFD != 0
		p.mu.Unlock()
		if parked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an idle session did not park")
		}
		time.Sleep(20 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	all := string(buf[:runtime.Stack(buf, true)])
	for _, f := range []string{"(*conn).loop", "(*conn).unpark", "waitReadable"} {
		if strings.Contains(all, f) {
			t.Fatalf("a parked session still holds a goroutine in %s", f)
		}
	}
}

func readUntil(t *testing.T, cc net.Conn, want string) string {
	t.Helper()
	cc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte(want)) {
		n, err := cc.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("waiting for %q: %v after %q", want, err, got)
		}
	}
	return string(got)
}

func waitGone(t *testing.T, srv *Server, c *conn) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		srv.mu.Lock()
		_, live := srv.live[c]
		srv.mu.Unlock()
		if !live {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An idle session parks in the poller with no goroutine; a stanza wakes it and is handled; when the server ends
// the stream of a parked session (shutdown, ping timeout), the session ends and the client gets the stream error.
func TestParkedSessionWakesAndEnds(t *testing.T) {
	srv, c, cc := parkedConn(t)
	waitParked(t, c)

	cc.Write([]byte("<message to='juliet@example.net/balcony' id='m1'><body>after a nap</body></message>"))
	readUntil(t, cc, "after a nap")
	waitParked(t, c)

	c.closeStream("system-shutdown", "")
	readUntil(t, cc, "</stream:stream>")
	waitGone(t, srv, c)
	p := parkPoller()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.waiting {
		if w == c {
			t.Fatal("an ended connection is still in the poller")
		}
	}
}

// A client that goes away while its session is parked ends the session.
func TestParkedSessionPeerCloses(t *testing.T) {
	srv, c, cc := parkedConn(t)
	waitParked(t, c)
	cc.Close()
	waitGone(t, srv, c)
}

// When epoll_wait fails, the poller resumes every connection parked in it (their loops go on) and parks
// nothing more, so that conn.next falls back to a goroutine per idle session instead of leaving sessions
// unserved.
func TestPollerFailureResumesParked(t *testing.T) {
	_, c, cc := streamConn(t, "romeo@example.net/orchard")

	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(epfd)
	p := &poller{epfd: epfd, waiting: make(map[int32]*conn)} // not the process's poller, and no run loop
	if !p.park(c) {
		t.Fatal("park refused a live socket")
	}
	p.fail(errors.New("test failure"))
	p.mu.Lock()
	left := len(p.waiting)
	p.mu.Unlock()
	if left != 0 {
		t.Fatalf("after the failure %d connections still wait", left)
	}
	// The resumed loop serves the client.
	cc.Write([]byte("<message to='romeo@example.net/orchard' id='m1'><body>still here</body></message>"))
	readUntil(t, cc, "still here")
	if p.park(c) {
		t.Fatal("a failed poller accepted a connection")
	}
}
