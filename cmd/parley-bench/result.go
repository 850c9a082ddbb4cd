package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// metric is one reported figure; the order of metrics in a result is the order of the human table.
type metric struct {
	Key   string
	Value float64
	Unit  string
}

// namedLatency is one latency distribution of a result ("login", "e2e").
type namedLatency struct {
	Name string
	latencySummary
}

// result is what one scenario run reports, as a table and as JSON.
type result struct {
	Scenario  string
	Label     string
	Server    string
	Started   time.Time
	Params    map[string]any
	Metrics   []metric
	Latencies []namedLatency
	Errors    map[string]int
	Notes     []string
	// Failed is true when anything was lost or a session could not be set up: the exit status is 1.
	Failed bool
}

func (r *result) add(key string, v float64, unit string) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	r.Metrics = append(r.Metrics, metric{key, v, unit})
}

func (r *result) addLatency(name string, h *histogram) {
	r.Latencies = append(r.Latencies, namedLatency{name, h.summary()})
}

func (r *result) note(format string, a ...any) { r.Notes = append(r.Notes, fmt.Sprintf(format, a...)) }

// MarshalJSON keeps the metrics in table order.
func (r *result) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	field := func(name string, v any) {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		b.Write(k)
		b.WriteByte(':')
		j, _ := json.Marshal(v)
		b.Write(j)
	}
	b.WriteByte('{')
	field("scenario", r.Scenario)
	field("label", r.Label)
	field("server", r.Server)
	field("started", r.Started.UTC().Format(time.RFC3339))
	field("params", r.Params)
	b.WriteString(`,"metrics":{`)
	for i, m := range r.Metrics {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.Key)
		b.Write(k)
		b.WriteByte(':')
		v, _ := json.Marshal(round(m.Value))
		b.Write(v)
	}
	b.WriteString(`},"units":{`)
	for i, m := range r.Metrics {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.Key)
		u, _ := json.Marshal(m.Unit)
		b.Write(k)
		b.WriteByte(':')
		b.Write(u)
	}
	b.WriteString(`},"latency":{`)
	for i, l := range r.Latencies {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(l.Name)
		v, _ := json.Marshal(l.latencySummary)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteString("}")
	field("errors", r.Errors)
	field("notes", r.Notes)
	field("failed", r.Failed)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// round keeps JSON figures readable: 4 significant digits after the point at most.
func round(v float64) float64 {
	if v == math.Trunc(v) {
		return v
	}
	return math.Round(v*1e4) / 1e4
}

// writeTable prints the human form of r.
func (r *result) writeTable(w io.Writer) {
	label := ""
	if r.Label != "" {
		label = " (" + r.Label + ")"
	}
	fmt.Fprintf(w, "parley-bench %s against %s%s, %s\n", r.Scenario, r.Server, label, r.Started.UTC().Format(time.RFC3339))
	keys := slices.Sorted(maps.Keys(r.Params))
	var ps []string
	for _, k := range keys {
		ps = append(ps, fmt.Sprintf("%s=%v", k, r.Params[k]))
	}
	fmt.Fprintf(w, "  params: %s\n", strings.Join(ps, " "))
	for _, m := range r.Metrics {
		fmt.Fprintf(w, "  %-34s %14s %s\n", m.Key, fmtNum(m.Value), m.Unit)
	}
	if len(r.Latencies) > 0 {
		fmt.Fprintf(w, "  %-20s %9s %9s %9s %9s %9s %9s\n", "latency (ms)", "n", "mean", "p50", "p90", "p99", "max")
		for _, l := range r.Latencies {
			fmt.Fprintf(w, "  %-20s %9d %9.2f %9.2f %9.2f %9.2f %9.2f\n", l.Name, l.N, l.Mean, l.P50, l.P90, l.P99, l.Max)
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "  errors:\n")
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			fmt.Fprintf(w, "    %6d  %s\n", r.Errors[k], k)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if r.Failed {
		fmt.Fprintf(w, "  result: FAILED (something was lost or could not be set up)\n")
	} else {
		fmt.Fprintf(w, "  result: ok\n")
	}
}

func fmtNum(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// tally counts errors by class, so that 5,000 timeouts print as one line.
type tally struct {
	mu sync.Mutex
	m  map[string]int
}

func (t *tally) add(err error) {
	t.mu.Lock()
	if t.m == nil {
		t.m = map[string]int{}
	}
	t.m[errClass(err)]++
	t.mu.Unlock()
}

func (t *tally) into(r *result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) == 0 {
		return
	}
	if r.Errors == nil {
		r.Errors = map[string]int{}
	}
	for k, v := range t.m {
		r.Errors[k] += v
	}
}

// errClass keeps an error's phase (its first word) and its cause (its last part), dropping addresses and
// ports that would make every error distinct: "dial: connection refused", "auth: not-authorized".
func errClass(err error) string {
	s := err.Error()
	first, _, ok := strings.Cut(s, ": ")
	if !ok {
		return s
	}
	last := s[strings.LastIndex(s, ": ")+2:]
	if first == s[:strings.LastIndex(s, ": ")] {
		return s
	}
	return first + ": " + last
}
