package main

import (
	"strings"
	"testing"
)

func TestSweepSection(t *testing.T) {
	run := func(label string, rate, p99, thr, lost float64) storedResult {
		return storedResult{Scenario: "chat-sweep", Label: label,
			Metrics: map[string]float64{"offered_rate": rate, "throughput": thr, "lost": lost},
			Latency: map[string]latencySummary{"e2e": {N: 10, P99: p99}}}
	}
	runs := []storedResult{
		run("a", 1000, 5, 1000, 0), run("a", 2000, 50, 1990, 0), run("a", 4000, 250, 3000, 0),
		run("b", 1000, 5, 1000, 0), run("b", 2000, 20, 2000, 3), run("b", 4000, 30, 3500, 0),
		{Scenario: "chat", Label: "a", Metrics: map[string]float64{"offered_rate": 9000}},
	}
	var b strings.Builder
	sweepSection(&b, runs, []string{"a", "b"})
	out := b.String()
	// a: 4000 has p99 250 ms; b: 2000 lost messages and 4000 delivered under 95% of the offered rate.
	if !strings.Contains(out, "| **2000** | **1000** |") {
		t.Errorf("highest sustained rates wrong:\n%s", out)
	}
	if strings.Contains(out, "9000") {
		t.Errorf("a plain chat run was taken for a sweep step:\n%s", out)
	}
	var empty strings.Builder
	sweepSection(&empty, runs[6:], []string{"a"})
	if empty.Len() != 0 {
		t.Errorf("no sweep runs, yet a section: %q", empty.String())
	}
}
