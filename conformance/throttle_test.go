package conformance

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// throttleYAML makes the failed-login throttle fast enough for a test: a pair (account, address) is delayed
// after 3 failures (50 ms, doubling, at most 200 ms) and refused after 6; an address is delayed after 10
// failures, by at most the default 1 s. The connection rate limit is off: the attacker opens hundreds.
const throttleYAML = `c2s:
  conn_rate_per_ip: -1
  auth_failures_per_account: 3
  auth_refuse_after: 6
  auth_delay: 50ms
  auth_max_delay: 200ms
  auth_failures_per_ip: 10
  auth_ip_max_delay: 1s
`

// dialQuiet opens a direct-TLS stream from local (an address on loopback, "" for any) without a transcript:
// the attacker opens hundreds.
func dialQuiet(t *testing.T, srv *Server, local string) *xmppConn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	cfg := srv.TLSConfig()
	cfg.NextProtos = []string{"xmpp-client"}
	tc, err := tls.DialWithDialer(d, "tcp", srv.Addrs["c2s_tls"], cfg)
	if err != nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	t.Cleanup(func() { tc.Close() })
	x := &xmppConn{t: t, tcp: tc, tls: tc, tr: &transcript{Conn: tc, t: t, name: "quiet", mu: &sync.Mutex{}, buf: &bytes.Buffer{}}}
	x.open()
	return x
}

// attempt is one timed login attempt's outcome.
type attempt struct {
	outcome string
	took    time.Duration
}

// guessAttack makes n wrong-password SCRAM-SHA-256 attempts for user from local, three per connection (the
// server closes a connection after three failures), and returns each outcome and how long the server took to
// give it.
func guessAttack(t *testing.T, n int, login func(password string) attempt) []attempt {
	t.Helper()
	out := make([]attempt, 0, n)
	for len(out) < n {
		out = append(out, login("wrong-"+fmt.Sprint(len(out)%2)))
	}
	return out
}

// checkAttack asserts the attacker's course: failures, then delayed failures, then refusals.
func checkAttack(t *testing.T, attempts []attempt) {
	t.Helper()
	for i, a := range attempts {
		switch {
		case i < 3:
			if a.outcome != "not-authorized" {
				t.Fatalf("attempt %d: %s, want not-authorized", i+1, a.outcome)
			}
		case i < 6:
			want := 50 * time.Millisecond << (i - 3)
			if a.outcome != "not-authorized" || a.took < want {
				t.Fatalf("attempt %d: %s after %v, want not-authorized delayed at least %v", i+1, a.outcome, a.took, want)
			}
		default:
			if a.outcome != "temporary-auth-failure" {
				t.Fatalf("attempt %d: %s, want temporary-auth-failure (refused for the pair)", i+1, a.outcome)
			}
		}
	}
	t.Logf("attempts 4-6 took %v %v %v; %d refused", attempts[3].took, attempts[4].took, attempts[5].took, len(attempts)-6)
}

// Issue 13, acceptance 3 (defect: after 1,000 failed logins for one account from 127.0.0.1, every login from
// that address failed for five minutes, other accounts' correct passwords included): after 1,000 wrong
// passwords for alice from 127.0.0.1, bob logs in from 127.0.0.1 within two seconds, alice logs in from
// 127.0.0.2 at once, and the attacker's attempts were delayed, then refused, and stay refused.
func TestDefectThrottleNeverLocksOutInnocent(t *testing.T) {
	srv := Start(t, throttleYAML)
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")

	var x *xmppConn
	used := 0
	login := func(from, user, password string) attempt {
		if x == nil || used == 3 {
			if x != nil {
				x.tcp.Close()
			}
			x, used = dialQuiet(t, srv, from), 0
		}
		used++
		start := time.Now()
		got := x.scramAuth("SCRAM-SHA-256", user, password, "n", nil)
		return attempt{got, time.Since(start)}
	}
	attacks := guessAttack(t, 1000, func(pw string) attempt { return login("127.0.0.1", "alice", pw) })
	checkAttack(t, attacks)

	b := dialQuiet(t, srv, "127.0.0.1")
	start := time.Now()
	if got := b.scramAuth("SCRAM-SHA-256", "bob", "bob-secret", "n", nil); got != "success" {
		t.Fatalf("bob from the attacked address: %s, want success", got)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("bob from the attacked address took %v, want under 2 s", took)
	} else {
		t.Logf("bob from the attacked address logged in after %v", took)
	}

	a := dialQuiet(t, srv, "127.0.0.2")
	start = time.Now()
	if got := a.scramAuth("SCRAM-SHA-256", "alice", "alice-secret", "n", nil); got != "success" {
		t.Fatalf("alice from 127.0.0.2: %s, want success", got)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("alice from 127.0.0.2 took %v, want no delay", took)
	}

	// The pair stays refused, even with the right password: the attacker learns nothing more.
	x = nil
	if got := login("127.0.0.1", "alice", "alice-secret"); got.outcome != "temporary-auth-failure" {
		t.Fatalf("alice's right password from the attacking address: %s, want temporary-auth-failure", got.outcome)
	}
}

// The same through WebSocket behind a trusted proxy (websocket.trusted_proxies, here all of loopback, without
// trust_proxy_tls, so that only the list makes the forwarded address count) that forwards each client's address
// in X-Forwarded-For: the attacker's forwarded address is throttled, bob behind the same forwarded address gets
// in within two seconds, alice from another forwarded address at once.
func TestThrottleWebSocketTrustedProxy(t *testing.T) {
	t.Setenv("PARLEY_LISTEN_HTTP", "127.0.0.1:0")
	srv := Start(t, throttleYAML+"  allow_plaintext: true\nwebsocket:\n  allow_plaintext: true\n  trusted_proxies: [\"127.0.0.0/8\"]\n")
	if srv.Addrs["http"] == "" {
		t.Fatalf("no plain HTTP listener: %v", srv.Addrs)
	}
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	url := "ws://" + srv.Addrs["http"] + "/xmpp-websocket"

	var x *xmppConn
	used := 0
	login := func(client, user, password string) attempt {
		if x == nil || used == 3 {
			if x != nil {
				x.tcp.Close()
			}
			x, used = dialWSStream(t, url, client), 0
		}
		used++
		start := time.Now()
		got := x.scramAuth("SCRAM-SHA-256", user, password, "n", nil)
		return attempt{got, time.Since(start)}
	}
	attacks := guessAttack(t, 1000, func(pw string) attempt { return login("198.51.100.7", "alice", pw) })
	checkAttack(t, attacks)

	x = nil
	if got := login("198.51.100.7", "bob", "bob-secret"); got.outcome != "success" || got.took > 2*time.Second {
		t.Fatalf("bob behind the attacker's forwarded address: %s after %v, want success within 2 s", got.outcome, got.took)
	} else {
		t.Logf("bob behind the attacker's forwarded address logged in after %v", got.took)
	}
	x = nil
	if got := login("198.51.100.8", "alice", "alice-secret"); got.outcome != "success" || got.took > 500*time.Millisecond {
		t.Fatalf("alice from another forwarded address: %s after %v, want success at once", got.outcome, got.took)
	}
	x = nil
	if got := login("198.51.100.7", "alice", "alice-secret"); got.outcome != "temporary-auth-failure" {
		t.Fatalf("alice's right password from the attacker's forwarded address: %s, want temporary-auth-failure", got.outcome)
	}
}

// dialWSStream opens a WebSocket as a proxy would for client (X-Forwarded-For names it) and returns it as a
// stream of elements after <open/> and the features, without a transcript.
func dialWSStream(t *testing.T, url, client string) *xmppConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"xmpp"},
		HTTPHeader: http.Header{"X-Forwarded-For": {client}}})
	if err != nil {
		t.Fatalf("websocket dial: %v", err)
	}
	nc := websocket.NetConn(context.Background(), c, websocket.MessageText)
	t.Cleanup(func() { nc.Close() })
	x := &xmppConn{t: t, tcp: nc, tr: &transcript{Conn: nc, t: t, name: "quiet ws", mu: &sync.Mutex{}, buf: &bytes.Buffer{}}}
	x.send(wsOpen)
	x.expect("<open ")
	x.expect("<stream:features")
	return x
}
