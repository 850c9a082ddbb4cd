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

// connCounter limits concurrent connections per IP.
type connCounter struct {
	mu    sync.Mutex
	limit int
	m     map[string]int
}

func (c *connCounter) acquire(ip string) bool {
	if c.limit < 0 {
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
	if c.limit < 0 {
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
