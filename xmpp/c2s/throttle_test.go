package c2s

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// The bucket lets a burst through at once, then the sustained rate; refused attempts cost nothing, and a
// flood is reported once, not once per connection.
func TestConnRateBurstThenSustained(t *testing.T) {
	r := newConnRate(20, 100)
	for i := range 100 {
		if ok, _ := r.allow("192.0.2.1", t0); !ok {
			t.Fatalf("connection %d of a burst of 100 refused", i+1)
		}
	}
	ok, warn := r.allow("192.0.2.1", t0)
	if ok || !warn {
		t.Fatalf("101st at once: ok %v warn %v, want refused with a warning", ok, warn)
	}
	for range 50 {
		if ok, warn := r.allow("192.0.2.1", t0); ok || warn {
			t.Fatalf("flood: ok %v warn %v, want refused without another warning", ok, warn)
		}
	}
	// One token per 50 ms at 20/s; the 51 refused attempts did not put the address in debt.
	if ok, _ := r.allow("192.0.2.1", t0.Add(49*time.Millisecond)); ok {
		t.Fatal("a connection before a token refilled was accepted")
	}
	if ok, _ := r.allow("192.0.2.1", t0.Add(50*time.Millisecond)); !ok {
		t.Fatal("refused after a token refilled")
	}
	// A client retrying every 10 ms for a second gets exactly the sustained rate.
	start := t0.Add(time.Second)
	n := 0
	for i := range 100 {
		if ok, _ := r.allow("192.0.2.1", start.Add(time.Duration(i)*10*time.Millisecond)); ok {
			n++
		}
	}
	// At start the bucket holds 19 tokens (0.95 s since the last one), then 20/s over 0.99 s.
	if n < 37 || n > 39 {
		t.Fatalf("%d connections accepted while retrying for a second after a flood, want about 38 (19 refilled + 20/s)", n)
	}
	// A quiet period refills the whole burst.
	for i := range 100 {
		if ok, _ := r.allow("192.0.2.1", start.Add(time.Minute)); !ok {
			t.Fatalf("after a quiet minute connection %d was refused", i+1)
		}
	}
}

// One address's flood leaves the others alone.
func TestConnRateAddressesAreIndependent(t *testing.T) {
	r := newConnRate(1, 2)
	r.allow("192.0.2.1", t0)
	r.allow("192.0.2.1", t0)
	if ok, _ := r.allow("192.0.2.1", t0); ok {
		t.Fatal("third connection of a burst of 2 accepted")
	}
	for _, ip := range []string{"192.0.2.2", "2001:db8::1"} {
		if ok, _ := r.allow(ip, t0); !ok {
			t.Fatalf("%s refused because of 192.0.2.1", ip)
		}
	}
}

// Buckets that refilled are forgotten, and the table never grows past maxRateEntries; a new address past that
// is let in (untracked) rather than refused.
func TestConnRateMemoryIsBounded(t *testing.T) {
	r := newConnRate(20, 100) // refills in 5 s
	for i := range 1000 {
		r.allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256), t0)
	}
	if len(r.m) != 1000 {
		t.Fatalf("%d buckets, want 1000", len(r.m))
	}
	r.allow("192.0.2.1", t0.Add(4*time.Second)) // not yet refilled: kept
	if len(r.m) != 1001 {
		t.Fatalf("%d buckets after 4 s, want 1001 (none refilled yet)", len(r.m))
	}
	r.allow("192.0.2.2", t0.Add(6*time.Second))
	// The sweep at 6 s drops the thousand (refilled after 5 s) and 192.0.2.1 (one token used at 4 s, back
	// within 50 ms): only the newest bucket is left.
	if len(r.m) != 1 || r.m["192.0.2.2"] == nil {
		t.Fatalf("%d buckets after the refill time, want only 192.0.2.2's", len(r.m))
	}

	r = newConnRate(20, 100)
	for i := range maxRateEntries {
		r.allow(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), t0)
	}
	if ok, _ := r.allow("192.0.2.1", t0); !ok {
		t.Fatal("a new address was refused because the table is full")
	}
	if len(r.m) > maxRateEntries {
		t.Fatalf("%d buckets, over the bound %d", len(r.m), maxRateEntries)
	}
	// Once the table's buckets have refilled they make room again.
	r.allow("192.0.2.2", t0.Add(10*time.Second))
	if len(r.m) != 1 {
		t.Fatalf("%d buckets after every one refilled, want 1", len(r.m))
	}
}

func TestConnRateOff(t *testing.T) {
	for _, r := range []*connRate{newConnRate(-1, 100), newConnRate(20, 0)} {
		for range 1000 {
			if ok, _ := r.allow("192.0.2.1", t0); !ok {
				t.Fatal("refused with the limit off")
			}
		}
	}
}

// Issue 19 item 5: with the default configuration, 150 users behind one NAT address connect over a few seconds
// (40 a second, twice the sustained rate, the first 100 within the burst) and stay connected: none is refused.
// The old default, a cap of 100 concurrent connections per address, refused the 101st. A flood from that
// address is still refused, and other addresses are not affected.
func TestDefectOneNATHundredUsers(t *testing.T) {
	srv := benchServer(t) // the default limits
	const nat = "198.51.100.7"
	now := t0
	for i := range 150 {
		if why := srv.admitAt(nat, now); why != "" {
			t.Fatalf("user %d behind the NAT refused: %s", i+1, why)
		}
		now = now.Add(25 * time.Millisecond)
	}
	refused := 0
	for range 200 {
		if srv.admitAt(nat, now) != "" {
			refused++
		}
	}
	if refused < 150 {
		t.Fatalf("a flood of 200 connections at once after that: %d refused, want most of them", refused)
	}
	if why := srv.admitAt("198.51.100.8", now); why != "" {
		t.Fatalf("another address refused during the flood: %s", why)
	}
	if srv.Stats.Refused.Load() != uint64(refused) {
		t.Fatalf("Stats.Refused = %d, want %d", srv.Stats.Refused.Load(), refused)
	}
}

// c2s.max_conns_per_ip still caps concurrent connections for operators who set it; forget gives the place back.
func TestMaxConnsPerIPWhenSet(t *testing.T) {
	srv := benchServer(t)
	srv.conns = connCounter{limit: 2, m: make(map[string]int)}
	for i := range 2 { // admitAt counts each connection it admits: the calls are not interchangeable
		if r := srv.admitAt("192.0.2.1", t0); r != "" {
			t.Fatalf("connection %d refused under the cap: %s", i+1, r)
		}
	}
	if srv.admitAt("192.0.2.1", t0) == "" {
		t.Fatal("third concurrent connection accepted with max_conns_per_ip 2")
	}
	srv.conns.release("192.0.2.1")
	if why := srv.admitAt("192.0.2.1", t0); why != "" {
		t.Fatalf("refused after a connection ended: %s", why)
	}
}

func TestConnLimitConfig(t *testing.T) {
	var c Config
	c.setDefaults()
	if c.ConnRatePerIP != 20 || c.ConnBurstPerIP != 100 || c.MaxConnsPerIP != 0 {
		t.Fatalf("defaults: rate %v burst %d cap %d, want 20, 100 and no cap", c.ConnRatePerIP, c.ConnBurstPerIP, c.MaxConnsPerIP)
	}
	if err := (Config{ConnBurstPerIP: -5}).Validate(); err == nil {
		t.Fatal("a negative burst was accepted")
	}
	if err := (Config{ConnRatePerIP: -1}).Validate(); err != nil {
		t.Fatalf("rate -1 (off): %v", err)
	}
}
