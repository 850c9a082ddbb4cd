package main

import (
	"bytes"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// base is the origin of every timestamp the benchmark embeds in a message: a monotonic offset from it,
// so that wall-clock steps during a run cannot skew latencies (sender and receiver are this process).
var base = time.Now()

func sinceBase() time.Duration { return time.Since(base) }

// loginResult is the outcome of logging in a range of users.
type loginResult struct {
	sessions []*session // nil where the login failed; index i is user first+i
	hist     histogram
	errs     tally
	ok       int
	took     time.Duration
}

// loginMany logs in users first..first+n-1, starting one login every 1/rate seconds (open loop: a slow
// server makes logins overlap, it does not slow the ramp). Each login's goroutine becomes that session's
// reader, calling handle for every stanza; dropped is called when a session ends unexpectedly.
func loginMany(c *client, first, n int, rate float64, handle func(*session, []byte), dropped func(*session, error)) *loginResult {
	lr := &loginResult{sessions: make([]*session, n)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := time.Now()
	for i := 0; i < n; i++ {
		if rate > 0 {
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		wg.Add(1)
		go func(i int) {
			s, d, err := c.login(first+i, handle)
			if err != nil {
				lr.errs.add(err)
				wg.Done()
				return
			}
			lr.hist.record(d)
			mu.Lock()
			lr.sessions[i] = s
			lr.ok++
			mu.Unlock()
			wg.Done()
			s.runReader(handle, dropped)
		}(i)
	}
	wg.Wait()
	lr.took = time.Since(start)
	return lr
}

// online returns the sessions that logged in.
func (lr *loginResult) online() []*session {
	var out []*session
	for _, s := range lr.sessions {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// closeAll ends every session and gives the readers a moment to see the server close the streams.
func closeAll(ss []*session) {
	for _, s := range ss {
		if s != nil {
			s.close()
		}
	}
}

// registerAll creates accounts first..first+n-1 with workers parallel XEP-0077 registrations. It gives up
// after maxRegisterFailures failures, so that a server that refuses registration cannot keep an unattended
// run busy for hours of timeouts.
func registerAll(c *client, first, n, workers int) (failed int, firstErr error) {
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < max(1, workers); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := c.register(first + i); err != nil {
					mu.Lock()
					failed++
					if firstErr == nil {
						firstErr = err
					}
					if failed >= maxRegisterFailures {
						next.Store(int64(n))
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return failed, firstErr
}

const maxRegisterFailures = 50

// pace calls send for messages 0 .. total-1, message seq due at start + seq/rate, from
// workers goroutines that share the rate. It is open loop: each message carries the time it was due, not
// the time it went out, so a server that pushes back (a blocked write) shows up as latency rather than as
// a lower offered rate. It returns how far behind schedule the pacers fell at worst.
func pace(rate float64, total uint64, workers int, send func(worker int, seq uint64, due time.Duration)) (maxLag time.Duration) {
	workers = max(1, workers)
	start := sinceBase()
	var wg sync.WaitGroup
	var lagMu sync.Mutex
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var lag time.Duration
			for seq := uint64(w); seq < total; seq += uint64(workers) {
				due := start + time.Duration(float64(seq)/rate*float64(time.Second))
				now := sinceBase()
				if now < due {
					time.Sleep(due - now)
				} else if l := now - due; l > lag {
					lag = l
				}
				send(w, seq, due)
			}
			lagMu.Lock()
			maxLag = max(maxLag, lag)
			lagMu.Unlock()
		}(w)
	}
	wg.Wait()
	return maxLag
}

// Benchmark message bodies are "pb:RUN:SEQ:DUE", DUE in nanoseconds since base.

// appendBody appends a benchmark body for message seq of run to b.
func appendBody(b []byte, run string, seq uint64, due time.Duration) []byte {
	b = append(b, "<body>pb:"...)
	b = append(b, run...)
	b = append(b, ':')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(due), 10)
	return append(b, "</body>"...)
}

// parseBody reads a benchmark body; ok is false for anything else.
func parseBody(body []byte) (run []byte, seq uint64, due time.Duration, ok bool) {
	rest, found := bytes.CutPrefix(body, []byte("pb:"))
	if !found {
		return nil, 0, 0, false
	}
	i := bytes.IndexByte(rest, ':')
	if i < 0 {
		return nil, 0, 0, false
	}
	run, rest = rest[:i], rest[i+1:]
	i = bytes.IndexByte(rest, ':')
	if i < 0 {
		return nil, 0, 0, false
	}
	seq, ok1 := parseUint(rest[:i])
	d, ok2 := parseUint(rest[i+1:])
	if !ok1 || !ok2 {
		return nil, 0, 0, false
	}
	return run, seq, time.Duration(d), true
}

func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// bitset marks delivered sequence numbers, so that duplicates are not counted as deliveries.
type bitset struct{ w []atomic.Uint64 }

func newBitset(n uint64) *bitset { return &bitset{w: make([]atomic.Uint64, n/64+1)} }

// set marks i and reports whether it was new; numbers beyond the set's size report false.
func (b *bitset) set(i uint64) bool {
	if i/64 >= uint64(len(b.w)) {
		return false
	}
	bit := uint64(1) << (i % 64)
	return b.w[i/64].Or(bit)&bit == 0
}

// counters are the message figures every messaging scenario keeps.
type counters struct {
	sent, sendErrors atomic.Int64
	delivered, dup   atomic.Int64
	stale, bounced   atomic.Int64
	lastDelivery     atomic.Int64 // ns since base
	dropped          atomic.Int64
}

func (c *counters) delivery(now time.Duration) {
	c.delivered.Add(1)
	for {
		l := c.lastDelivery.Load()
		if int64(now) <= l || c.lastDelivery.CompareAndSwap(l, int64(now)) {
			break
		}
	}
}

// waitFor polls until done reports true or timeout passes; it returns whether done became true.
func waitFor(timeout time.Duration, done func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if done() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// window measures server and generator CPU (and server memory) between two points of a run.
type window struct {
	srv      serverProc
	from     procSample
	fromOK   bool
	selfCPU0 float64
	t0       time.Time
}

func startWindow(srv serverProc) *window {
	w := &window{srv: srv, t0: time.Now(), selfCPU0: selfCPU()}
	s, err := srv.sample()
	w.from, w.fromOK = s, err == nil
	return w
}

// end returns the server's CPU seconds, the generator's CPU seconds, the last sample and the elapsed time.
func (w *window) end() (srvCPU, genCPU float64, last procSample, ok bool, elapsed time.Duration) {
	genCPU = selfCPU() - w.selfCPU0
	elapsed = time.Since(w.t0)
	s, err := w.srv.sample()
	if err != nil || !w.fromOK {
		return 0, genCPU, s, false, elapsed
	}
	return s.CPU - w.from.CPU, genCPU, s, true, elapsed
}
