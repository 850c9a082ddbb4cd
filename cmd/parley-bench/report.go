package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// storedResult is a result as read back from its JSON file.
type storedResult struct {
	Scenario string                    `json:"scenario"`
	Label    string                    `json:"label"`
	Server   string                    `json:"server"`
	Started  string                    `json:"started"`
	Params   map[string]any            `json:"params"`
	Metrics  map[string]float64        `json:"metrics"`
	Units    map[string]string         `json:"units"`
	Latency  map[string]latencySummary `json:"latency"`
	Errors   map[string]int            `json:"errors"`
	Notes    []string                  `json:"notes"`
	Failed   bool                      `json:"failed"`
}

// scenarioOrder and the rows of each scenario's table in compare.md: the figures worth comparing; every
// other figure is in the JSON.
var scenarioOrder = []string{"connect", "connect-plain", "chat", "muc", "offline"}

var reportRows = map[string][]string{
	"connect": {"sessions_ok", "sessions_failed", "sessions_dropped", "ramp_rate", "login.p50", "login.p90", "login.p99", "login.max",
		"server_rss_per_session_kb", "server_rss_per_idle_session_kb", "server_cpu_ms_per_login", "generator_cpu_ramp_s", "generator_rss_per_session_kb"},
	"connect-plain": {"sessions_ok", "sessions_failed", "sessions_dropped", "ramp_rate", "login.p50", "login.p99",
		"server_rss_per_session_kb", "server_rss_per_idle_session_kb", "server_cpu_ms_per_login"},
	"chat": {"users_ok", "sent", "delivered", "lost", "send_rate", "throughput", "e2e.p50", "e2e.p90", "e2e.p99", "e2e.max",
		"server_cpu_s_per_1000_msgs", "generator_cpu_s_per_1000_msgs", "pacer_max_lag_ms"},
	"muc": {"occupants_joined", "sent", "deliveries", "lost", "fanout_rate", "e2e.p50", "e2e.p90", "e2e.p99", "e2e.max",
		"server_cpu_s_per_1000_deliveries", "generator_cpu_s", "pacer_max_lag_ms"},
	"offline": {"sent", "stored", "delivered", "lost", "drain_s", "drain_rate", "after_presence.p50", "after_presence.p90",
		"after_presence.p99", "after_presence.max", "server_cpu_s_per_1000_stored", "server_cpu_s_per_1000_drained"},
}

// chartLatency names the latency each scenario's chart panel shows.
var chartLatency = map[string]string{"connect": "login", "chat": "e2e", "muc": "e2e", "offline": "after_presence"}

// reportCmd merges result files into one JSON document, a markdown comparison and gnuplot data files.
func reportCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley-bench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "docs/bench", "directory for results-DATE.json, compare.md and the chart data")
	title := fs.String("title", "", "a line about the machine and the run, written under the markdown heading")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("no result files")
	}
	var runs []storedResult
	var raws []json.RawMessage
	for _, p := range fs.Args() {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var r storedResult
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		runs = append(runs, r)
		raws = append(raws, b)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	date := time.Now().UTC().Format("2006-01-02")
	doc := map[string]any{
		"generated": time.Now().UTC().Format(time.RFC3339),
		"host":      map[string]any{"cpus": runtime.NumCPU(), "os": runtime.GOOS, "arch": runtime.GOARCH},
		"note":      *title,
		"runs":      raws,
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	resultsPath := filepath.Join(*out, "results-"+date+".json")
	if err := os.WriteFile(resultsPath, append(b, '\n'), 0o644); err != nil {
		return err
	}
	labels := labelsOf(runs)
	md := markdown(runs, labels, *title, filepath.Base(resultsPath))
	if err := os.WriteFile(filepath.Join(*out, "compare.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if err := chartData(runs, labels, *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s, %s and chart data in %s\n", resultsPath, filepath.Join(*out, "compare.md"), *out)
	return nil
}

func labelsOf(runs []storedResult) []string {
	var labels []string
	for _, r := range runs {
		l := r.Label
		if l == "" {
			l = r.Server
		}
		if !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	return labels
}

func labelOf(r storedResult) string {
	if r.Label == "" {
		return r.Server
	}
	return r.Label
}

// value looks a row up: "name" is a metric, "lat.p50" a latency figure in ms.
func (r storedResult) value(row string) (float64, bool) {
	if name, pct, ok := strings.Cut(row, "."); ok {
		l, found := r.Latency[name]
		if !found || l.N == 0 {
			return 0, false
		}
		switch pct {
		case "p50":
			return l.P50, true
		case "p90":
			return l.P90, true
		case "p99":
			return l.P99, true
		case "max":
			return l.Max, true
		case "mean":
			return l.Mean, true
		}
		return 0, false
	}
	v, ok := r.Metrics[row]
	return v, ok
}

func (r storedResult) unit(row string) string {
	if strings.Contains(row, ".") {
		return "ms"
	}
	return r.Units[row]
}

// find returns the last run of scenario for label (a later run replaces an earlier one).
func find(runs []storedResult, scenario, label string) (storedResult, bool) {
	var out storedResult
	found := false
	for _, r := range runs {
		if r.Scenario == scenario && labelOf(r) == label {
			out, found = r, true
		}
	}
	return out, found
}

func markdown(runs []storedResult, labels []string, title, resultsFile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# parley-bench comparison\n\n")
	if title != "" {
		fmt.Fprintf(&b, "%s\n\n", title)
	}
	fmt.Fprintf(&b, "Generated %s by `scripts/compare.sh` from the result files in `%s`. Every server ran the same "+
		"scenarios with the same parameters; what each figure means and how it is measured is in "+
		"`cmd/parley-bench/README.md`.\n\n", time.Now().UTC().Format(time.RFC3339), resultsFile)
	for _, sc := range scenarioOrder {
		var present []storedResult
		for _, l := range labels {
			if r, ok := find(runs, sc, l); ok {
				present = append(present, r)
			}
		}
		if len(present) == 0 {
			continue
		}
		fmt.Fprintf(&b, "## %s\n\n", sc)
		fmt.Fprintf(&b, "Parameters: %s\n\n", paramLine(present[0].Params))
		fmt.Fprintf(&b, "| figure | unit |")
		for _, r := range present {
			fmt.Fprintf(&b, " %s |", labelOf(r))
		}
		fmt.Fprintf(&b, "\n| --- | --- |%s\n", strings.Repeat(" ---: |", len(present)))
		for _, row := range reportRows[sc] {
			unit := ""
			for _, r := range present {
				if u := r.unit(row); u != "" {
					unit = u
					break
				}
			}
			fmt.Fprintf(&b, "| %s | %s |", row, unit)
			for _, r := range present {
				if v, ok := r.value(row); ok {
					fmt.Fprintf(&b, " %s |", fmtNum(v))
				} else {
					fmt.Fprintf(&b, " – |")
				}
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "| result | |")
		for _, r := range present {
			if r.Failed {
				fmt.Fprintf(&b, " FAILED |")
			} else {
				fmt.Fprintf(&b, " ok |")
			}
		}
		b.WriteString("\n\n")
		for _, r := range present {
			for k, v := range r.Errors {
				fmt.Fprintf(&b, "- %s errors: %d × `%s`\n", labelOf(r), v, k)
			}
		}
		b.WriteString("\n")
	}
	sweepSection(&b, runs, labels)
	b.WriteString("Charts: `latency.png` (latency percentiles per server and scenario), `rss-per-session.png` " +
		"(server memory per connected session, from the connect scenario).\n")
	return b.String()
}

func paramLine(p map[string]any) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, p[k]))
	}
	return strings.Join(parts, ", ")
}

// chartData writes gnuplot data files: latency-SCENARIO.dat (a row per percentile, a column per server)
// and rss.dat (a row per server), read by bench/charts.gp.
func chartData(runs []storedResult, labels []string, dir string) error {
	quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `'`) + `"` }
	for _, sc := range scenarioOrder {
		lat := chartLatency[sc]
		// Only servers with figures get a column: gnuplot gives up on a column without valid points.
		var cols []storedResult
		for _, l := range labels {
			if r, ok := find(runs, sc, l); ok {
				if _, vok := r.value(lat + ".p50"); vok {
					cols = append(cols, r)
				}
			}
		}
		path := filepath.Join(dir, "latency-"+sc+".dat")
		if len(cols) == 0 {
			_ = os.Remove(path)
			continue
		}
		var b strings.Builder
		b.WriteString(quote("percentile"))
		for _, r := range cols {
			b.WriteString(" " + quote(labelOf(r)))
		}
		b.WriteString("\n")
		for _, pct := range []string{"p50", "p90", "p99", "max"} {
			b.WriteString(quote(pct))
			for _, r := range cols {
				v, _ := r.value(lat + "." + pct)
				// The charts use a log scale: keep sub-resolution values on it.
				fmt.Fprintf(&b, " %g", max(v, 0.001))
			}
			b.WriteString("\n")
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	var b strings.Builder
	b.WriteString(quote("server") + " " + quote("after the ramp") + " " + quote("after the idle hold") + "\n")
	rows := 0
	for _, l := range labels {
		r, ok := find(runs, "connect", l)
		if v, vok := r.value("server_rss_per_session_kb"); ok && vok {
			idle, iok := r.value("server_rss_per_idle_session_kb")
			if !iok {
				idle = v
			}
			fmt.Fprintf(&b, "%s %g %g\n", quote(l), v, idle)
			rows++
		}
	}
	path := filepath.Join(dir, "rss.dat")
	if rows == 0 {
		_ = os.Remove(path)
		return nil
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// sweepLimit is the latency bound of the rate sweep: the highest offered rate whose p99 stays under it, with
// nothing lost, is what the sweep reports per server.
const sweepLimit = 100.0

// sweepSection writes the chat rate sweep (scenario chat-sweep): a row per offered rate, a column per server,
// each cell p99 latency, achieved throughput and losses; then the highest rate each server sustained.
func sweepSection(b *strings.Builder, runs []storedResult, labels []string) {
	byLabel := map[string]map[float64]storedResult{}
	var rates []float64
	for _, r := range runs {
		if r.Scenario != "chat-sweep" {
			continue
		}
		rate, ok := r.Metrics["offered_rate"]
		if !ok {
			continue
		}
		l := labelOf(r)
		if byLabel[l] == nil {
			byLabel[l] = map[float64]storedResult{}
		}
		byLabel[l][rate] = r
		if !slices.Contains(rates, rate) {
			rates = append(rates, rate)
		}
	}
	if len(rates) == 0 {
		return
	}
	slices.Sort(rates)
	var cols []string
	for _, l := range labels {
		if byLabel[l] != nil {
			cols = append(cols, l)
		}
	}
	fmt.Fprintf(b, "## chat rate sweep\n\n")
	fmt.Fprintf(b, "The chat scenario at rising offered rates. Each cell: e2e p99 ms / delivered msg/s / lost / "+
		"server CPU s per 1,000 msgs / generator CPU s per 1,000 msgs; – : not run (a server's sweep stops at the "+
		"first rate it does not sustain).\n\n")
	fmt.Fprintf(b, "| offered msg/s |")
	for _, l := range cols {
		fmt.Fprintf(b, " %s |", l)
	}
	fmt.Fprintf(b, "\n| ---: |%s\n", strings.Repeat(" ---: |", len(cols)))
	best := map[string]float64{}
	for _, rate := range rates {
		fmt.Fprintf(b, "| %s |", fmtNum(rate))
		for _, l := range cols {
			r, ok := byLabel[l][rate]
			if !ok {
				fmt.Fprintf(b, " – |")
				continue
			}
			p99, _ := r.value("e2e.p99")
			lost := r.Metrics["lost"]
			fmt.Fprintf(b, " %s / %s / %s / %s / %s |", fmtNum(p99), fmtNum(r.Metrics["throughput"]), fmtNum(lost),
				fmtNum(r.Metrics["server_cpu_s_per_1000_msgs"]), fmtNum(r.Metrics["generator_cpu_s_per_1000_msgs"]))
			if p99 < sweepLimit && lost == 0 && !r.Failed && r.Metrics["throughput"] >= 0.95*rate && rate > best[l] {
				best[l] = rate
			}
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(b, "| **highest rate with p99 < %g ms, nothing lost, ≥95%% delivered on time** |", sweepLimit)
	for _, l := range cols {
		if v, ok := best[l]; ok {
			fmt.Fprintf(b, " **%s** |", fmtNum(v))
		} else {
			fmt.Fprintf(b, " none |")
		}
	}
	b.WriteString("\n\n")
}
