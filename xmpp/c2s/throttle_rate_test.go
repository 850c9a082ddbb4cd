package c2s

import (
	"net"
	"testing"
	"time"
)

// c2s.rate_bytes reaches every connection: past a burst, reading pauses for what the rate allows.
func TestRateBytesApplied(t *testing.T) {
	srv := benchServer(t) // defaults: rate_bytes 1 MiB/s, max_stanza 256 KiB
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := srv.newConn(a, "192.0.2.1", false)
	defer srv.forget(c)
	now := time.Now()
	if d := c.rate.take(512<<10, now); d != 0 {
		t.Fatalf("within the burst the reader paused %v", d)
	}
	d := c.rate.take(1<<20, now)
	if d < 400*time.Millisecond || d > 600*time.Millisecond {
		t.Fatalf("1 MiB past a 1 MiB burst with 512 KiB used: pause %v, want about 0.5 s", d)
	}

	srv.cfg.RateBytes = -1
	c2 := srv.newConn(b, "192.0.2.2", false)
	defer srv.forget(c2)
	if d := c2.rate.take(100<<20, now); d != 0 {
		t.Fatalf("rate_bytes -1 (unlimited) paused %v", d)
	}
}
