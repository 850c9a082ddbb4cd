// Package presubmit holds repository checks that run as ordinary tests (`go test ./...`), as CoreDNS keeps its
// presubmits: the import edges docs/ARCHITECTURE.md promises between the core and the modules.
//
// A module sees the server only through xmpp/module (and storage interfaces): it never imports the client
// listener, the router, the transport or a storage driver. That keeps modules testable with fakes and lets the
// router, the transport and the drivers change (clustering, federation) without touching them.
package presubmit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
)

// Root is the import path of the repository's Go module.
const Root = "parley.im/parley"

// Modules are the feature packages (protocol modules and services) the import rule applies to. Any other
// package that imports xmpp/module directly counts as one too (see ModulePackages), so a new module is checked
// without an edit here.
var Modules = []string{
	"httpupload", "muc", "offline",
	"xmpp/mam", "xmpp/carbons", "xmpp/disco", "xmpp/mamcodec", "xmpp/ping", "xmpp/presence", "xmpp/push",
	"xmpp/register", "xmpp/roster", "xmpp/version",
}

// Core are the packages that wire modules in or serve them: they may import both xmpp/module and what
// modules may not. A path ending in /... covers the packages under it.
var Core = []string{
	"cmd/...", "conformance", "bench/...",
	"xmpp/c2s/...", "xmpp/router/...", "xmpp/transport/...", "xmpp/websocket/...", "xmpp/sock/...",
	"xmpp/module/...",
	// Test support (fake router, session and host): imported by module tests only, never by module code.
	"xmpp/moduletest/...",
}

// Forbidden are the packages no module may depend on, directly or through another package. The transport
// package may not exist yet: the rule is in place for when it does.
var Forbidden = []string{
	"xmpp/c2s/...", "xmpp/router/...", "xmpp/transport/...", "xmpp/websocket/...", "xmpp/sock/...",
	"storage/sqlite/...", "storage/pg/...", "storage/s3/...",
}

// Package is what the check needs of one package from `go list -json`.
type Package struct {
	ImportPath string
	Imports    []string // direct imports
	Deps       []string // every package it depends on, transitively
}

// List runs `go list -json` over every package of the repository (dir is any directory in it). Test files are
// not included: what module tests import (fakes, drivers for an integration test) is not module code.
func List(dir string) ([]Package, error) {
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", Root+"/...")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("presubmit: go list: %w\n%s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("presubmit: go list: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []Package
	for {
		var p Package
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("presubmit: go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// match reports whether the import path p is the repository-relative pattern pat ("xmpp/c2s" or "xmpp/c2s/...").
func match(p, pat string) bool {
	rel, ok := strings.CutPrefix(p, Root+"/")
	if !ok {
		return false
	}
	if base, ok := strings.CutSuffix(pat, "/..."); ok {
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == pat
}

func matchAny(p string, pats []string) bool {
	for _, pat := range pats {
		if match(p, pat) {
			return true
		}
	}
	return false
}

// ModulePackages returns the import paths of pkgs the rule applies to: those in Modules, and every other
// package outside Core that imports xmpp/module.
func ModulePackages(pkgs []Package) []string {
	var out []string
	for _, p := range pkgs {
		if matchAny(p.ImportPath, Core) {
			continue
		}
		isModule := matchAny(p.ImportPath, Modules)
		for _, imp := range p.Imports {
			if imp == Root+"/xmpp/module" {
				isModule = true
			}
		}
		if isModule {
			out = append(out, p.ImportPath)
		}
	}
	sort.Strings(out)
	return out
}

// Violations returns one line per forbidden dependency of a module package: "muc imports xmpp/router"
// (direct) or "muc depends on xmpp/router (through another package)".
func Violations(pkgs []Package) []string {
	mods := make(map[string]bool)
	for _, m := range ModulePackages(pkgs) {
		mods[m] = true
	}
	var out []string
	for _, p := range pkgs {
		if !mods[p.ImportPath] {
			continue
		}
		direct := make(map[string]bool)
		for _, imp := range p.Imports {
			direct[imp] = true
		}
		name := strings.TrimPrefix(p.ImportPath, Root+"/")
		for _, d := range p.Deps {
			if !matchAny(d, Forbidden) {
				continue
			}
			dep := strings.TrimPrefix(d, Root+"/")
			if direct[d] {
				out = append(out, fmt.Sprintf("%s imports %s", name, dep))
			} else {
				out = append(out, fmt.Sprintf("%s depends on %s (through another package)", name, dep))
			}
		}
	}
	sort.Strings(out)
	return out
}
