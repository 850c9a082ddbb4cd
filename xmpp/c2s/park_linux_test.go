package c2s

import (
	"bytes"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"parley.im/parley/xmpp/internal/tcptest"
	"parley.im/parley/xmpp/stream"
	"parley.im/parley/xmpp/transport"
)

// The parking of a bound session's reader (transport.Parker) as the stanza loop uses it. The poller itself is
// tested in xmpp/transport.

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
	c.park.Init(sc, c.resumeParked)
	c.out.SetRoom(transport.SendRoom(c.park.Raw))
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
	deadline := time.Now().Add(transport.ParkAfter + 3*time.Second)
	for {
		if c.park.Parked() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an idle session did not park")
		}
		time.Sleep(20 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	all := string(buf[:runtime.Stack(buf, true)])
	for _, f := range []string{"(*conn).loop", "(*Parker).unpark", "waitReadable"} {
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
	if c.park.Parked() {
		t.Fatal("an ended connection is still in the poller")
	}
}

// A client that goes away while its session is parked ends the session.
func TestParkedSessionPeerCloses(t *testing.T) {
	srv, c, cc := parkedConn(t)
	waitParked(t, c)
	cc.Close()
	waitGone(t, srv, c)
}
