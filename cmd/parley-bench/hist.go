package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram records durations in log-linear buckets (at most 1/64 relative error, microsecond floor)
// with atomic counters, so every reader goroutine records into one histogram without a lock.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // microseconds
	max    atomic.Uint64 // microseconds
}

const (
	histSub     = 64 // buckets per power of two above histSub*2 microseconds
	histBuckets = 64*histSub + 2*histSub
)

// bucketOf maps a value in microseconds to its bucket. Values below 128 us get one bucket each; above,
// each power of two is split into 64 buckets.
func bucketOf(us uint64) int {
	if us < 2*histSub {
		return int(us)
	}
	shift := bits.Len64(us) - 7 // us>>shift is in [64, 128)
	return shift*histSub + int(us>>shift)
}

// bucketLow is the smallest value that falls into bucket i.
func bucketLow(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	return uint64(i-shift*histSub) << shift
}

func (h *histogram) record(d time.Duration) {
	us := uint64(max(d.Microseconds(), 0))
	b := bucketOf(us)
	if b >= histBuckets {
		b = histBuckets - 1
	}
	h.counts[b].Add(1)
	h.n.Add(1)
	h.sum.Add(us)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// quantile returns the value at quantile q (0..1) in microseconds: the upper edge of the bucket holding
// it, capped at the recorded maximum.
func (h *histogram) quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			hi := bucketLow(i+1) - 1
			if i < 2*histSub {
				hi = uint64(i)
			}
			return float64(min(hi, h.max.Load()))
		}
	}
	return float64(h.max.Load())
}

// latencySummary is a histogram's figures in milliseconds, as reported.
type latencySummary struct {
	N    uint64  `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

func (h *histogram) summary() latencySummary {
	n := h.n.Load()
	s := latencySummary{N: n}
	if n == 0 {
		return s
	}
	ms := func(us float64) float64 { return math.Round(us) / 1000 }
	s.Mean = ms(float64(h.sum.Load()) / float64(n))
	s.P50 = ms(h.quantile(0.50))
	s.P90 = ms(h.quantile(0.90))
	s.P99 = ms(h.quantile(0.99))
	s.Max = ms(float64(h.max.Load()))
	return s
}
