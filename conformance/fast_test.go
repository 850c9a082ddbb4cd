package conformance

import (
	"bytes"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// wireRelay is a TCP relay between a client and the server that records each connection's flights: a flight
// is what one side sends before the other answers, so the client's flights are the round trips it waits for.
type wireRelay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*wireConn
}

type wireConn struct {
	mu      sync.Mutex
	last    byte // 'C' or 'S': who sent the last chunk
	flights []flight
	client  net.Conn
	server  net.Conn
}

type flight struct {
	from byte
	data []byte
}

func newWireRelay(t *testing.T, target string) *wireRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &wireRelay{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); r.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			wc := &wireConn{client: c, server: s}
			r.mu.Lock()
			r.conns = append(r.conns, wc)
			r.mu.Unlock()
			go wc.pipe(c, s, 'C')
			go wc.pipe(s, c, 'S')
		}
	}()
	return r
}

func (wc *wireConn) pipe(from, to net.Conn, who byte) {
	buf := make([]byte, 64<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			wc.mu.Lock()
			if wc.last != who {
				wc.flights = append(wc.flights, flight{from: who})
				wc.last = who
			}
			f := &wc.flights[len(wc.flights)-1]
			f.data = append(f.data, buf[:n]...)
			wc.mu.Unlock()
			if _, err := to.Write(buf[:n]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	from.Close()
	to.Close()
}

// cut drops every connection at once, as a phone losing its network: no close frame, no </stream>.
func (r *wireRelay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.client.Close()
		c.server.Close()
	}
}

func (r *wireRelay) conn(i int) *wireConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i >= len(r.conns) {
		return nil
	}
	return r.conns[i]
}

// roundTrips counts the client's flights up to the first server flight containing marker (the server's
// WebSocket frames are not masked, so their payload is readable on the wire), and returns that count.
func (wc *wireConn) roundTrips(marker string) (int, bool) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	n := 0
	for _, f := range wc.flights {
		if f.from == 'C' {
			n++
			continue
		}
		if bytes.Contains(f.data, []byte(marker)) {
			return n, true
		}
	}
	return n, false
}

// Issue 13, acceptance 1: xmpp.js 0.14 (@xmpp/client with its SASL2, Bind 2 and FAST support) logs in over
// WebSocket with SASL2 + Bind 2 and its password, gets a FAST token, loses its connection, and logs in again
// with the token alone (no password is given to it), resuming its XEP-0198 session inside the same SASL2
// <authenticate/>. On the wire, counted by a relay: the reconnect takes three round trips (the WebSocket
// upgrade, the stream header with its features, and <authenticate/> answered by <success/> with <resumed/>),
// where the password login took more; the message sent while it was away is replayed.
func TestXmppJSFASTResume(t *testing.T) {
	node := requireXmppJS(t)
	srv := startWS(t)
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := Dial(t, srv, "bob", "bob-secret", "mellium")
	bob.Send(`<presence/>`)
	relay := newWireRelay(t, strings.TrimPrefix(wsBase(t, srv), "http://"))
	url := "ws://" + relay.ln.Addr().String() + "/xmpp-websocket"

	script, _ := filepath.Abs(filepath.Join("web", "xmppjs_fast.mjs"))
	args := append(node[1:], script, "--service", url, "--domain", "localhost", "--username", "alice",
		"--password", "alice-secret", "--peer", bob.JID.String(), "--timeout", "40")
	p := startPeer(t, "xmpp.js", exec.Command(node[0], args...))
	online := p.waitLine(30*time.Second, "online ")
	if !strings.Contains(online, "sm=on") {
		t.Fatalf("stream management not enabled by Bind 2: %s", online)
	}
	alice := strings.Fields(strings.TrimPrefix(online, "online "))[0]
	if !strings.HasPrefix(alice, "alice@localhost/phone.") {
		t.Fatalf("Bind 2 resource %q, want phone.<device part>", alice)
	}
	p.waitLine(10*time.Second, "token HT-SHA-256-NONE")
	first := relay.conn(0)
	rtPassword, ok := first.roundTrips("<bound")
	if !ok {
		t.Fatal("no <bound/> from the server on the first connection")
	}
	time.Sleep(300 * time.Millisecond) // its presence is handled and acknowledged

	relay.cut()
	time.Sleep(100 * time.Millisecond)
	bob.Send(`<message to='` + alice + `' type='chat'><body>while you were away</body></message>`)

	resumed := p.waitLine(20*time.Second, "resumed ")
	if !strings.Contains(resumed, "token-logins=1 password-logins=1") {
		t.Fatalf("xmpp.js did not reconnect with the token alone: %s", resumed)
	}
	// The replayed message may come before or after xmpp.js reports the resumption.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.Output(), "message while you were away"); {
		if time.Now().After(deadline) {
			t.Fatalf("the message sent while xmpp.js was away was not replayed:\n%s", p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	expectWhilePeer(bob, p, 10*time.Second, "resumed with FAST", `from="`+alice+`"`)

	second := relay.conn(1)
	if second == nil {
		t.Fatal("no second connection through the relay")
	}
	rt, ok := second.roundTrips("<resumed")
	if !ok {
		t.Fatal("no <resumed/> on the reconnect")
	}
	if rt != 3 {
		t.Errorf("the FAST reconnect with inline resumption took %d round trips, want 3 (upgrade, stream header, authenticate)", rt)
	}
	if !bytes.Contains(second.serverData(), []byte("<success xmlns='urn:xmpp:sasl:2'>")) {
		t.Error("no SASL2 success on the reconnect")
	}
	t.Logf("round trips: password login with SASL2 + Bind 2 %d, FAST reconnect with resumption %d", rtPassword, rt)
	log := srv.Log()
	if !strings.Contains(log, `msg="session resumed"`) {
		t.Error("the server did not log a resumption")
	}

	bob.Send(`<message to='` + alice + `' type='chat'><body>bye</body></message>`)
	p.wait(15 * time.Second)
	if out := p.Output(); strings.Contains(out, "fail") || strings.Contains(out, "error") {
		t.Errorf("xmpp.js reported a problem:\n%s", out)
	}
}

func (wc *wireConn) serverData() []byte {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	var b []byte
	for _, f := range wc.flights {
		if f.from == 'S' {
			b = append(b, f.data...)
		}
	}
	return b
}
