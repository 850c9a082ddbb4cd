package pubsub

import "strings"

// NotifySuffix turns a node name into the XEP-0115 feature by which a client asks for that node's
// notifications (XEP-0163 section 4.4, "filtered notifications"): "urn:xmpp:omemo:2:devices+notify".
const NotifySuffix = "+notify"

// NotifyFeature returns the feature that subscribes to node's notifications.
func NotifyFeature(node string) string { return node + NotifySuffix }

// WantsNotify reports whether a client with the disco features features (from its XEP-0115 caps) wants
// notifications of node (never for the empty name). It scans features; a module that asks for many nodes per caps hash should keep the
// set NotifyNodes returns instead.
func WantsNotify(features []string, node string) bool {
	if node == "" {
		return false // node names are never empty; a bare "+notify" feature names nothing
	}
	for _, f := range features {
		if len(f) == len(node)+len(NotifySuffix) && strings.HasSuffix(f, NotifySuffix) && f[:len(node)] == node {
			return true
		}
	}
	return false
}

// NotifyNodes returns the set of nodes whose notifications a client with features wants: every feature that
// ends in "+notify", without the suffix. A module computes it once per caps verification string.
func NotifyNodes(features []string) map[string]struct{} {
	set := make(map[string]struct{})
	for _, f := range features {
		if node, ok := strings.CutSuffix(f, NotifySuffix); ok && node != "" {
			set[node] = struct{}{}
		}
	}
	return set
}
