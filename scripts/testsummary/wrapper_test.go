package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDefectMakeTestStopsTheS3Server: `make test` used to leave the versitygw it started for the S3 tests
// running. scripts/test.sh (what `make test` runs) stops it on every exit: after a passing run and after a
// failing one (go vet of a package that does not exist), the gateway it started is gone, and the run ends with
// the summary. Each run uses its own state directories, so that it starts a gateway of its own.
func TestDefectMakeTestStopsTheS3Server(t *testing.T) {
	if testing.Short() {
		t.Skip("runs scripts/test.sh twice")
	}
	tools := os.Getenv("PARLEY_TOOLS")
	if tools == "" {
		tools = filepath.Join(os.Getenv("HOME"), ".cache", "parley-tools")
	}
	if _, err := os.Stat(filepath.Join(tools, "versitygw")); err != nil {
		t.Skipf("versitygw is not built in %s (scripts/s3.sh start builds it; make test does): %v", tools, err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	started := regexp.MustCompile(`s3: versitygw on 127\.0\.0\.1:\d+ \(pid (\d+)\)`)
	for _, tc := range []struct {
		name, pkgs string
		pass       bool
	}{{"passing", "./xmpp/module", true}, {"failing", "./no/such/package", false}} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			cmd := exec.Command(filepath.Join(root, "scripts", "test.sh"))
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "PKGS="+tc.pkgs, "FUZZ=0", "PARLEY_TOOLS="+tools,
				"PARLEY_NO_INSTALL=1", "PARLEY_REQUIRE_SERVICES=", "PARLEY_TEST_S3_ENDPOINT=",
				"PARLEY_S3_STATE_DIR="+filepath.Join(state, "s3"), "PARLEY_SERVICES_STATE_DIR="+filepath.Join(state, "services"))
			out, err := cmd.CombinedOutput()
			t.Logf("scripts/test.sh with PKGS=%s:\n%s", tc.pkgs, out)
			if (err == nil) != tc.pass {
				t.Fatalf("exit: %v, want passing %v", err, tc.pass)
			}
			m := started.FindSubmatch(out)
			if m == nil {
				t.Fatal("the run did not start a versitygw of its own")
			}
			if alive(string(m[1]), "versitygw") {
				t.Errorf("versitygw (pid %s) started by the run is still running", m[1])
			}
			if _, err := os.Stat(filepath.Join(state, "s3", "state")); err == nil {
				t.Error("scripts/s3.sh state is left behind")
			}
			if !strings.Contains(string(out), "=== make test summary") {
				t.Error("no summary at the end")
			}
		})
	}
}

// alive reports whether pid is a running process named name (a zombie waiting for its reaper is not).
func alive(pid, name string) bool {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...
	rest := string(stat)
	i := strings.LastIndex(rest, ")")
	if i < 0 || !strings.Contains(rest[:i], name) {
		return false
	}
	state := strings.Fields(rest[i+1:])
	return len(state) > 0 && state[0] != "Z" && state[0] != "X"
}

// TestTestDepsReportsWhatIsMissing: on a machine without the suites' clients (here: a PATH with only the
// commands the script itself needs, and no chromium) scripts/test-deps.sh --check installs nothing and names
// each missing dependency with what needs it; under CI (PARLEY_REQUIRE_SERVICES=1) that is a failure.
func TestTestDepsReportsWhatIsMissing(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	bin := t.TempDir()
	for _, c := range []string{"sha256sum", "cut", "cat", "id", "dirname", "mktemp", "rm"} {
		p, err := exec.LookPath(c)
		if err != nil {
			t.Skipf("%s not found: %v", c, err)
		}
		if err := os.Symlink(p, filepath.Join(bin, c)); err != nil {
			t.Fatal(err)
		}
	}
	root, _ := filepath.Abs("../..")
	report := filepath.Join(t.TempDir(), "report")
	for _, require := range []string{"", "1"} {
		cmd := exec.Command(bash, filepath.Join(root, "scripts", "test-deps.sh"), "--check", "--report", report)
		cmd.Env = []string{"PATH=" + bin, "HOME=" + t.TempDir(), "PARLEY_TEST_CHROMIUM=/nonexistent/chromium",
			"PARLEY_REQUIRE_SERVICES=" + require}
		out, err := cmd.CombinedOutput()
		t.Logf("test-deps.sh --check (PARLEY_REQUIRE_SERVICES=%q): %v\n%s", require, err, out)
		if (err == nil) != (require == "") {
			t.Errorf("PARLEY_REQUIRE_SERVICES=%q: exit %v", require, err)
		}
		got, err := os.ReadFile(report)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"MISSING psql: --check installs nothing; install it with apt-get install postgresql postgresql-client",
			"MISSING redis-server:", "MISSING go-sendxmpp:", "MISSING chromium:", "MISSING node:"} {
			if !strings.Contains(string(got), want) {
				t.Errorf("report lacks %q:\n%s", want, got)
			}
		}
	}
}
