package c2s

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func defaultThrottle(t *testing.T) *authThrottle {
	t.Helper()
	var cfg Config
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.setDefaults()
	return newAuthThrottle(cfg)
}

// Defect (issue 13): after 1,000 failed logins for one account from one address, every login from that address
// was refused for the window, correct passwords for other accounts included, and the attacked account was
// refused from everywhere. With the default configuration the attacker's pair is delayed (1 s doubling to
// 10 s), then refused; another account from the same address is delayed at most 1 s and never refused; the
// attacked account from another address is not delayed at all.
func TestDefectAuthThrottleNeverLocksOutInnocent(t *testing.T) {
	th := defaultThrottle(t)
	const attacker = "198.51.100.7"
	now := t0
	var delays []time.Duration
	refusedAt := -1
	for i := 0; i < 1000; i++ {
		d, refuse := th.verdict("alice", attacker, now)
		if refuse && refusedAt < 0 {
			refusedAt = i
		}
		if !refuse {
			delays = append(delays, d)
		}
		th.fail("alice", attacker, now)
		now = now.Add(d + 10*time.Millisecond)
	}
	want := []time.Duration{0, 0, 0, 0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second}
	for i, w := range want {
		if delays[i] != w {
			t.Errorf("attempt %d delayed %v, want %v (all: %v)", i, delays[i], w, delays)
		}
	}
	if refusedAt != 20 {
		t.Errorf("first refusal at attempt %d, want 20 (auth_refuse_after)", refusedAt)
	}
	for i := 9; i < len(delays); i++ {
		if delays[i] != 10*time.Second {
			t.Errorf("attempt %d delayed %v, want the 10 s cap", i, delays[i])
		}
	}

	// Other accounts from the same address, each with its correct password or a single typo: a little delay,
	// never a refusal.
	for i := 0; i < 50; i++ {
		user := fmt.Sprintf("user%d", i)
		d, refuse := th.verdict(user, attacker, now)
		if refuse || d != time.Second {
			t.Fatalf("%s from the attacked address: delay %v, refused %v; want 1 s, not refused", user, d, refuse)
		}
		if i%2 == 0 {
			th.fail(user, attacker, now)
		} else {
			th.succeeded(user, attacker)
		}
	}
	// The attacked account from elsewhere: nothing.
	if d, refuse := th.verdict("alice", "203.0.113.9", now); d != 0 || refuse {
		t.Fatalf("alice from another address: delay %v, refused %v", d, refuse)
	}
	// The pair's refusal lasts as long as it keeps failing, then the window forgets it.
	if _, refuse := th.verdict("alice", attacker, now.Add(14*time.Minute)); !refuse {
		t.Error("pair not refused 14 minutes after its last failure")
	}
	if d, refuse := th.verdict("alice", attacker, now.Add(16*time.Minute)); refuse || d != 0 {
		t.Errorf("pair 16 minutes after its last failure: delay %v, refused %v", d, refuse)
	}
}

// The address delay grows with the address's failures, from a fraction of auth_ip_max_delay at
// auth_failures_per_ip to all of it at twice that, and a success clears only its own pair.
func TestAuthThrottleAddressDelayAndSuccess(t *testing.T) {
	th := defaultThrottle(t)
	const addr = "192.0.2.1"
	for i := 0; i < 19; i++ {
		th.fail(fmt.Sprintf("u%d", i), addr, t0)
	}
	if d, _ := th.verdict("bob", addr, t0); d != 0 {
		t.Fatalf("19 failures (limit 20): bob delayed %v", d)
	}
	th.fail("u19", addr, t0)
	if d, _ := th.verdict("bob", addr, t0); d != time.Second/20 {
		t.Fatalf("20 failures: bob delayed %v, want 50ms", d)
	}
	for i := 0; i < 30; i++ {
		th.fail("u", addr, t0)
	}
	if d, _ := th.verdict("bob", addr, t0); d != time.Second {
		t.Fatalf("50 failures: bob delayed %v, want the 1 s cap", d)
	}
	// "u" has 30 failures: refused; a success of "u" (the real owner, elsewhere in the NAT) clears its pair.
	if _, refuse := th.verdict("u", addr, t0); !refuse {
		t.Fatal("u not refused after 30 failures")
	}
	th.succeeded("u", addr)
	if d, refuse := th.verdict("u", addr, t0); refuse || d != time.Second {
		t.Fatalf("after a success: delay %v, refused %v; want the address delay only", d, refuse)
	}
}

// IPv6 addresses count by /64, IPv4 (also mapped) by address.
func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":                 "192.0.2.1",
		"::ffff:192.0.2.1":          "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":      "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":      "2001:db8:1:2::/64",
		"2001:db8:1:3::1":           "2001:db8:1:3::/64",
		"fe80::1%eth0":              "fe80::/64",
		"not an address":            "not an address",
		"2001:0db8:0001:0002::0001": "2001:db8:1:2::/64",
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
	th := defaultThrottle(t)
	for i := 0; i < 30; i++ {
		th.fail("alice", addrKey(fmt.Sprintf("2001:db8:1:2::%x", i+1)), t0) // a new address in the /64 each time
	}
	if _, refuse := th.verdict("alice", addrKey("2001:db8:1:2:dead::1"), t0); !refuse {
		t.Error("hopping addresses within one /64 escaped the pair refusal")
	}
	if d, refuse := th.verdict("alice", addrKey("2001:db8:1:3::1"), t0); refuse || d != 0 {
		t.Errorf("the next /64: delay %v, refused %v", d, refuse)
	}
	// The connection rate limit uses the same key (admitAt).
	srv := benchServer(t)
	srv.connRate = newConnRate(1, 2)
	for i := 0; i < 2; i++ {
		if why := srv.admitAt(fmt.Sprintf("2001:db8:9:9::%x", i+1), t0); why != "" {
			t.Fatalf("connection %d refused: %s", i, why)
		}
		srv.conns.release(fmt.Sprintf("2001:db8:9:9::%x", i+1))
	}
	if why := srv.admitAt("2001:db8:9:9::99", t0); !strings.Contains(why, "too many new connections") {
		t.Errorf("a third address of the same /64 within the burst of 2 was admitted (%q)", why)
	}
}

// Memory stays bounded when an attacker sprays names or addresses.
func TestAuthThrottleMemoryIsBounded(t *testing.T) {
	th := defaultThrottle(t)
	for i := 0; i < maxThrottleEntries+5000; i++ {
		th.fail(fmt.Sprintf("user%d", i), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), t0)
	}
	if len(th.pairs) > maxThrottleEntries || len(th.addrs) > maxThrottleEntries {
		t.Fatalf("tables hold %d pairs and %d addresses, bound %d", len(th.pairs), len(th.addrs), maxThrottleEntries)
	}
	// Stale entries go at the next sweep.
	th.fail("x", "10.0.0.1", t0.Add(time.Hour))
	if len(th.pairs) != 1 || len(th.addrs) != 1 {
		t.Fatalf("after the window: %d pairs, %d addresses", len(th.pairs), len(th.addrs))
	}
}

func TestAuthThrottleConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{AuthFailuresPerAccount: 10, AuthRefuseAfter: 5}, "c2s.auth_refuse_after"},
		{Config{AuthDelay: -time.Second}, "c2s.auth_delay"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}

// Delays stay below half the negotiation timeout, whatever they are configured to.
func TestAuthThrottleDelaysFitNegotiation(t *testing.T) {
	cfg := Config{NegotiationTimeout: time.Second}
	cfg.setDefaults()
	th := newAuthThrottle(cfg)
	for i := 0; i < 19; i++ {
		th.fail("alice", "192.0.2.1", t0)
	}
	if d, refuse := th.verdict("alice", "192.0.2.1", t0); refuse || d != 500*time.Millisecond {
		t.Fatalf("delay %v refused %v, want 500ms (half of a 1 s negotiation timeout)", d, refuse)
	}
}
