// Command testsummary reads `go test -json` on stdin, prints what `go test` without -v would print (the output
// of failing tests, package lines such as "ok  \tparley.im/parley/muc\t1.2s" and "FAIL\t…", build errors), and
// ends with a summary of every test that was skipped and why, grouped by package and reason. `make test`
// (scripts/test.sh) pipes the whole suite through it, so that a suite skipped for a missing client
// (slixmpp, go-sendxmpp, xmpp.js, Converse.js in chromium) or service (PostgreSQL, S3) is named at the end
// instead of passing unseen.
//
//	go test -json ./... | go run ./scripts/testsummary [-summary FILE]
//
// With -summary the summary goes to FILE instead of the end of stdout. The exit status is 1 if a test or a
// package failed (or a line of the stream is not valid), 0 otherwise.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output and build-fail events
}

// Skip is one skipped test and the reason it logged.
type Skip struct {
	Package, Test, Reason string
}

// summariser holds the output of each running test until it ends: shown if it fails, dropped otherwise, as
// go test does without -v.
type summariser struct {
	out     io.Writer
	pending map[string][]string // package + "\x00" + test -> output lines
	order   []string            // keys of pending, in the order the tests started
	Skips   []Skip
	Failed  bool
}

func newSummariser(out io.Writer) *summariser {
	return &summariser{out: out, pending: make(map[string][]string)}
}

// Line handles one line of the stream. Lines that are not JSON (a toolchain message) are printed as they are.
func (s *summariser) Line(line []byte) {
	var ev event
	if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
		fmt.Fprintf(s.out, "%s\n", line)
		return
	}
	key := ev.Package + "\x00" + ev.Test
	switch ev.Action {
	case "build-output":
		fmt.Fprint(s.out, ev.Output)
	case "build-fail":
		s.Failed = true
	case "output":
		if ev.Test == "" {
			// Package level: "ok  \tpkg\t1.2s", "FAIL\tpkg", "?   \tpkg\t[no test files]", panics, TestMain's
			// output. The bare "PASS" line is what -v adds.
			if ev.Output != "PASS\n" {
				fmt.Fprint(s.out, ev.Output)
			}
			return
		}
		if _, ok := s.pending[key]; !ok {
			s.order = append(s.order, key)
		}
		s.pending[key] = append(s.pending[key], ev.Output)
	case "fail":
		s.Failed = true
		if ev.Test == "" {
			// Tests of the package that never ended (a timeout, a crash of the test binary): their output says
			// where it stopped.
			for _, k := range s.order {
				if pkg, _, _ := strings.Cut(k, "\x00"); pkg == ev.Package {
					s.flush(k)
				}
			}
			return
		}
		s.flush(key)
	case "skip":
		if ev.Test != "" {
			s.Skips = append(s.Skips, Skip{Package: ev.Package, Test: ev.Test, Reason: reason(s.pending[key])})
		}
		delete(s.pending, key)
	case "pass":
		delete(s.pending, key)
	}
}

// flush prints the held output of a failed test as go test without -v shows it ("--- FAIL: TestX (0.01s)",
// then what it logged), and forgets it.
func (s *summariser) flush(key string) {
	lines := s.pending[key]
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "--- FAIL") {
			fmt.Fprint(s.out, l)
		}
	}
	for _, l := range lines {
		if !isFrame(l) {
			fmt.Fprint(s.out, l)
		}
	}
	delete(s.pending, key)
}

// isFrame reports whether l is one of the lines -v adds around a test's own output.
func isFrame(l string) bool {
	t := strings.TrimSpace(l)
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- SKIP", "--- FAIL"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// logPrefix is the file:line that t.Log and t.Skip put before a message.
var logPrefix = regexp.MustCompile(`^\s*[\w.-]+\.go:\d+: `)

// reason is what a skipped test logged, without the -v frame lines and file:line prefixes; the last message
// (the t.Skip text) when there are several.
func reason(lines []string) string {
	var msgs []string
	for _, l := range lines {
		if isFrame(l) {
			continue
		}
		if logPrefix.MatchString(l) {
			msgs = append(msgs, strings.TrimSpace(logPrefix.ReplaceAllString(l, "")))
		} else if t := strings.TrimSpace(l); t != "" && len(msgs) > 0 {
			msgs[len(msgs)-1] += " " + t // a message of several lines
		}
	}
	if len(msgs) == 0 {
		return "no reason given"
	}
	return msgs[len(msgs)-1]
}

// WriteSummary writes the skipped tests grouped by package and reason, or a line saying there were none.
func (s *summariser) WriteSummary(w io.Writer) {
	if len(s.Skips) == 0 {
		fmt.Fprintln(w, "skipped: none (every test ran)")
		return
	}
	type group struct {
		pkg, reason string
		tests       []string
	}
	idx := make(map[[2]string]*group)
	var groups []*group
	for _, sk := range s.Skips {
		k := [2]string{sk.Package, sk.Reason}
		g := idx[k]
		if g == nil {
			g = &group{pkg: sk.Package, reason: sk.Reason}
			idx[k] = g
			groups = append(groups, g)
		}
		g.tests = append(g.tests, sk.Test)
	}
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].pkg < groups[j].pkg })
	fmt.Fprintf(w, "skipped: %d tests in %d groups (these suites did not run; the reason is what each test said):\n", len(s.Skips), len(groups))
	for _, g := range groups {
		fmt.Fprintf(w, "  SKIP %s: %s\n       %s\n", g.pkg, strings.Join(g.tests, ", "), g.reason)
	}
}

// run summarises in to out and returns whether anything failed.
func run(in io.Reader, out, summary io.Writer) (failed bool, err error) {
	s := newSummariser(out)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		s.Line(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return true, fmt.Errorf("testsummary: %w", err)
	}
	if summary != nil {
		s.WriteSummary(summary)
	}
	return s.Failed, nil
}

func main() {
	path := flag.String("summary", "", "write the summary of skipped tests to this file instead of stdout")
	flag.Parse()
	var summary io.Writer = os.Stdout
	if *path != "" {
		f, err := os.Create(*path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(1)
		}
		defer f.Close()
		summary = f
	}
	failed, err := run(os.Stdin, os.Stdout, summary)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}
