package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// runMUC logs in -occupants users, has them join one new room on -muc-service (XEP-0045), lets -senders
// of them send -rate messages per second in total for -duration, and reports fan-out: every message
// should reach every occupant, the sender included (the room echoes it).
func runMUC(o *options, c *client, srv serverProc, r *result, log *slog.Logger) {
	k := o.occupants
	if k < 1 || o.senders < 1 || o.senders > k {
		r.note("muc needs 1 <= senders <= occupants")
		r.Failed = true
		return
	}
	run := runID()
	room := "pb-" + run + "@" + o.mucService
	total := uint64(o.rate * o.duration.Seconds())
	var cnt counters
	var e2e histogram
	self := make([][]byte, k) // room/nick of occupant i
	joined := make([]chan error, k)
	sinks := make([]*messageSink, k)
	created := make(chan struct{}, 1)
	configured := make(chan error, 1)
	for i := range k {
		self[i] = []byte(room + "/n" + strconv.Itoa(o.first+i))
		joined[i] = make(chan error, 1)
		sinks[i] = &messageSink{run: []byte(run), seen: newBitset(total + 1), cnt: &cnt, e2e: &e2e}
	}
	handle := func(s *session, el []byte) {
		i := s.idx - o.first
		switch string(elemName(el)) {
		case "message":
			sinks[i].onMessage(el)
		case "presence":
			if !bytes.Equal(attr(el, "from"), self[i]) {
				return
			}
			var err error
			if string(attr(el, "type")) == "error" {
				err = fmt.Errorf("join: %s", errorCondition(el))
			} else if bytes.Contains(el, []byte("code='201'")) || bytes.Contains(el, []byte(`code="201"`)) {
				select {
				case created <- struct{}{}:
				default:
				}
			}
			select {
			case joined[i] <- err:
			default:
			}
		case "iq":
			if string(attr(el, "id")) == "cfg-"+run {
				var err error
				if string(attr(el, "type")) != "result" {
					err = fmt.Errorf("room config: %s", errorCondition(el))
				}
				select {
				case configured <- err:
				default:
				}
			}
		}
	}
	onDrop := func(*session, error) { cnt.dropped.Add(1) }

	log.Info("login", "occupants", k)
	lr := loginMany(c, o.first, k, o.loginRate, handle, onDrop)
	r.add("occupants_logged_in", float64(lr.ok), "")
	r.addLatency("login", &lr.hist)
	lr.errs.into(r)

	// Join: the first occupant creates the room (and submits the instant-room form when the service
	// reports it created the room, XEP-0045 10.1.2), then the others join, a few at a time.
	var joinErrs tally
	var joinHist histogram
	join := func(s *session) error {
		i := s.idx - o.first
		t0 := time.Now()
		stanza := "<presence to='" + string(self[i]) + "'><x xmlns='" + nsMUC + "'><history maxstanzas='0'/></x></presence>"
		if err := s.write([]byte(stanza)); err != nil {
			return fmt.Errorf("join: %w", err)
		}
		select {
		case err := <-joined[i]:
			if err == nil {
				joinHist.record(time.Since(t0))
			}
			return err
		case <-time.After(o.loginTimeout):
			return errors.New("join: timeout")
		}
	}
	var occupants []*session
	online := lr.online()
	if len(online) > 0 {
		if err := join(online[0]); err != nil {
			// No room, no point in k more timeouts.
			joinErrs.add(err)
			online = online[:1]
			r.note("the first occupant could not create the room; the others did not try")
		} else {
			occupants = append(occupants, online[0])
			select {
			case <-created:
				form := "<iq type='set' id='cfg-" + run + "' to='" + room + "'><query xmlns='" + nsMUC +
					"#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>"
				if err := online[0].write([]byte(form)); err == nil {
					select {
					case err := <-configured:
						if err != nil {
							joinErrs.add(err)
						}
					case <-time.After(o.loginTimeout):
						joinErrs.add(errors.New("room config: timeout"))
					}
				}
			default:
			}
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		next := make(chan *session)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for s := range next {
					if err := join(s); err != nil {
						joinErrs.add(err)
						continue
					}
					mu.Lock()
					occupants = append(occupants, s)
					mu.Unlock()
				}
			}()
		}
		for _, s := range online[1:] {
			next <- s
		}
		close(next)
		wg.Wait()
	}
	joinErrs.into(r)
	r.add("occupants_joined", float64(len(occupants)), "")
	r.addLatency("join", &joinHist)
	if len(occupants) < o.senders {
		r.Failed = true
		closeAll(lr.sessions)
		return
	}
	// Let the join presence broadcasts (k^2/2 stanzas) settle before measuring.
	time.Sleep(o.settle)

	senders := occupants[:o.senders]
	prefix := []byte("<message type='groupchat' to='" + room + "' id='" + run + "-")
	deadline := time.Now().Add(o.duration + o.drain + 5*time.Second)
	for _, s := range senders {
		_ = s.conn.SetWriteDeadline(deadline)
	}
	bufs := make([][]byte, o.workers)
	log.Info("send", "room", room, "occupants", len(occupants), "senders", len(senders), "rate", o.rate)
	w := startWindow(srv)
	sendStart := sinceBase()
	lag := pace(o.rate, total, o.workers, func(worker int, seq uint64, due time.Duration) {
		s := senders[seq%uint64(len(senders))]
		b := append(bufs[worker][:0], prefix...)
		b = strconv.AppendUint(b, seq, 10)
		b = append(b, "'>"...)
		b = appendBody(b, run, seq, due)
		b = append(b, "</message>"...)
		bufs[worker] = b
		if err := s.write(b); err != nil {
			cnt.sendErrors.Add(1)
			return
		}
		cnt.sent.Add(1)
	})
	sendEnd := sinceBase()
	fanout := int64(len(occupants))
	drained := waitFor(o.drain, func() bool { return cnt.delivered.Load() >= cnt.sent.Load()*fanout })
	srvCPU, genCPU, _, cpuOK, _ := w.end()
	closeAll(lr.sessions)

	sent, delivered := cnt.sent.Load(), cnt.delivered.Load()
	expected := sent * fanout
	lost := expected - delivered
	r.add("offered_rate", o.rate, "msg/s to the room")
	r.add("sent", float64(sent), "")
	r.add("send_rate", float64(sent)/(sendEnd-sendStart).Seconds(), "msg/s achieved")
	r.add("send_errors", float64(cnt.sendErrors.Load()), "")
	r.add("pacer_max_lag_ms", float64(lag.Microseconds())/1000, "ms behind schedule at worst")
	r.add("deliveries_expected", float64(expected), "sent x occupants")
	r.add("deliveries", float64(delivered), "")
	r.add("lost", float64(lost), "deliveries missing after the drain timeout")
	r.add("bounced", float64(cnt.bounced.Load()), "error replies")
	r.add("duplicates", float64(cnt.dup.Load()), "")
	r.add("sessions_dropped", float64(cnt.dropped.Load()), "")
	if last := time.Duration(cnt.lastDelivery.Load()); last > sendStart {
		r.add("fanout_rate", float64(delivered)/(last-sendStart).Seconds(), "deliveries/s")
	}
	r.addLatency("e2e", &e2e)
	if cpuOK {
		r.add("server_cpu_s", srvCPU, "s")
		if delivered > 0 {
			r.add("server_cpu_s_per_1000_deliveries", srvCPU*1000/float64(delivered), "s")
		}
	}
	r.add("generator_cpu_s", genCPU, "s")
	if !drained {
		r.note("drain timeout (%s) reached with %d deliveries outstanding", o.drain, lost)
	}
	r.Failed = lost > 0 || len(occupants) < k || cnt.sendErrors.Load() > 0
	time.Sleep(200 * time.Millisecond)
}
