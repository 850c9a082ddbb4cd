package main

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// runConnect ramps -sessions logins at -rate per second, holds them for -hold and reports login latency
// (TCP connect to the echo of the initial presence) and the server's memory per session: VmRSS after the
// ramp (plus -settle) minus VmRSS before it, divided by the sessions that logged in; and the same after the
// sessions idled for -hold (server_rss_per_idle_session_kb). With -warmup, that many sessions log in first and
// stay: the baseline then includes what a server's first logins cost once.
func runConnect(o *options, c *client, srv serverProc, r *result, log *slog.Logger) {
	var dropped atomic.Int64
	onDrop := func(*session, error) { dropped.Add(1) }
	// Warm-up sessions (accounts after the measured ones) log in before the baseline and stay until the end:
	// what the first logins of a server's life cost once (code paged in, caches filled, pools grown) is then
	// not counted as memory per session. The same for every server.
	var warm *loginResult
	if o.warmup > 0 {
		log.Info("warm-up", "sessions", o.warmup)
		warm = loginMany(c, o.first+o.sessions, o.warmup, o.rate, nil, nil)
		r.add("warmup_sessions", float64(warm.ok), "logged in before the baseline, not counted")
		if warm.ok < o.warmup {
			r.note("%d of %d warm-up sessions failed to log in: the baseline includes fewer one-time costs", o.warmup-warm.ok, o.warmup)
		}
	}
	// Let the server settle (garbage from account creation or an earlier run) before the baseline.
	time.Sleep(o.settle)
	genRSS0 := selfRSSKB()
	w := startWindow(srv)
	log.Info("ramp", "sessions", o.sessions, "rate", o.rate)
	lr := loginMany(c, o.first, o.sessions, o.rate, nil, onDrop)
	srvCPU, genCPU, _, cpuOK, _ := w.end()
	rampDropped := dropped.Load()
	time.Sleep(o.settle)
	afterRamp, afterErr := srv.sample()
	genRSS1 := selfRSSKB()
	log.Info("hold", "ok", lr.ok, "for", o.hold)
	time.Sleep(o.hold)
	afterHold, holdErr := srv.sample()
	stillUp := lr.ok - int(dropped.Load())
	closeAll(lr.sessions)
	if warm != nil {
		closeAll(warm.sessions)
	}

	failed := o.sessions - lr.ok
	r.add("sessions_requested", float64(o.sessions), "")
	r.add("sessions_ok", float64(lr.ok), "")
	r.add("sessions_failed", float64(failed), "")
	r.add("sessions_dropped", float64(dropped.Load()), "closed by the server during ramp or hold")
	r.add("sessions_held_to_end", float64(stillUp), "")
	r.add("ramp_s", lr.took.Seconds(), "s")
	r.add("ramp_rate", float64(lr.ok)/lr.took.Seconds(), "sessions/s achieved")
	r.addLatency("login", &lr.hist)
	if w.fromOK && afterErr == nil {
		r.add("server_rss_before_kb", float64(w.from.RSSKB), "KiB")
		r.add("server_rss_after_ramp_kb", float64(afterRamp.RSSKB), "KiB")
		if holdErr == nil {
			r.add("server_rss_after_hold_kb", float64(afterHold.RSSKB), "KiB")
		}
		if lr.ok > 0 {
			r.add("server_rss_per_session_kb", (float64(afterRamp.RSSKB)-float64(w.from.RSSKB))/float64(lr.ok), "KiB/session")
			if holdErr == nil && stillUp > 0 {
				// The same, once the sessions have idled for -hold: what a server settles at between bursts
				// (garbage of the logins collected, memory of idle sessions trimmed by whatever the server does).
				r.add("server_rss_per_idle_session_kb", (float64(afterHold.RSSKB)-float64(w.from.RSSKB))/float64(stillUp),
					"KiB/session after the hold")
			}
		}
	}
	if cpuOK {
		r.add("server_cpu_ramp_s", srvCPU, "s")
		if lr.ok > 0 {
			r.add("server_cpu_ms_per_login", srvCPU*1000/float64(lr.ok), "ms")
		}
	}
	r.add("generator_cpu_ramp_s", genCPU, "s")
	if lr.ok > 0 {
		r.add("generator_rss_per_session_kb", (float64(genRSS1)-float64(genRSS0))/float64(lr.ok), "KiB/session")
	}
	lr.errs.into(r)
	if rampDropped > 0 {
		r.note("%d sessions were closed by the server before the ramp ended", rampDropped)
	}
	r.Failed = failed > 0 || dropped.Load() > 0
	// Let the readers see the server close the streams before the process exits.
	time.Sleep(200 * time.Millisecond)
}
