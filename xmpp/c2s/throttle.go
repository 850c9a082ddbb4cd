package c2s

import (
	"sync"
	"time"
)

// failures counts failed authentications per key (an IP address or an account) in fixed windows. Memory stays
// bounded: stale entries are dropped whenever the map is consulted after a window has passed.
type failures struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	m      map[string]*failWindow
	swept  time.Time
}

type failWindow struct {
	start time.Time
	n     int
}

func newFailures(limit int, window time.Duration) *failures {
	return &failures{limit: limit, window: window, m: make(map[string]*failWindow)}
}

// blocked reports whether key has used up its failures in the current window.
func (f *failures) blocked(key string, now time.Time) bool {
	if f.limit <= 0 || key == "" {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sweep(now)
	w := f.m[key]
	return w != nil && now.Sub(w.start) < f.window && w.n >= f.limit
}

// fail records a failure for key.
func (f *failures) fail(key string, now time.Time) {
	if f.limit <= 0 || key == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.m[key]
	if w == nil || now.Sub(w.start) >= f.window {
		w = &failWindow{start: now}
		f.m[key] = w
	}
	w.n++
}

func (f *failures) sweep(now time.Time) {
	if now.Sub(f.swept) < f.window {
		return
	}
	f.swept = now
	for k, w := range f.m {
		if now.Sub(w.start) >= f.window {
			delete(f.m, k)
		}
	}
}

// connRate limits how fast one address may open connections (c2s.conn_rate_per_ip, c2s.conn_burst_per_ip): a
// token bucket per address that holds burst tokens and refills at rate per second. Each accepted connection
// takes a token; with none left the connection is refused. A refused attempt takes nothing, so a client that
// keeps retrying gets in at the sustained rate.
//
// It limits the rate and not the number because many legitimate users share one address (an office or
// carrier-grade NAT): they connect over minutes, while a flood or a reconnect loop opens hundreds a second.
//
// Memory: a bucket that has refilled is the same as no bucket, so full buckets are dropped by a sweep that runs
// at most once per refill time (burst/rate, 5 s by default). The table then holds only addresses that connected
// within about the last refill time, and never more than maxRateEntries: past that a new address is let in
// untracked (refusing it would let whoever fills the table lock everyone else out).
type connRate struct {
	mu    sync.Mutex
	rate  float64 // tokens per second; 0 turns the limit off
	burst float64
	m     map[string]*rateEntry
	swept time.Time
}

type rateEntry struct {
	tokens float64
	last   time.Time
	warned bool // a refusal was logged since the last accepted connection
}

// maxRateEntries bounds the addresses connRate tracks.
const maxRateEntries = 1 << 16

func newConnRate(rate float64, burst int) *connRate {
	if rate <= 0 || burst <= 0 {
		return &connRate{}
	}
	return &connRate{rate: rate, burst: float64(burst), m: make(map[string]*rateEntry)}
}

// allow takes a token for a new connection from ip and reports whether there was one; warn is set on the first
// refusal since ip's last accepted connection, so that a flood is logged once and not once per connection.
func (r *connRate) allow(ip string, now time.Time) (ok, warn bool) {
	if r.rate <= 0 {
		return true, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.m[ip]
	if e == nil {
		if len(r.m) >= maxRateEntries {
			r.sweep(now, time.Second)
			if len(r.m) >= maxRateEntries {
				return true, false
			}
		}
		r.sweep(now, r.refill())
		r.m[ip] = &rateEntry{tokens: r.burst - 1, last: now}
		return true, false
	}
	if d := now.Sub(e.last); d > 0 {
		e.tokens = min(r.burst, e.tokens+d.Seconds()*r.rate)
		e.last = now
	}
	if e.tokens < 1 {
		warn = !e.warned
		e.warned = true
		return false, warn
	}
	e.tokens--
	e.warned = false
	return true, false
}

// refill is how long an empty bucket takes to fill, at least a second.
func (r *connRate) refill() time.Duration {
	return max(time.Second, time.Duration(r.burst/r.rate*float64(time.Second)))
}

// sweep drops the buckets that have refilled, unless the last sweep was less than every ago.
func (r *connRate) sweep(now time.Time, every time.Duration) {
	if now.Sub(r.swept) < every {
		return
	}
	r.swept = now
	for ip, e := range r.m {
		if e.tokens+now.Sub(e.last).Seconds()*r.rate >= r.burst {
			delete(r.m, ip)
		}
	}
}

// connCounter limits concurrent connections per IP (c2s.max_conns_per_ip); a limit of 0 or less is no limit.
type connCounter struct {
	mu    sync.Mutex
	limit int
	m     map[string]int
}

func (c *connCounter) acquire(ip string) bool {
	if c.limit <= 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[ip] >= c.limit {
		return false
	}
	c.m[ip]++
	return true
}

func (c *connCounter) release(ip string) {
	if c.limit <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[ip] <= 1 {
		delete(c.m, ip)
		return
	}
	c.m[ip]--
}

// bucket is a token bucket on bytes read, refilled lazily; wait returns how long the reader should pause.
type bucket struct {
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
}

func (b *bucket) take(n int, now time.Time) time.Duration {
	if b.rate <= 0 {
		return 0
	}
	if b.last.IsZero() {
		b.last, b.tokens = now, b.burst
	}
	b.tokens += now.Sub(b.last).Seconds() * b.rate
	if b.tokens > b.burst {
		b.tokens = b.burst
	}
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}
