package storagetest

import (
	"testing"
	"time"

	"parley.im/parley/storage"
)

// testMessageCopiesCommitTogether is the regression test of a retry acknowledged and never delivered offline
// (issue 19, item 9): the recipient's archive copy of a message committed and its offline copy did not, so a
// retry was taken for a duplicate. The copies of one message in several archives (and owners) are one unit:
// stored together, or, when one part conflicts, none of them.
func testMessageCopiesCommitTogether(t *testing.T, open func(t *testing.T) storage.Store) {
	s := fresh(t, open)
	mam, off := s.Archive("mam"), s.Archive("offline")
	for name, a := range map[string]storage.Archive{"mam": mam, "offline": off} {
		if _, ok := a.(storage.Queued); !ok {
			t.Fatalf("archive %s is not storage.Queued: its appends cannot join a unit", name)
		}
	}
	flush := func(g *storage.Group) error {
		t.Helper()
		ch := make(chan error, 1)
		if !g.Flush(func() func(error) { return func(err error) { ch <- err } }) {
			t.Fatal("Flush found nothing to commit")
		}
		select {
		case err := <-ch:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("unit not reported within 30s")
			return nil
		}
	}
	item := func(id, with string) []storage.ArchiveItem {
		return []storage.ArchiveItem{{ID: id, With: with, Time: base, OriginID: "o-" + id, Data: []byte("<message/>")}}
	}
	ids := func(a storage.Archive, owner string) []string { return itemIDs(all(t, a, owner)) }

	// One message: the sender's copy, the recipient's copy and the offline copy.
	var g storage.Group
	for _, p := range []struct {
		a            storage.Archive
		owner, id, w string
	}{{mam, "alice@x", "s1", "bob@x"}, {mam, "bob@x", "r1", "alice@x"}, {off, "bob@x", "q1", "alice@x"}} {
		if !g.Add(p.a, p.owner, item(p.id, p.w)) {
			t.Fatalf("Group.Add(%s) refused an archive of the same store", p.id)
		}
	}
	if !g.Pending() {
		t.Error("Pending = false after Add")
	}
	must(t, "flush of a three-part unit", flush(&g))
	if g.Pending() {
		t.Error("Pending = true after Flush")
	}
	sameStrings(t, "sender's archive", ids(mam, "alice@x"), []string{"s1"})
	sameStrings(t, "recipient's archive", ids(mam, "bob@x"), []string{"r1"})
	sameStrings(t, "offline queue", ids(off, "bob@x"), []string{"q1"})

	// The offline part conflicts: the archive parts, queued before it in the same unit, are not stored either.
	must(t, "append q2", off.Append(t.Context(), "bob@x", item("q2", "alice@x")...))
	g.Add(mam, "alice@x", item("s2", "bob@x"))
	g.Add(mam, "bob@x", item("r2", "alice@x"))
	g.Add(off, "bob@x", item("q2", "alice@x"))
	wantErr(t, "unit with a taken offline id", flush(&g), storage.ErrConflict)
	sameStrings(t, "sender's archive after the failed unit", ids(mam, "alice@x"), []string{"s1"})
	sameStrings(t, "recipient's archive after the failed unit", ids(mam, "bob@x"), []string{"r1"})
	sameStrings(t, "offline queue after the failed unit", ids(off, "bob@x"), []string{"q1", "q2"})

	// A failed unit does not fail the units committed with it, queued on both sides of it.
	results := make(chan error, 3)
	track := func() func(error) { return func(err error) { results <- err } }
	var a, b, c storage.Group
	a.Add(mam, "bob@x", item("r3", "alice@x"))
	a.Add(off, "bob@x", item("q3", "alice@x"))
	b.Add(mam, "bob@x", item("r4", "alice@x"))
	b.Add(off, "bob@x", item("q1", "alice@x")) // taken
	c.Add(mam, "bob@x", item("r5", "alice@x"))
	c.Add(off, "bob@x", item("q5", "alice@x"))
	a.Flush(track)
	b.Flush(track)
	c.Flush(track)
	var failed int
	for range 3 {
		if err := <-results; err != nil {
			wantErr(t, "unit in a batch", err, storage.ErrConflict)
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("%d units failed, want 1", failed)
	}
	sameStrings(t, "recipient's archive after three units", ids(mam, "bob@x"), []string{"r1", "r3", "r5"})
	sameStrings(t, "offline queue after three units", ids(off, "bob@x"), []string{"q1", "q2", "q3", "q5"})
}
