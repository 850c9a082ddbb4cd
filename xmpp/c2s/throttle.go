package c2s

import (
	"net/netip"
	"sync"
	"time"
)

// addrKey is the key under which an address is throttled: an IPv4 address as it is, an IPv6 address by its
// /64, because one subscriber, host or container is normally given a whole /64 and can pick any address in it.
// An IPv4-mapped IPv6 address counts as the IPv4 address. Anything that does not parse is its own key.
func addrKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// authThrottle slows down password guessing without locking out the innocent. It counts failed
// authentications per (account, source address) and per source address (addrKey), each forgotten once
// window has passed since its last failure:
//
//   - A pair past pairLimit failures has its further attempts delayed, delay doubling per failure up to
//     maxDelay; past refuseAfter failures its attempts are refused (temporary-auth-failure) without regard to
//     the password, until the window has passed since its last attempt. This is the only refusal, and it is for
//     that account from that address only: the account stays open from everywhere else, so nobody can lock a
//     victim out of their account by guessing wrong passwords for it.
//   - An address past addrLimit failures has every attempt from it delayed, failing or not, growing with its
//     failures but never beyond ipMaxDelay (a second by default): many users share one address (carrier-grade
//     NAT, a university, a WebSocket proxy), and a correct password for another account from there must only
//     ever be slowed a little, never refused.
//
// Memory: each table holds at most maxThrottleEntries keys. Stale entries are swept at most once per window,
// or whenever a table is full; a table still full after the sweep forgets arbitrary entries to make room, so
// an attacker who fills it with names can at worst reset some counts, never make new keys untracked.
type authThrottle struct {
	mu          sync.Mutex
	pairLimit   int
	refuseAfter int
	addrLimit   int
	delay       time.Duration
	maxDelay    time.Duration
	ipMaxDelay  time.Duration
	window      time.Duration
	pairs       map[pairKey]*failCount
	addrs       map[string]*failCount
	swept       time.Time
}

type pairKey struct{ user, addr string }

type failCount struct {
	n    int
	last time.Time
}

// maxThrottleEntries bounds each of authThrottle's tables.
const maxThrottleEntries = 1 << 16

func newAuthThrottle(cfg Config) *authThrottle {
	// A delayed client must still be able to finish within the negotiation timeout.
	limit := cfg.NegotiationTimeout / 2
	return &authThrottle{
		pairLimit: cfg.AuthFailuresPerAccount, refuseAfter: cfg.AuthRefuseAfter, addrLimit: cfg.AuthFailuresPerIP,
		delay: min(cfg.AuthDelay, limit), maxDelay: min(cfg.AuthMaxDelay, limit), ipMaxDelay: min(cfg.AuthIPMaxDelay, limit),
		window: cfg.AuthFailureWindow,
		pairs:  make(map[pairKey]*failCount), addrs: make(map[string]*failCount),
	}
}

// verdict says what to do with an attempt for user from addr (an addrKey) whose outcome is known but not yet
// told: wait delay before answering, or refuse it (temporary-auth-failure) whatever its outcome.
func (t *authThrottle) verdict(user, addr string, now time.Time) (delay time.Duration, refuse bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.live(t.pairs[pairKey{user, addr}], now); f != nil && t.pairLimit > 0 && f.n >= t.pairLimit {
		if t.refuseAfter > 0 && f.n >= t.refuseAfter {
			return 0, true
		}
		delay = t.pairDelay(f.n)
	}
	if f := t.live(t.addrs[addr], now); f != nil && t.addrLimit > 0 && f.n >= t.addrLimit {
		delay = max(delay, t.addrDelay(f.n))
	}
	return delay, false
}

// pairDelay is the delay of a pair with n failures (n >= pairLimit): delay, doubled per failure past the
// limit, at most maxDelay.
func (t *authThrottle) pairDelay(n int) time.Duration {
	d := t.delay
	for i := t.pairLimit; i < n && d < t.maxDelay; i++ {
		d *= 2
	}
	return min(d, t.maxDelay)
}

// addrDelay is the delay of every attempt from an address with n failures (n >= addrLimit): it grows
// linearly and reaches ipMaxDelay at twice the limit.
func (t *authThrottle) addrDelay(n int) time.Duration {
	d := time.Duration(int64(t.ipMaxDelay) * int64(n-t.addrLimit+1) / int64(t.addrLimit))
	return min(d, t.ipMaxDelay)
}

// live returns f unless it is nil or its failures have been forgotten.
func (t *authThrottle) live(f *failCount, now time.Time) *failCount {
	if f == nil || now.Sub(f.last) >= t.window {
		return nil
	}
	return f
}

// fail records a failed (or refused) attempt for user from addr. user may be "" when the exchange failed
// before naming an account; only the address counts then.
func (t *authThrottle) fail(user, addr string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.swept) >= t.window {
		t.sweep(now)
	}
	if user != "" {
		k := pairKey{user, addr}
		t.pairs[k] = t.bump(t.pairs[k], now)
	}
	t.addrs[addr] = t.bump(t.addrs[addr], now)
	t.makeRoom(now)
}

// succeeded forgets the failures of the pair: whoever got in knows the password. The address keeps its count.
func (t *authThrottle) succeeded(user, addr string) {
	t.mu.Lock()
	delete(t.pairs, pairKey{user, addr})
	t.mu.Unlock()
}

func (t *authThrottle) bump(f *failCount, now time.Time) *failCount {
	if f == nil || now.Sub(f.last) >= t.window {
		f = &failCount{}
	}
	f.n++
	f.last = now
	return f
}

// sweep drops the entries whose failures are forgotten.
func (t *authThrottle) sweep(now time.Time) {
	t.swept = now
	for k, f := range t.pairs {
		if now.Sub(f.last) >= t.window {
			delete(t.pairs, k)
		}
	}
	for k, f := range t.addrs {
		if now.Sub(f.last) >= t.window {
			delete(t.addrs, k)
		}
	}
}

// makeRoom keeps both tables within maxThrottleEntries: a full table is swept, and if that is not enough it
// forgets a sixteenth of its entries, whichever the map yields first.
func (t *authThrottle) makeRoom(now time.Time) {
	if len(t.pairs) <= maxThrottleEntries && len(t.addrs) <= maxThrottleEntries {
		return
	}
	t.sweep(now)
	evict(t.pairs)
	evict(t.addrs)
}

func evict[K comparable](m map[K]*failCount) {
	n := len(m) - maxThrottleEntries
	if n <= 0 {
		return
	}
	n += maxThrottleEntries / 16
	for k := range m {
		if n <= 0 {
			return
		}
		delete(m, k)
		n--
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
