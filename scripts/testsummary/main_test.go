package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func summarise(t *testing.T, file string) (out, summary string, failed bool) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var o, s bytes.Buffer
	failed, err = run(f, &o, &s)
	if err != nil {
		t.Fatal(err)
	}
	return o.String(), s.String(), failed
}

// TestDefectMakeTestNamesSkippedSuites: `make test` used to end on go test's "ok" lines while the third-party
// client suites had skipped unseen. Over a `go test -json` stream with skips (recorded from a real run,
// testdata/skips.json), the summary names each skipped test with its package and reason, and the output
// keeps go test's closing "ok" line and drops what -v adds.
func TestDefectMakeTestNamesSkippedSuites(t *testing.T) {
	out, summary, failed := summarise(t, "testdata/skips.json")
	if failed {
		t.Error("a passing stream counted as failed")
	}
	for _, want := range []string{
		"SKIP example.com/demo: TestSlixmppChat, TestSlixmppMUC\n",
		"python3-slixmpp unavailable: /usr/bin/python3 -c 'import slixmpp': exit status 1",
		"SKIP example.com/demo: TestUpload/s3\n",
		"PARLEY_TEST_S3_ENDPOINT not set: S3 upload tests skipped",
		"skipped: 3 tests in 2 groups",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	if strings.Contains(summary, "TestPasses") || strings.Contains(summary, "TestUpload/local") || strings.Contains(summary, "demo_test.go:") {
		t.Errorf("summary names a test that ran, or keeps file:line prefixes:\n%s", summary)
	}
	if !strings.Contains(out, "ok  \texample.com/demo\t") {
		t.Errorf("output lost go test's ok line:\n%s", out)
	}
	for _, noise := range []string{"=== RUN", "--- PASS", "--- SKIP", "quiet when passing", "PASS\n"} {
		if strings.Contains(out, noise) {
			t.Errorf("output has %q, which go test without -v does not print:\n%s", noise, out)
		}
	}
}

// A failing test's output is shown as go test shows it, the FAIL lines are kept and the exit status says so.
func TestFailuresShownAndCounted(t *testing.T) {
	out, _, failed := summarise(t, "testdata/fail.json")
	if !failed {
		t.Error("a failing stream counted as passed")
	}
	if want := "--- FAIL: TestBroken (0.00s)\n    demo_test.go:29: something broke\n"; !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	if !strings.Contains(out, "FAIL\texample.com/demo\t") {
		t.Errorf("output lost the package FAIL line:\n%s", out)
	}

	out, _, failed = summarise(t, "testdata/panic-and-build-failure.json")
	if !failed {
		t.Error("a panic and a build failure counted as passed")
	}
	for _, want := range []string{"broken/b.go:3:12: undefined: undefined", "FAIL\texample.com/demo/broken [build failed]",
		"panic: boom", "--- FAIL: TestPanics", "FAIL\texample.com/demo\t"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// A stream without skips says so, so that an empty summary is not mistaken for a missing one.
func TestNoSkips(t *testing.T) {
	s := newSummariser(&bytes.Buffer{})
	s.Line([]byte(`{"Action":"pass","Package":"p","Test":"TestA"}`))
	s.Line([]byte("not json: printed as it is"))
	var b bytes.Buffer
	s.WriteSummary(&b)
	if !strings.Contains(b.String(), "skipped: none") {
		t.Errorf("summary %q", b.String())
	}
}
