// Package storagetest is the contract suite that every storage driver passes.
//
// A driver's test file calls Run with a function that opens a fresh, empty store:
//
//	func TestStore(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store { return openTempStore(t) })
//	}
//
// The suite pins down what storage.go leaves to prose, so that modules can rely on the same behaviour from
// every driver:
//
//   - Owner names, user names and keys are compared and ordered bytewise (as Go compares strings), whatever
//     the database's collation.
//   - ListUsers with limit <= 0 returns every name after after, like ArchiveQuery.Limit == 0.
//   - Times come back equal (time.Time.Equal) to what was stored, at microsecond precision; the suite only
//     stores whole microseconds.
//   - A roster version is never handed out twice for the same owner, not even after DeleteUser and a new
//     account with the same name (XEP-0237 clients cache rosters by version).
//   - Append of an id that the owner's archive already holds, or of one id twice in one call, fails with
//     ErrConflict and stores none of that call's items; other callers batched with it are not affected.
//   - ArchiveQuery's paging fields are AfterID, BeforeID, Limit and Last (XEP-0059 after, before and max);
//     Count ignores all four, so an unknown AfterID is not an error there.
//   - AfterID and BeforeID must name an item of this owner in this archive, but the item need not match the
//     query's filters.
//   - HasOrigin never matches an empty origin id.
//   - DeleteBefore works on one archive (the one it was called on) but on all owners of it.
//   - After Close, Ping and Append fail instead of blocking.
//   - Archives are storage.Queued: appends to several archives and owners of one store can be committed as one
//     unit (storage.Group), stored whole or not at all.
//   - PubSub items come back in publish order, oldest first; republishing an id makes that item the newest.
//     Publish and ConfigureNode return the ids they trimmed, oldest first. A node with MaxItems 0 ("max")
//     holds PubSubLimits.MaxItems items and then refuses new ids with a *LimitError rather than trimming;
//     replacing an existing id still succeeds. Item payloads come back byte for byte.
package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"parley.im/parley/storage"
)

// Run runs the contract suite against the driver behind open. open must return a fresh, empty store on every
// call and may register cleanups on t; Run closes each store when its subtest ends, before open's cleanups
// run.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Helper()
	t.Run("Users", func(t *testing.T) { testUsers(t, open) })
	t.Run("Roster", func(t *testing.T) { testRoster(t, open) })
	t.Run("KV", func(t *testing.T) { testKV(t, open) })
	t.Run("Archive", func(t *testing.T) { testArchive(t, open) })
	t.Run("Rooms", func(t *testing.T) { testRooms(t, open) })
	t.Run("PubSub", func(t *testing.T) { testPubSub(t, open) })
	t.Run("DeleteUserCascades", func(t *testing.T) { testDeleteUserCascades(t, open) })
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, open) })
	t.Run("DefectMessageCopiesCommitTogether", func(t *testing.T) { testMessageCopiesCommitTogether(t, open) })
}

// fresh opens a store for one subtest and closes it when the subtest ends.
func fresh(t *testing.T, open func(t *testing.T) storage.Store) storage.Store {
	t.Helper()
	s := open(t)
	if s == nil {
		t.Fatal("open returned a nil store")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// base is the suite's reference time; whole seconds, so it survives every driver's precision.
var base = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// wantErr fails the test unless err matches target with errors.Is.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: err = %v, want %v", what, err, target)
	}
}

// must fails the test now if err is not nil.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// sameStrings fails the test unless got and want hold the same strings in the same order (nil equals empty).
func sameStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// sameItems fails the test unless got and want are the same items, field by field, in the same order.
func sameItems(t *testing.T, what string, got, want []storage.ArchiveItem) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d items %q, want %d items %q", what, len(got), itemIDs(got), len(want), itemIDs(want))
		return
	}
	for i := range want {
		if d := diffItem(got[i], want[i]); d != "" {
			t.Errorf("%s: item %d: %s", what, i, d)
		}
	}
}

// diffItem describes how got differs from want, or returns "".
func diffItem(got, want storage.ArchiveItem) string {
	switch {
	case got.ID != want.ID:
		return fmt.Sprintf("ID = %q, want %q", got.ID, want.ID)
	case got.With != want.With:
		return fmt.Sprintf("%s: With = %q, want %q", want.ID, got.With, want.With)
	case !got.Time.Equal(want.Time):
		return fmt.Sprintf("%s: Time = %v, want %v", want.ID, got.Time, want.Time)
	case got.OriginID != want.OriginID:
		return fmt.Sprintf("%s: OriginID = %q, want %q", want.ID, got.OriginID, want.OriginID)
	case !bytes.Equal(got.Data, want.Data):
		return fmt.Sprintf("%s: Data = %q, want %q", want.ID, got.Data, want.Data)
	}
	return ""
}

func itemIDs(items []storage.ArchiveItem) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	return ids
}
