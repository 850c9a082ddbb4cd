package storagetest

import (
	"testing"

	"parley.im/parley/storage"
)

// testDeleteUserCascades checks that DeleteUser removes everything stored for the account, in every archive,
// and nothing of anybody else.
func testDeleteUserCascades(t *testing.T, open func(t *testing.T) storage.Store) {
	s := fresh(t, open)
	ctx := t.Context()
	mam, offline := s.Archive("mam"), s.Archive("offline")
	for _, u := range []string{alice, bob} {
		must(t, "CreateUser", s.CreateUser(ctx, u, creds(1)))
		_, err := s.PutRosterItem(ctx, u, storage.RosterItem{JID: carol, Subscription: storage.SubBoth,
			Groups: []string{"g"}})
		must(t, "PutRosterItem", err)
		must(t, "PutValue", s.PutValue(ctx, u, "vcard", []byte("card of "+u)))
		must(t, "PutValue", s.PutValue(ctx, u, "private/x", []byte("x")))
		must(t, "Append", mam.Append(ctx, u, fixture()...))
		must(t, "Append", offline.Append(ctx, u, msg("off-1", carol, base)))
		must(t, "CreateNode", s.CreateNode(ctx, psNode(u, nodeDevices, 0), storage.PubSubLimits{}))
		_, err = s.Publish(ctx, u, nodeDevices, psItem("1", 0, "<list/>"), storage.PubSubLimits{})
		must(t, "Publish", err)
	}
	_, verBefore, err := s.Roster(ctx, alice)
	must(t, "Roster", err)

	must(t, "DeleteUser", s.DeleteUser(ctx, alice))

	_, err = s.Credentials(ctx, alice)
	wantErr(t, "Credentials", err, storage.ErrNotFound)
	items, _, err := s.Roster(ctx, alice)
	must(t, "Roster", err)
	if len(items) != 0 {
		t.Errorf("roster after DeleteUser: %+v", items)
	}
	_, err = s.RosterItem(ctx, alice, carol)
	wantErr(t, "RosterItem", err, storage.ErrNotFound)
	keys, err := s.Keys(ctx, alice, "")
	must(t, "Keys", err)
	sameStrings(t, "keys after DeleteUser", keys, nil)
	_, err = s.Value(ctx, alice, "vcard")
	wantErr(t, "Value", err, storage.ErrNotFound)
	count(t, mam, alice, "mam after DeleteUser", storage.ArchiveQuery{}, 0)
	count(t, offline, alice, "offline after DeleteUser", storage.ArchiveQuery{}, 0)
	has, err := mam.HasOrigin(ctx, alice, bob, fixture()[0].OriginID)
	must(t, "HasOrigin", err)
	if has {
		t.Errorf("HasOrigin after DeleteUser = true")
	}

	nodes, err := s.Nodes(ctx, alice)
	must(t, "Nodes", err)
	if len(nodes) != 0 {
		t.Errorf("pubsub nodes after DeleteUser: %+v", nodes)
	}

	// Bob keeps everything.
	got, err := s.Credentials(ctx, bob)
	must(t, "Credentials of the other account", err)
	sameCreds(t, "other account", got, creds(1))
	items, _, err = s.Roster(ctx, bob)
	must(t, "Roster", err)
	if len(items) != 1 {
		t.Errorf("other account's roster: %+v", items)
	}
	keys, err = s.Keys(ctx, bob, "")
	must(t, "Keys", err)
	sameStrings(t, "other account's keys", keys, []string{"private/x", "vcard"})
	count(t, mam, bob, "other account's mam", storage.ArchiveQuery{}, 10)
	count(t, offline, bob, "other account's offline", storage.ArchiveQuery{}, 1)
	nodes, err = s.Nodes(ctx, bob)
	must(t, "Nodes", err)
	if len(nodes) != 1 {
		t.Errorf("other account's pubsub nodes: %+v", nodes)
	}
	names, err := s.ListUsers(ctx, "", 0)
	must(t, "ListUsers", err)
	sameStrings(t, "ListUsers after DeleteUser", names, []string{bob})

	// A new account of the same name starts empty, and its roster versions never repeat the old account's:
	// a client that cached the old roster at some version must not take the new roster for it (XEP-0237).
	must(t, "CreateUser again", s.CreateUser(ctx, alice, nil))
	count(t, mam, alice, "mam of the new account", storage.ArchiveQuery{}, 0)
	ver, err := s.PutRosterItem(ctx, alice, storage.RosterItem{JID: carol, Subscription: storage.SubNone})
	must(t, "PutRosterItem", err)
	if ver <= verBefore {
		t.Errorf("roster version of the new account = %d, not above the old account's %d", ver, verBefore)
	}
}

// testLifecycle checks Ping and Close.
func testLifecycle(t *testing.T, open func(t *testing.T) storage.Store) {
	s := open(t)
	ctx := t.Context()
	must(t, "Ping", s.Ping(ctx))
	a := s.Archive("mam")
	must(t, "Append", a.Append(ctx, alice, msg("1", bob, base)))
	must(t, "Close", s.Close())
	if err := s.Ping(ctx); err == nil {
		t.Errorf("Ping after Close = nil, want an error")
	}
	if err := a.Append(ctx, alice, msg("2", bob, base)); err == nil {
		t.Errorf("Append after Close = nil, want an error")
	}
}
