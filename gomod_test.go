// Package parley_test holds presubmit checks on the module as a whole.
package parley_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// keptUnused are requirements the project keeps although no package imports them yet; `go mod tidy` would
// drop them, which is why it is never run here.
var keptUnused = []string{"github.com/redis/go-redis/v9"}

// Every requirement in go.mod was marked // indirect (issue 19 item 7), so go.mod did not say which modules
// Parley uses itself. A module that provides a package the module's own packages or tests import must be
// required without // indirect, and a requirement without it must be imported.
func TestDefectGoModDirectRequirementsMarkedIndirect(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	src, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	required := map[string]bool{} // module path -> marked indirect
	inBlock := false
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "require (":
			inBlock = true
			continue
		case inBlock && line == ")":
			inBlock = false
			continue
		case strings.HasPrefix(line, "require "):
			line = strings.TrimPrefix(line, "require ")
		case !inBlock:
			continue
		}
		if f := strings.Fields(line); len(f) >= 2 {
			required[f[0]] = strings.HasSuffix(line, "// indirect")
		}
	}
	list := func(args ...string) []string {
		out, err := exec.Command(goBin, append([]string{"list"}, args...)...).Output()
		if err != nil {
			t.Fatalf("go list %v: %v", args, err)
		}
		return strings.Fields(string(out))
	}
	var external []string
	seen := map[string]bool{}
	for _, p := range list("-f", "{{join .Imports \" \"}} {{join .TestImports \" \"}} {{join .XTestImports \" \"}}", "./...") {
		if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") && !strings.HasPrefix(p, "parley.im/") && !seen[p] {
			seen[p] = true
			external = append(external, p)
		}
	}
	direct := map[string]bool{}
	for _, m := range list(append([]string{"-f", "{{with .Module}}{{.Path}}{{end}}"}, external...)...) {
		direct[m] = true
	}
	if len(direct) == 0 {
		t.Fatal("no imported module found: the check would pass vacuously")
	}
	for m := range direct {
		indirect, ok := required[m]
		switch {
		case !ok:
			t.Errorf("%s is imported but not required in go.mod", m)
		case indirect:
			t.Errorf("%s is imported by Parley but marked // indirect in go.mod", m)
		}
	}
	for m, indirect := range required {
		if !indirect && !direct[m] {
			t.Errorf("%s is required as a direct dependency but nothing imports it", m)
		}
	}
	for _, m := range keptUnused {
		if _, ok := required[m]; !ok {
			t.Errorf("%s is no longer required: it is a project dependency kept for code to come (never run go mod tidy)", m)
		}
	}
}
