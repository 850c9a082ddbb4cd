package transport

import (
	"os/exec"
	"strings"
	"testing"
)

// The transport sits under every kind of stream: it must not depend on what runs over it (client streams, the
// router) nor on storage, or s2s and component streams could not use it without them.
func TestTransportImportsNoServerPackages(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list dependencies")
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"parley.im/parley/xmpp/c2s", "parley.im/parley/xmpp/router",
			"parley.im/parley/xmpp/module", "parley.im/parley/storage"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("xmpp/transport depends on %s", dep)
			}
		}
	}
}
