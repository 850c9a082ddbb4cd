package pubsub

import (
	"maps"
	"slices"
	"testing"
)

func TestWantsNotify(t *testing.T) {
	features := []string{"http://jabber.org/protocol/caps", NotifyFeature(NodeOMEMODevices),
		"eu.siacs.conversations.axolotl.devicelist+notify", "urn:xmpp:avatar:metadata", "+notify", "x+notifyy"}
	for _, c := range []struct {
		node string
		want bool
	}{
		{NodeOMEMODevices, true},
		{NodeOMEMOLegacyDevices, true},
		{"urn:xmpp:avatar:metadata", false}, // the feature itself is not +notify
		{"urn:xmpp:omemo:2", false},         // a prefix of a notify node
		{"urn:xmpp:omemo:2:devices:x", false},
		{"x", false},
		{"", false}, // the bare "+notify" feature names no node
	} {
		if got := WantsNotify(features, c.node); got != c.want {
			t.Errorf("WantsNotify(%q) = %v, want %v", c.node, got, c.want)
		}
	}
	if WantsNotify(nil, NodeOMEMODevices) {
		t.Errorf("WantsNotify without features = true")
	}
	got := slices.Sorted(maps.Keys(NotifyNodes(features)))
	want := []string{NodeOMEMOLegacyDevices, NodeOMEMODevices}
	if !slices.Equal(got, want) {
		t.Errorf("NotifyNodes = %q, want %q", got, want)
	}
	if NotifyFeature("urn:xmpp:avatar:metadata") != "urn:xmpp:avatar:metadata+notify" {
		t.Errorf("NotifyFeature = %q", NotifyFeature("urn:xmpp:avatar:metadata"))
	}
}
