package presubmit

import (
	"reflect"
	"strings"
	"testing"
)

// TestModulesImportNoCore is the import-edge presubmit of docs/ARCHITECTURE.md: no module package imports the
// c2s listener, the router, the transport, the WebSocket listener or a storage driver, directly or not.
func TestModulesImportNoCore(t *testing.T) {
	pkgs, err := List(".")
	if err != nil {
		t.Fatal(err)
	}
	mods := ModulePackages(pkgs)
	// The listed modules must exist: a rename would otherwise take a package out of the check unnoticed.
	have := make(map[string]bool)
	for _, m := range mods {
		have[strings.TrimPrefix(m, Root+"/")] = true
	}
	for _, m := range Modules {
		if !have[m] {
			t.Errorf("module package %s is listed in presubmit.Modules but not found by go list", m)
		}
	}
	for _, v := range Violations(pkgs) {
		t.Errorf("import edge: %s; modules reach the server only through xmpp/module and storage interfaces", v)
	}
	t.Logf("checked %d module packages", len(mods))
}

// TestImportCheckFindsViolations: the checker itself, on packages made up for it, reports a module that
// imports the router, one that reaches a storage driver through a helper, and a new module found because it
// imports xmpp/module, and leaves the core alone.
func TestImportCheckFindsViolations(t *testing.T) {
	p := func(s string) string { return Root + "/" + s }
	pkgs := []Package{
		{ImportPath: p("muc"), Imports: []string{p("xmpp/module"), p("xmpp/router")}, Deps: []string{p("xmpp/module"), p("xmpp/router")}},
		{ImportPath: p("offline"), Imports: []string{p("xmpp/helper")}, Deps: []string{p("xmpp/helper"), p("storage/sqlite")}},
		{ImportPath: p("xmpp/helper"), Imports: []string{p("storage/sqlite")}, Deps: []string{p("storage/sqlite")}},
		{ImportPath: p("xmpp/newthing"), Imports: []string{p("xmpp/module"), p("xmpp/transport/tcp")}, Deps: []string{p("xmpp/module"), p("xmpp/transport/tcp")}},
		{ImportPath: p("xmpp/ping"), Imports: []string{p("xmpp/module")}, Deps: []string{p("xmpp/module"), p("storage")}},
		{ImportPath: p("xmpp/c2s"), Imports: []string{p("xmpp/module"), p("xmpp/router")}, Deps: []string{p("xmpp/module"), p("xmpp/router")}},
		{ImportPath: p("cmd/parley"), Imports: []string{p("muc"), p("storage/pg")}, Deps: []string{p("muc"), p("storage/pg")}},
		{ImportPath: p("xmpp/c2sutil"), Imports: []string{p("xmpp/module"), p("xmpp/c2s")}, Deps: []string{p("xmpp/module"), p("xmpp/c2s")}},
	}
	got := Violations(pkgs)
	want := []string{
		"muc imports xmpp/router",
		"offline depends on storage/sqlite (through another package)",
		"xmpp/c2sutil imports xmpp/c2s",
		"xmpp/newthing imports xmpp/transport/tcp",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
