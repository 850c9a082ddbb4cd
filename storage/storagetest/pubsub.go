package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"parley.im/parley/storage"
)

const (
	nodeDevices = "urn:xmpp:omemo:2:devices"
	nodeBundles = "urn:xmpp:omemo:2:bundles"
	nodeAvatar  = "urn:xmpp:avatar:metadata"
)

// psItem is an item published by alice at base+sec seconds.
func psItem(id string, sec int, payload string) storage.PubSubItem {
	return storage.PubSubItem{ID: id, Publisher: alice + "/phone", Time: base.Add(time.Duration(sec) * time.Second),
		Payload: []byte(payload)}
}

func psNode(owner, node string, maxItems int) storage.PubSubNode {
	return storage.PubSubNode{Owner: owner, Node: node, AccessModel: "presence", MaxItems: maxItems,
		Config: []byte("cfg " + node)}
}

func samePSItems(t *testing.T, what string, got, want []storage.PubSubItem) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d items %q, want %d items %q", what, len(got), psIDs(got), len(want), psIDs(want))
		return
	}
	for i, w := range want {
		g := got[i]
		if g.ID != w.ID || g.Publisher != w.Publisher || !g.Time.Equal(w.Time) || !bytes.Equal(g.Payload, w.Payload) {
			t.Errorf("%s: item %d = %+v, want %+v", what, i, g, w)
		}
		if g.Time.Location() != time.UTC {
			t.Errorf("%s: item %d: Time in %v, want UTC", what, i, g.Time.Location())
		}
	}
}

func psIDs(items []storage.PubSubItem) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	return ids
}

func wantLimit(t *testing.T, what string, err error, limit string) {
	t.Helper()
	var le *storage.LimitError
	if !errors.Is(err, storage.ErrLimit) || !errors.As(err, &le) {
		t.Errorf("%s: err = %v, want a *storage.LimitError", what, err)
		return
	}
	if le.Limit != limit {
		t.Errorf("%s: limit %q, want %q", what, le.Limit, limit)
	}
}

func testPubSub(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("Nodes", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		_, err := s.Node(ctx, alice, nodeDevices)
		wantErr(t, "Node of an absent node", err, storage.ErrNotFound)
		list, err := s.Nodes(ctx, alice)
		must(t, "Nodes of none", err)
		if len(list) != 0 {
			t.Errorf("Nodes of an empty store = %+v", list)
		}
		n := psNode(alice, nodeDevices, 0)
		n.AccessModel, n.Config = "open", []byte("\x00\xff binary")
		must(t, "CreateNode", s.CreateNode(ctx, n, storage.PubSubLimits{}))
		wantErr(t, "CreateNode again", s.CreateNode(ctx, psNode(alice, nodeDevices, 5), storage.PubSubLimits{}),
			storage.ErrConflict)
		got, err := s.Node(ctx, alice, nodeDevices)
		must(t, "Node", err)
		if got.Owner != alice || got.Node != nodeDevices || got.AccessModel != "open" || got.MaxItems != 0 ||
			!bytes.Equal(got.Config, n.Config) {
			t.Errorf("Node = %+v, want %+v", got, n)
		}
		// Same node name, other owner; names sort bytewise ("Zed" before "urn").
		must(t, "CreateNode for bob", s.CreateNode(ctx, psNode(bob, nodeDevices, 1), storage.PubSubLimits{}))
		must(t, "CreateNode", s.CreateNode(ctx, psNode(alice, "Zed", 1), storage.PubSubLimits{}))
		must(t, "CreateNode", s.CreateNode(ctx, psNode(alice, nodeAvatar, 1), storage.PubSubLimits{}))
		list, err = s.Nodes(ctx, alice)
		must(t, "Nodes", err)
		var names []string
		for _, x := range list {
			names = append(names, x.Node)
			if x.Owner != alice {
				t.Errorf("Nodes(alice) returned a node of %q", x.Owner)
			}
		}
		sameStrings(t, "Nodes", names, []string{"Zed", nodeAvatar, nodeDevices})

		// Configure replaces the three columns.
		n.AccessModel, n.MaxItems, n.Config = "whitelist", 3, []byte("v2")
		_, err = s.ConfigureNode(ctx, n, storage.PubSubLimits{})
		must(t, "ConfigureNode", err)
		got, err = s.Node(ctx, alice, nodeDevices)
		must(t, "Node", err)
		if got.AccessModel != "whitelist" || got.MaxItems != 3 || string(got.Config) != "v2" {
			t.Errorf("Node after ConfigureNode = %+v", got)
		}
		_, err = s.ConfigureNode(ctx, psNode(alice, "absent", 1), storage.PubSubLimits{})
		wantErr(t, "ConfigureNode of an absent node", err, storage.ErrNotFound)

		must(t, "DeleteNode", s.DeleteNode(ctx, alice, nodeDevices))
		wantErr(t, "DeleteNode again", s.DeleteNode(ctx, alice, nodeDevices), storage.ErrNotFound)
		_, err = s.Node(ctx, alice, nodeDevices)
		wantErr(t, "Node after DeleteNode", err, storage.ErrNotFound)
		if _, err := s.Node(ctx, bob, nodeDevices); err != nil {
			t.Errorf("bob's node after deleting alice's: %v", err)
		}
	})

	t.Run("PublishOrderAndReplace", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		lim := storage.PubSubLimits{}
		_, err := s.Publish(ctx, alice, nodeBundles, psItem("1", 0, "<x/>"), lim)
		wantErr(t, "Publish to an absent node", err, storage.ErrNotFound)
		must(t, "CreateNode", s.CreateNode(ctx, psNode(alice, nodeBundles, 0), lim))
		_, err = s.Items(ctx, alice, "absent", storage.PubSubItemQuery{})
		wantErr(t, "Items of an absent node", err, storage.ErrNotFound)
		items, err := s.Items(ctx, alice, nodeBundles, storage.PubSubItemQuery{})
		must(t, "Items of an empty node", err)
		samePSItems(t, "Items of an empty node", items, nil)

		// Ids deliberately not in publish order; a payload byte for byte, with odd whitespace and quotes.
		raw := "<bundle xmlns='urn:xmpp:omemo:2'>\n\t<spk id=\"1\">QUJD</spk><ik>&amp;&#x41;</ik></bundle>"
		want := []storage.PubSubItem{psItem("9", 1, raw), psItem("10", 2, "<b/>"), psItem("2", 3, "<c/>")}
		for _, it := range want {
			trimmed, err := s.Publish(ctx, alice, nodeBundles, it, lim)
			must(t, "Publish", err)
			sameStrings(t, "trimmed by a Publish under no limit", trimmed, nil)
		}
		items, err = s.Items(ctx, alice, nodeBundles, storage.PubSubItemQuery{})
		must(t, "Items", err)
		samePSItems(t, "Items in publish order", items, want)

		// Republishing "9" replaces it and makes it the newest.
		re := psItem("9", 4, "<replaced/>")
		re.Publisher = alice + "/laptop"
		_, err = s.Publish(ctx, alice, nodeBundles, re, lim)
		must(t, "Publish (replace)", err)
		want = []storage.PubSubItem{want[1], want[2], re}
		items, err = s.Items(ctx, alice, nodeBundles, storage.PubSubItemQuery{})
		must(t, "Items", err)
		samePSItems(t, "Items after replace", items, want)

		items, err = s.Items(ctx, alice, nodeBundles, storage.PubSubItemQuery{Last: 2})
		must(t, "Items last 2", err)
		samePSItems(t, "Items last 2", items, want[1:])
		items, err = s.Items(ctx, alice, nodeBundles, storage.PubSubItemQuery{Last: 10})
		must(t, "Items last 10", err)
		samePSItems(t, "Items last 10", items, want)
		items, err = s.Items(ctx, alice, nodeBundles, storage.PubSubItemQuery{IDs: []string{"9", "absent", "10"}})
		must(t, "Items by id", err)
		samePSItems(t, "Items by id (publish order, absent skipped)", items, []storage.PubSubItem{want[0], want[2]})
		items, err = s.Items(ctx, alice, nodeBundles, storage.PubSubItemQuery{IDs: []string{"9", "10", "2"}, Last: 1})
		must(t, "Items by id, last 1", err)
		samePSItems(t, "Items by id, last 1", items, want[2:])

		// Retract.
		must(t, "Retract", s.Retract(ctx, alice, nodeBundles, "10"))
		wantErr(t, "Retract again", s.Retract(ctx, alice, nodeBundles, "10"), storage.ErrNotFound)
		wantErr(t, "Retract in an absent node", s.Retract(ctx, alice, "absent", "2"), storage.ErrNotFound)
		items, err = s.Items(ctx, alice, nodeBundles, storage.PubSubItemQuery{})
		must(t, "Items", err)
		samePSItems(t, "Items after Retract", items, want[1:])

		// Purge keeps the node.
		must(t, "Purge", s.Purge(ctx, alice, nodeBundles))
		wantErr(t, "Purge of an absent node", s.Purge(ctx, alice, "absent"), storage.ErrNotFound)
		items, err = s.Items(ctx, alice, nodeBundles, storage.PubSubItemQuery{})
		must(t, "Items after Purge", err)
		samePSItems(t, "Items after Purge", items, nil)
		// Publishing after a purge still orders after everything before it.
		_, err = s.Publish(ctx, alice, nodeBundles, psItem("a", 5, "<a/>"), lim)
		must(t, "Publish after Purge", err)
		_, err = s.Publish(ctx, alice, nodeBundles, psItem("2", 6, "<again/>"), lim)
		must(t, "Publish after Purge", err)
		items, err = s.Items(ctx, alice, nodeBundles, storage.PubSubItemQuery{Last: 1})
		must(t, "Items", err)
		samePSItems(t, "newest after Purge", items, []storage.PubSubItem{psItem("2", 6, "<again/>")})

		// Deleting the node deletes its items: a new node of the same name starts empty.
		must(t, "DeleteNode", s.DeleteNode(ctx, alice, nodeBundles))
		must(t, "CreateNode again", s.CreateNode(ctx, psNode(alice, nodeBundles, 0), lim))
		items, err = s.Items(ctx, alice, nodeBundles, storage.PubSubItemQuery{})
		must(t, "Items", err)
		samePSItems(t, "Items of a recreated node", items, nil)
	})

	t.Run("Trim", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		lim := storage.PubSubLimits{MaxItems: 100}
		must(t, "CreateNode", s.CreateNode(ctx, psNode(alice, nodeAvatar, 2), lim))
		must(t, "CreateNode", s.CreateNode(ctx, psNode(bob, nodeAvatar, 2), lim))
		_, err := s.Publish(ctx, bob, nodeAvatar, psItem("b", 0, "<b/>"), lim)
		must(t, "Publish for bob", err)
		var trims [][]string
		for i, id := range []string{"a", "b", "c", "b", "d"} {
			trimmed, err := s.Publish(ctx, alice, nodeAvatar, psItem(id, i, "<"+id+"/>"), lim)
			must(t, "Publish", err)
			trims = append(trims, trimmed)
		}
		// a b -> a b; +c -> trims a; +b (replace) -> c b; +d -> trims c.
		want := [][]string{nil, nil, {"a"}, nil, {"c"}}
		for i := range want {
			sameStrings(t, "trimmed by publish "+string(rune('0'+i)), trims[i], want[i])
		}
		items, err := s.Items(ctx, alice, nodeAvatar, storage.PubSubItemQuery{})
		must(t, "Items", err)
		samePSItems(t, "Items after trimming", items, []storage.PubSubItem{psItem("b", 3, "<b/>"), psItem("d", 4, "<d/>")})
		items, err = s.Items(ctx, bob, nodeAvatar, storage.PubSubItemQuery{})
		must(t, "Items of bob", err)
		samePSItems(t, "bob's items", items, []storage.PubSubItem{psItem("b", 0, "<b/>")})

		// Lowering max_items trims in ConfigureNode, oldest first.
		n := psNode(alice, nodeAvatar, 5)
		_, err = s.ConfigureNode(ctx, n, lim)
		must(t, "ConfigureNode", err)
		for i, id := range []string{"e", "f", "g"} {
			_, err := s.Publish(ctx, alice, nodeAvatar, psItem(id, 10+i, "<x/>"), lim)
			must(t, "Publish", err)
		}
		n.MaxItems = 2
		trimmed, err := s.ConfigureNode(ctx, n, lim)
		must(t, "ConfigureNode", err)
		sameStrings(t, "trimmed by ConfigureNode", trimmed, []string{"b", "d", "e"})
		items, err = s.Items(ctx, alice, nodeAvatar, storage.PubSubItemQuery{})
		must(t, "Items", err)
		sameStrings(t, "ids after ConfigureNode", psIDs(items), []string{"f", "g"})

		// max_items 1: every new id trims the previous one.
		n.MaxItems = 1
		trimmed, err = s.ConfigureNode(ctx, n, lim)
		must(t, "ConfigureNode", err)
		sameStrings(t, "trimmed to one", trimmed, []string{"f"})
		trimmed, err = s.Publish(ctx, alice, nodeAvatar, psItem("h", 20, "<h/>"), lim)
		must(t, "Publish", err)
		sameStrings(t, "trimmed with max_items 1", trimmed, []string{"g"})
	})

	// ConcurrentPublish checks that publishers of one node take turns: every id is either kept or reported
	// trimmed exactly once, and the node never holds more than max_items.
	t.Run("ConcurrentPublish", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		const publishers, keep = 24, 3
		lim := storage.PubSubLimits{MaxItems: 100}
		must(t, "CreateNode", s.CreateNode(ctx, psNode(alice, nodeAvatar, keep), lim))
		var wg sync.WaitGroup
		trims := make([][]string, publishers)
		errs := make([]error, publishers)
		for i := range publishers {
			wg.Go(func() {
				trims[i], errs[i] = s.Publish(ctx, alice, nodeAvatar, psItem(fmt.Sprint("id", i), i, "<x/>"), lim)
			})
		}
		wg.Wait()
		seen := map[string]int{}
		for i := range publishers {
			must(t, "Publish", errs[i])
			for _, id := range trims[i] {
				seen[id]++
			}
		}
		items, err := s.Items(ctx, alice, nodeAvatar, storage.PubSubItemQuery{})
		must(t, "Items", err)
		if len(items) != keep {
			t.Errorf("%d items after concurrent publishes, want %d", len(items), keep)
		}
		for _, it := range items {
			seen[it.ID]++
		}
		if len(seen) != publishers {
			t.Errorf("%d distinct ids kept or trimmed, want %d", len(seen), publishers)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("id %s kept or trimmed %d times", id, n)
			}
		}
	})

	t.Run("Limits", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		lim := storage.PubSubLimits{MaxNodes: 2, MaxItems: 3, MaxItemSize: 16}
		must(t, "CreateNode", s.CreateNode(ctx, psNode(alice, "n1", 0), lim))
		wantLimit(t, "CreateNode with max_items above the limit",
			s.CreateNode(ctx, psNode(alice, "n2", 4), lim), storage.LimitItems)
		must(t, "CreateNode", s.CreateNode(ctx, psNode(alice, "n2", 3), lim))
		wantLimit(t, "third CreateNode", s.CreateNode(ctx, psNode(alice, "n3", 1), lim), storage.LimitNodes)
		wantErr(t, "CreateNode of an existing node at the limit", s.CreateNode(ctx, psNode(alice, "n1", 1), lim),
			storage.ErrConflict)
		must(t, "CreateNode for another owner", s.CreateNode(ctx, psNode(bob, "n3", 1), lim))
		_, err := s.ConfigureNode(ctx, psNode(alice, "n2", 4), lim)
		wantLimit(t, "ConfigureNode with max_items above the limit", err, storage.LimitItems)

		_, err = s.Publish(ctx, alice, "n1", psItem("big", 0, "<x>0123456789</x>"), lim)
		wantLimit(t, "Publish of a large item", err, storage.LimitItemSize)
		_, err = s.Publish(ctx, alice, "n1", psItem("ok", 0, "<x>012345678</x>"), lim)
		must(t, "Publish of an item of exactly the limit", err)

		// A "max" node (MaxItems 0) holds lim.MaxItems items and then refuses new ids, but accepts replacements:
		// trimming an OMEMO bundle would silently drop a device.
		for i, id := range []string{"d2", "d3"} {
			_, err := s.Publish(ctx, alice, "n1", psItem(id, i+1, "<b/>"), lim)
			must(t, "Publish", err)
		}
		_, err = s.Publish(ctx, alice, "n1", psItem("d4", 5, "<b/>"), lim)
		wantLimit(t, "Publish of a new id in a full \"max\" node", err, storage.LimitItems)
		trimmed, err := s.Publish(ctx, alice, "n1", psItem("d2", 6, "<new/>"), lim)
		must(t, "Publish of a replacement in a full \"max\" node", err)
		sameStrings(t, "trimmed by the replacement", trimmed, nil)
		items, err := s.Items(ctx, alice, "n1", storage.PubSubItemQuery{})
		must(t, "Items", err)
		samePSItems(t, "Items of the full node (the refused publish changed nothing)", items,
			[]storage.PubSubItem{psItem("ok", 0, "<x>012345678</x>"), psItem("d3", 2, "<b/>"), psItem("d2", 6, "<new/>")})

		// A finite node under the limit trims as usual.
		for i, id := range []string{"a", "b", "c", "d"} {
			_, err := s.Publish(ctx, alice, "n2", psItem(id, i, "<b/>"), lim)
			must(t, "Publish", err)
		}
		items, err = s.Items(ctx, alice, "n2", storage.PubSubItemQuery{})
		must(t, "Items", err)
		sameStrings(t, "ids of a finite node", psIDs(items), []string{"b", "c", "d"})
	})

	t.Run("Affiliations", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		a := storage.PubSubAffiliation{JID: bob, Affiliation: storage.AffMember}
		wantErr(t, "SetNodeAffiliation of an absent node", s.SetNodeAffiliation(ctx, alice, nodeAvatar, a),
			storage.ErrNotFound)
		_, err := s.NodeAffiliations(ctx, alice, nodeAvatar)
		wantErr(t, "NodeAffiliations of an absent node", err, storage.ErrNotFound)
		must(t, "CreateNode", s.CreateNode(ctx, psNode(alice, nodeAvatar, 1), storage.PubSubLimits{}))
		must(t, "CreateNode", s.CreateNode(ctx, psNode(alice, nodeDevices, 1), storage.PubSubLimits{}))
		affs, err := s.NodeAffiliations(ctx, alice, nodeAvatar)
		must(t, "NodeAffiliations", err)
		if len(affs) != 0 {
			t.Errorf("NodeAffiliations of a new node = %+v", affs)
		}
		want := []storage.PubSubAffiliation{
			{JID: "Zoe@localhost", Affiliation: storage.AffPublisher},
			{JID: bob, Affiliation: storage.AffMember},
			{JID: carol, Affiliation: storage.AffOutcast},
		}
		for _, i := range []int{2, 0, 1} {
			must(t, "SetNodeAffiliation", s.SetNodeAffiliation(ctx, alice, nodeAvatar, want[i]))
		}
		must(t, "SetNodeAffiliation on the other node", s.SetNodeAffiliation(ctx, alice, nodeDevices,
			storage.PubSubAffiliation{JID: carol, Affiliation: storage.AffMember}))
		affs, err = s.NodeAffiliations(ctx, alice, nodeAvatar)
		must(t, "NodeAffiliations", err)
		if !slices.Equal(affs, want) {
			t.Errorf("NodeAffiliations = %+v, want %+v", affs, want)
		}
		must(t, "SetNodeAffiliation replace", s.SetNodeAffiliation(ctx, alice, nodeAvatar,
			storage.PubSubAffiliation{JID: carol, Affiliation: storage.AffMember}))
		must(t, "SetNodeAffiliation none", s.SetNodeAffiliation(ctx, alice, nodeAvatar,
			storage.PubSubAffiliation{JID: bob, Affiliation: storage.AffNone}))
		must(t, "SetNodeAffiliation empty of an absent record", s.SetNodeAffiliation(ctx, alice, nodeAvatar,
			storage.PubSubAffiliation{JID: "nobody@localhost"}))
		affs, err = s.NodeAffiliations(ctx, alice, nodeAvatar)
		must(t, "NodeAffiliations", err)
		want = []storage.PubSubAffiliation{want[0], {JID: carol, Affiliation: storage.AffMember}}
		if !slices.Equal(affs, want) {
			t.Errorf("NodeAffiliations after replace and remove = %+v, want %+v", affs, want)
		}
		// Configuring keeps them; deleting the node drops them.
		_, err = s.ConfigureNode(ctx, psNode(alice, nodeAvatar, 2), storage.PubSubLimits{})
		must(t, "ConfigureNode", err)
		affs, err = s.NodeAffiliations(ctx, alice, nodeAvatar)
		must(t, "NodeAffiliations", err)
		if !slices.Equal(affs, want) {
			t.Errorf("NodeAffiliations after ConfigureNode = %+v, want %+v", affs, want)
		}
		must(t, "DeleteNode", s.DeleteNode(ctx, alice, nodeAvatar))
		must(t, "CreateNode again", s.CreateNode(ctx, psNode(alice, nodeAvatar, 1), storage.PubSubLimits{}))
		affs, err = s.NodeAffiliations(ctx, alice, nodeAvatar)
		must(t, "NodeAffiliations", err)
		if len(affs) != 0 {
			t.Errorf("NodeAffiliations of a recreated node = %+v", affs)
		}
	})

	t.Run("Subscriptions", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		sub := storage.PubSubSubscription{JID: bob + "/phone", State: "subscribed"}
		wantErr(t, "SetSubscription of an absent node", s.SetSubscription(ctx, alice, nodeAvatar, sub),
			storage.ErrNotFound)
		_, err := s.Subscriptions(ctx, alice, nodeAvatar)
		wantErr(t, "Subscriptions of an absent node", err, storage.ErrNotFound)
		must(t, "CreateNode", s.CreateNode(ctx, psNode(alice, nodeAvatar, 1), storage.PubSubLimits{}))
		want := []storage.PubSubSubscription{
			{JID: bob, SubID: "", State: "pending"},
			{JID: bob + "/phone", SubID: "s1", State: "subscribed"},
			{JID: bob + "/phone", SubID: "s2", State: "unconfigured"},
		}
		for _, i := range []int{2, 0, 1} {
			must(t, "SetSubscription", s.SetSubscription(ctx, alice, nodeAvatar, want[i]))
		}
		subs, err := s.Subscriptions(ctx, alice, nodeAvatar)
		must(t, "Subscriptions", err)
		if !slices.Equal(subs, want) {
			t.Errorf("Subscriptions = %+v, want %+v", subs, want)
		}
		must(t, "SetSubscription replace", s.SetSubscription(ctx, alice, nodeAvatar,
			storage.PubSubSubscription{JID: bob, State: "subscribed"}))
		must(t, "SetSubscription none", s.SetSubscription(ctx, alice, nodeAvatar,
			storage.PubSubSubscription{JID: bob + "/phone", SubID: "s2", State: "none"}))
		subs, err = s.Subscriptions(ctx, alice, nodeAvatar)
		must(t, "Subscriptions", err)
		want = []storage.PubSubSubscription{{JID: bob, State: "subscribed"}, want[1]}
		if !slices.Equal(subs, want) {
			t.Errorf("Subscriptions after replace and remove = %+v, want %+v", subs, want)
		}
	})

	t.Run("DeleteOwner", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		for _, o := range []string{alice, bob} {
			for _, n := range []string{nodeDevices, nodeBundles} {
				must(t, "CreateNode", s.CreateNode(ctx, psNode(o, n, 0), storage.PubSubLimits{}))
				_, err := s.Publish(ctx, o, n, psItem("1", 0, "<x/>"), storage.PubSubLimits{})
				must(t, "Publish", err)
				must(t, "SetNodeAffiliation", s.SetNodeAffiliation(ctx, o, n,
					storage.PubSubAffiliation{JID: carol, Affiliation: storage.AffMember}))
			}
		}
		must(t, "DeleteOwner", s.DeleteOwner(ctx, alice))
		must(t, "DeleteOwner of an owner without nodes", s.DeleteOwner(ctx, carol))
		list, err := s.Nodes(ctx, alice)
		must(t, "Nodes", err)
		if len(list) != 0 {
			t.Errorf("Nodes after DeleteOwner = %+v", list)
		}
		// A node recreated under the same name has none of the old items.
		must(t, "CreateNode again", s.CreateNode(ctx, psNode(alice, nodeDevices, 0), storage.PubSubLimits{}))
		items, err := s.Items(ctx, alice, nodeDevices, storage.PubSubItemQuery{})
		must(t, "Items", err)
		samePSItems(t, "Items of a recreated node", items, nil)
		list, err = s.Nodes(ctx, bob)
		must(t, "Nodes of bob", err)
		if len(list) != 2 {
			t.Errorf("bob's nodes after alice's DeleteOwner = %+v", list)
		}
		items, err = s.Items(ctx, bob, nodeBundles, storage.PubSubItemQuery{})
		must(t, "Items of bob", err)
		samePSItems(t, "bob's items", items, []storage.PubSubItem{psItem("1", 0, "<x/>")})
	})
}
