package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// trimIdle gives memory back to the operating system while the server is quiet.
//
// Go collects garbage when the heap has doubled, and otherwise only every two minutes, so after a burst of
// logins a quiet server keeps the burst's garbage and the grown goroutine stacks of its readers (a stack only
// shrinks, by half, at a collection). Every interval in which no collection ran, trimIdle runs one and returns
// the free pages (debug.FreeOSMemory): RSS then follows the live sessions. It stops after a few quiet rounds
// (stacks are at their smallest by then) until the server collects garbage again by itself. A busy server
// collects anyway, and is left alone.
func trimIdle(ctx context.Context, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		return
	}
	const maxQuietRounds = 4
	sample := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	cycles := func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	last, rounds := cycles(), 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := cycles()
		if now != last {
			last, rounds = now, 0 // the server collected by itself: busy
			continue
		}
		if rounds >= maxQuietRounds {
			continue
		}
		start := time.Now()
		debug.FreeOSMemory()
		rounds++
		last = cycles()
		log.Debug("idle memory trim", "round", rounds, "took", time.Since(start))
	}
}
