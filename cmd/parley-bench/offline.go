package main

import (
	"log/slog"
	"strconv"
	"time"
)

// runOffline sends -messages messages from -senders online users to -users recipients that are offline,
// so the server must store them (XEP-0160), then logs the recipients in and waits for the stored
// messages to be flushed. Stored = sent minus the error replies the senders got back.
func runOffline(o *options, c *client, srv serverProc, r *result, log *slog.Logger) {
	if o.senders < 1 || o.users < 1 {
		r.note("offline needs at least one sender and one recipient")
		r.Failed = true
		return
	}
	run := runID()
	var cnt counters
	var e2e, afterLogin histogram
	sink := &messageSink{run: []byte(run), seen: newBitset(uint64(o.messages) + 1), cnt: &cnt, e2e: &e2e}
	onDrop := func(*session, error) { cnt.dropped.Add(1) }
	senderHandle := func(_ *session, el []byte) {
		if string(elemName(el)) == "message" && string(attr(el, "type")) == "error" {
			cnt.bounced.Add(1)
		}
	}
	recvHandle := func(s *session, el []byte) {
		if _, fresh := sink.onMessage(el); fresh {
			afterLogin.record(time.Since(s.presenceSent))
		}
	}

	log.Info("login senders", "senders", o.senders)
	slr := loginMany(c, o.first, o.senders, o.loginRate, senderHandle, onDrop)
	senders := slr.online()
	r.add("senders_ok", float64(len(senders)), "")
	slr.errs.into(r)
	if len(senders) == 0 {
		r.Failed = true
		return
	}
	firstRecipient := o.first + o.senders
	prefixes := make([][]byte, o.users)
	for j := range prefixes {
		prefixes[j] = []byte("<message type='chat' to='" + c.bare(firstRecipient+j) + "' id='" + run + "-")
	}
	for _, s := range senders {
		_ = s.conn.SetWriteDeadline(time.Now().Add(time.Duration(float64(o.messages)/o.rate*float64(time.Second)) + o.drain + time.Minute))
	}

	// Store phase: offered open loop at -rate.
	bufs := make([][]byte, o.workers)
	log.Info("store", "messages", o.messages, "recipients", o.users, "rate", o.rate)
	w := startWindow(srv)
	storeStart := sinceBase()
	lag := pace(o.rate, uint64(o.messages), o.workers, func(worker int, seq uint64, due time.Duration) {
		b := append(bufs[worker][:0], prefixes[seq%uint64(o.users)]...)
		b = strconv.AppendUint(b, seq, 10)
		b = append(b, "'>"...)
		b = appendBody(b, run, seq, due)
		b = append(b, "</message>"...)
		bufs[worker] = b
		if err := senders[seq%uint64(len(senders))].write(b); err != nil {
			cnt.sendErrors.Add(1)
			return
		}
		cnt.sent.Add(1)
	})
	storeEnd := sinceBase()
	// Error replies (storage full, no such user) come back within the settle time.
	time.Sleep(o.settle)
	storeCPU, storeGen, _, storeOK, _ := w.end()
	sent := cnt.sent.Load()
	stored := sent - cnt.bounced.Load()

	// Drain phase: recipients log in; the server flushes their queues after the initial presence.
	log.Info("drain", "recipients", o.users, "stored", stored)
	w2 := startWindow(srv)
	drainStart := sinceBase()
	rlr := loginMany(c, firstRecipient, o.users, o.loginRate, recvHandle, onDrop)
	drained := waitFor(o.drain, func() bool { return cnt.delivered.Load() >= stored })
	drainCPU, drainGen, _, drainOK, _ := w2.end()
	closeAll(slr.sessions)
	closeAll(rlr.sessions)

	delivered := cnt.delivered.Load()
	lost := sent - delivered
	r.add("recipients_ok", float64(rlr.ok), "")
	rlr.errs.into(r)
	r.add("sent", float64(sent), "")
	r.add("store_rate", float64(sent)/(storeEnd-storeStart).Seconds(), "msg/s achieved")
	r.add("send_errors", float64(cnt.sendErrors.Load()), "")
	r.add("pacer_max_lag_ms", float64(lag.Microseconds())/1000, "ms behind schedule at worst")
	r.add("bounced", float64(cnt.bounced.Load()), "error replies (not stored)")
	r.add("stored", float64(stored), "sent - bounced")
	r.add("delivered", float64(delivered), "")
	r.add("lost", float64(lost), "sent but not delivered after the drain timeout")
	r.add("duplicates", float64(cnt.dup.Load()), "")
	r.add("stale", float64(cnt.stale.Load()), "messages of earlier runs flushed too")
	if last := time.Duration(cnt.lastDelivery.Load()); last > drainStart {
		r.add("drain_s", (last - drainStart).Seconds(), "s from the first recipient login to the last delivery")
		r.add("drain_rate", float64(delivered)/(last-drainStart).Seconds(), "msg/s")
	}
	r.addLatency("recipient_login", &rlr.hist)
	r.addLatency("after_presence", &afterLogin)
	r.addLatency("age", &e2e)
	if storeOK && sent > 0 {
		r.add("server_cpu_s_per_1000_stored", storeCPU*1000/float64(sent), "s")
	}
	if drainOK && delivered > 0 {
		r.add("server_cpu_s_per_1000_drained", drainCPU*1000/float64(delivered), "s (includes recipient logins)")
	}
	r.add("generator_cpu_s", storeGen+drainGen, "s")
	if !drained {
		r.note("drain timeout (%s) reached with %d messages outstanding", o.drain, stored-delivered)
	}
	r.note("after_presence counts from the recipient's initial presence; age from the time the message was due to be sent")
	r.Failed = lost > 0 || rlr.ok < o.users || cnt.sendErrors.Load() > 0
	time.Sleep(200 * time.Millisecond)
}
