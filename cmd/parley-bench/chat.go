package main

import (
	"bytes"
	"log/slog"
	"strconv"
	"time"
)

// messageSink counts benchmark messages of one run as they arrive at any session.
type messageSink struct {
	run  []byte
	seen *bitset
	cnt  *counters
	e2e  *histogram
}

// onMessage handles one top-level element on a receiving session: it returns whether it was a benchmark
// message of this run that had not been seen before. Bounced messages (type='error') count as bounced.
func (m *messageSink) onMessage(el []byte) (seq uint64, fresh bool) {
	if string(elemName(el)) != "message" {
		return 0, false
	}
	if string(attr(el, "type")) == "error" {
		m.cnt.bounced.Add(1)
		return 0, false
	}
	run, seq, due, ok := parseBody(childText(el, tagBody))
	if !ok {
		return 0, false
	}
	now := sinceBase()
	if !bytes.Equal(run, m.run) {
		m.cnt.stale.Add(1)
		return 0, false
	}
	if m.seen != nil && !m.seen.set(seq) {
		m.cnt.dup.Add(1)
		return seq, false
	}
	m.e2e.record(now - due)
	m.cnt.delivery(now)
	return seq, true
}

// runChat logs in -users users in pairs (2k and 2k+1 message each other), offers -rate messages per
// second in total for -duration, waits up to -drain for stragglers, and reports delivery, end-to-end
// latency (from the due time embedded in each body to its arrival) and CPU on both sides.
func runChat(o *options, c *client, srv serverProc, r *result, log *slog.Logger) {
	users := o.users &^ 1
	if users < 2 {
		r.note("chat needs at least 2 users")
		r.Failed = true
		return
	}
	run := runID()
	total := uint64(o.rate * o.duration.Seconds())
	var cnt counters
	var e2e histogram
	sink := &messageSink{run: []byte(run), seen: newBitset(total + 1), cnt: &cnt, e2e: &e2e}
	handle := func(_ *session, el []byte) { sink.onMessage(el) }
	onDrop := func(*session, error) { cnt.dropped.Add(1) }

	log.Info("login", "users", users, "rate", o.loginRate)
	lr := loginMany(c, o.first, users, o.loginRate, handle, onDrop)
	r.add("users_ok", float64(lr.ok), "")
	r.add("users_failed", float64(users-lr.ok), "")
	r.addLatency("login", &lr.hist)
	lr.errs.into(r)
	if lr.ok < users {
		r.note("only pairs with both users online send")
	}

	// Pairs with both ends online send; prefix[i] is the start of a message from user i to its partner.
	var senders []*session
	var prefixes [][]byte
	for i := 0; i < users; i++ {
		s, peer := lr.sessions[i], lr.sessions[i^1]
		if s == nil || peer == nil {
			continue
		}
		senders = append(senders, s)
		prefixes = append(prefixes, []byte("<message type='chat' to='"+c.bare(o.first+(i^1))+"' id='"+run+"-"))
	}
	if len(senders) == 0 {
		r.Failed = true
		closeAll(lr.sessions)
		return
	}
	deadline := time.Now().Add(o.duration + o.drain + 5*time.Second)
	for _, s := range senders {
		_ = s.conn.SetWriteDeadline(deadline)
	}

	log.Info("send", "senders", len(senders), "rate", o.rate, "duration", o.duration)
	bufs := make([][]byte, o.workers)
	w := startWindow(srv)
	sendStart := sinceBase()
	lag := pace(o.rate, total, o.workers, func(worker int, seq uint64, due time.Duration) {
		k := int(seq % uint64(len(senders)))
		b := append(bufs[worker][:0], prefixes[k]...)
		b = strconv.AppendUint(b, seq, 10)
		b = append(b, "'>"...)
		b = appendBody(b, run, seq, due)
		b = append(b, "</message>"...)
		bufs[worker] = b
		if err := senders[k].write(b); err != nil {
			cnt.sendErrors.Add(1)
			return
		}
		cnt.sent.Add(1)
	})
	sendEnd := sinceBase()
	drained := waitFor(o.drain, func() bool { return cnt.delivered.Load() >= cnt.sent.Load() })
	srvCPU, genCPU, _, cpuOK, _ := w.end()
	closeAll(lr.sessions)

	sent, delivered := cnt.sent.Load(), cnt.delivered.Load()
	lost := sent - delivered
	sendSecs := (sendEnd - sendStart).Seconds()
	r.add("offered_rate", o.rate, "msg/s")
	r.add("sent", float64(sent), "")
	r.add("send_rate", float64(sent)/sendSecs, "msg/s achieved")
	r.add("send_errors", float64(cnt.sendErrors.Load()), "")
	r.add("pacer_max_lag_ms", float64(lag.Microseconds())/1000, "ms behind schedule at worst")
	r.add("delivered", float64(delivered), "")
	r.add("lost", float64(lost), "not delivered within the drain timeout")
	r.add("bounced", float64(cnt.bounced.Load()), "error replies")
	r.add("duplicates", float64(cnt.dup.Load()), "")
	r.add("stale", float64(cnt.stale.Load()), "messages of earlier runs")
	r.add("sessions_dropped", float64(cnt.dropped.Load()), "")
	if last := time.Duration(cnt.lastDelivery.Load()); last > sendStart {
		r.add("throughput", float64(delivered)/(last-sendStart).Seconds(), "msg/s delivered")
	}
	r.addLatency("e2e", &e2e)
	if cpuOK {
		r.add("server_cpu_s", srvCPU, "s")
		if delivered > 0 {
			r.add("server_cpu_s_per_1000_msgs", srvCPU*1000/float64(delivered), "s")
		}
	}
	r.add("generator_cpu_s", genCPU, "s")
	if delivered > 0 {
		r.add("generator_cpu_s_per_1000_msgs", genCPU*1000/float64(delivered), "s")
	}
	if !drained {
		r.note("drain timeout (%s) reached with %d messages outstanding", o.drain, lost)
	}
	r.Failed = lost > 0 || lr.ok < users || cnt.sendErrors.Load() > 0
	time.Sleep(200 * time.Millisecond)
}
