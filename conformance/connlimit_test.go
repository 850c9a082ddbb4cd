package conformance

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// openStream connects to addr (from local, if set), opens a stream and returns what the server answered: its
// stream features, or a stream error and the close tag.
func openStream(t *testing.T, addr, local string) (net.Conn, string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Errorf("dial %s from %q: %v", addr, local, err)
		return nil, ""
	}
	t.Cleanup(func() { nc.Close() })
	nc.Write([]byte(streamHeader)) // a refused connection may be closed before this arrives: not checked
	var acc strings.Builder
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for !strings.Contains(acc.String(), "</stream:features>") && !strings.Contains(acc.String(), "</stream:stream>") {
		n, err := nc.Read(buf)
		acc.Write(buf[:n])
		if err != nil {
			break
		}
	}
	nc.SetReadDeadline(time.Time{})
	return nc, acc.String()
}

// Issue 19 item 5: with the default configuration, 150 users behind one NAT address (here 127.0.0.1) connect
// over a few seconds and stay connected; the old default cap of 100 concurrent connections per address refused
// the 101st. A flood from that address beyond the burst and rate is refused with policy-violation, and another address
// (127.0.0.2) still gets in meanwhile.
func TestDefectOneNATHundredUsers(t *testing.T) {
	srv := Start(t, "")
	addr := srv.Addrs["c2s"]
	// 40 a second: twice the sustained rate, the first 100 within the burst.
	for i := range 150 {
		start := time.Now()
		if _, got := openStream(t, addr, ""); !strings.Contains(got, "</stream:features>") {
			t.Fatalf("user %d behind the NAT refused: %s", i+1, got)
		}
		time.Sleep(25*time.Millisecond - time.Since(start))
	}

	// A flood: 300 connections at once. Each is answered with features or with policy-violation, and no more
	// get in than the burst (100 at most, fewer if not yet refilled) and the rate (20/s) allow while it lasts.
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, refused := 0, 0
	flood := time.Now()
	for range 300 {
		wg.Go(func() {
			_, got := openStream(t, addr, "")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case strings.Contains(got, "</stream:features>"):
				accepted++
			case strings.Contains(got, "<policy-violation") && strings.Contains(got, "too many new connections"):
				refused++
			default:
				t.Errorf("flood connection got neither features nor policy-violation: %q", got)
			}
		})
	}
	wg.Wait()
	took := time.Since(flood)
	t.Logf("flood of 300 after 150 logins, in %v: %d accepted, %d refused", took, accepted, refused)
	if most := 100 + int(20*took.Seconds()) + 2; accepted > most || refused == 0 {
		t.Errorf("a flood of 300 in %v: %d accepted, want at most %d (burst 100, 20/s)", took, accepted, most)
	}
	if _, got := openStream(t, addr, "127.0.0.2"); !strings.Contains(got, "</stream:features>") {
		t.Errorf("127.0.0.2 refused while 127.0.0.1 floods: %s", got)
	}
}

// The rate limit is per address and applies to WebSocket connections as to TCP ones (same counters); the
// concurrent cap, off by default, still works when set (TestConnectionLimitPerIP).
func TestConnectionRatePerIPAppliesToWebSocket(t *testing.T) {
	t.Setenv("PARLEY_C2S_CONN_RATE_PER_IP", "0.1") // one token per 10 s: nothing refills during the test
	t.Setenv("PARLEY_C2S_CONN_BURST_PER_IP", "3")
	srv := startWS(t)
	for i := range 3 {
		if _, got := openStream(t, srv.Addrs["c2s"], ""); !strings.Contains(got, "</stream:features>") {
			t.Fatalf("connection %d within the burst refused: %s", i+1, got)
		}
	}
	if _, got := openStream(t, srv.Addrs["c2s"], ""); !strings.Contains(got, "<policy-violation") {
		t.Fatalf("fourth connection beyond a burst of 3 got %s", got)
	}
	// Refused as soon as the upgrade hands it over, before the client's <open/>: the stream error comes unasked.
	ws := dialWS(t, wsURL(t, srv), "ws")
	ws.await(`policy-violation`, 5*time.Second)
	if _, got := openStream(t, srv.Addrs["c2s"], "127.0.0.2"); !strings.Contains(got, "</stream:features>") {
		t.Fatalf("127.0.0.2 refused because of 127.0.0.1: %s", got)
	}
}
