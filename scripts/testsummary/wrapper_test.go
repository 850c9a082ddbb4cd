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
