package c2s

import (
	"strings"
	"testing"
)

// Bind 2 resources: the client's tag, then a part stable per account and device, different between devices
// and accounts, random without a device id; characters a resource must not start trouble with are dropped.
func TestBind2Resource(t *testing.T) {
	a := bind2Resource("phone", "alice", "device-1")
	if a != bind2Resource("phone", "alice", "device-1") || !strings.HasPrefix(a, "phone.") || len(a) != len("phone.")+12 {
		t.Fatalf("not stable or not tag.part: %q", a)
	}
	for _, other := range []string{bind2Resource("phone", "alice", "device-2"), bind2Resource("phone", "bob", "device-1")} {
		if other == a {
			t.Fatalf("two devices or accounts share %q", a)
		}
	}
	if r1, r2 := bind2Resource("x", "alice", ""), bind2Resource("x", "alice", ""); r1 == r2 {
		t.Fatalf("without a device id the resources repeat: %q", r1)
	}
	if r := bind2Resource("", "alice", "d"); !strings.HasPrefix(r, "parley.") {
		t.Fatalf("no tag: %q", r)
	}
	if r := bind2Resource("a/b@c\x01d", "alice", "d"); strings.ContainsAny(r, "/@\x01") {
		t.Fatalf("unsafe characters kept: %q", r)
	}
	if r := bind2Resource(strings.Repeat("t", 500), "alice", "d"); len(r) > 64+13 {
		t.Fatalf("long tag not bounded: %d bytes", len(r))
	}
}
