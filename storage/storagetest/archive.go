package storagetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"parley.im/parley/storage"
)

const (
	alice = "alice@localhost"
	bob   = "bob@localhost"
	carol = "carol@localhost"
)

// msg returns an archive item whose fields are all derived from id.
func msg(id, with string, at time.Time) storage.ArchiveItem {
	return storage.ArchiveItem{
		ID:       id,
		With:     with,
		Time:     at,
		OriginID: "origin-" + id,
		Data:     []byte("<message xmlns='jabber:client' id='" + id + "'><body>" + id + "</body></message>"),
	}
}

// fixture is the ten-item archive most query tests read. Ids are not in lexical order, so a driver that
// orders by id fails; items come in pairs with equal times, so one that orders by time alone may fail; even
// items are with bob, odd ones with carol.
func fixture() []storage.ArchiveItem {
	ids := []string{"m09", "m03", "m07", "m01", "m05", "m02", "m08", "m00", "m06", "m04"}
	items := make([]storage.ArchiveItem, len(ids))
	for i, id := range ids {
		with := bob
		if i%2 == 1 {
			with = carol
		}
		items[i] = msg(id, with, base.Add(time.Duration(i/2)*time.Minute))
	}
	return items
}

// pick returns the ids of items at the given indexes.
func pick(items []storage.ArchiveItem, idx ...int) []string {
	ids := make([]string, len(idx))
	for i, x := range idx {
		ids[i] = items[x].ID
	}
	return ids
}

// span returns the indexes from..to inclusive.
func span(from, to int) []int {
	var idx []int
	for i := from; i <= to; i++ {
		idx = append(idx, i)
	}
	return idx
}

// appendFixture stores the fixture for owner in three calls.
func appendFixture(t *testing.T, a storage.Archive, owner string) []storage.ArchiveItem {
	t.Helper()
	items := fixture()
	for _, part := range [][]storage.ArchiveItem{items[:4], items[4:7], items[7:]} {
		must(t, "Append", a.Append(t.Context(), owner, part...))
	}
	return items
}

// page queries and checks ids and complete.
func page(t *testing.T, a storage.Archive, owner, what string, q storage.ArchiveQuery, want []string,
	wantComplete bool) {
	t.Helper()
	items, complete, err := a.Query(t.Context(), owner, q)
	if err != nil {
		t.Errorf("%s: Query: %v", what, err)
		return
	}
	sameStrings(t, what, itemIDs(items), want)
	if complete != wantComplete {
		t.Errorf("%s: complete = %v, want %v", what, complete, wantComplete)
	}
}

// count checks Count.
func count(t *testing.T, a storage.Archive, owner, what string, q storage.ArchiveQuery, want int) {
	t.Helper()
	n, err := a.Count(t.Context(), owner, q)
	if err != nil {
		t.Errorf("%s: Count: %v", what, err)
		return
	}
	if n != want {
		t.Errorf("%s: Count = %d, want %d", what, n, want)
	}
}

// all returns every item of owner's archive.
func all(t *testing.T, a storage.Archive, owner string) []storage.ArchiveItem {
	t.Helper()
	items, complete, err := a.Query(t.Context(), owner, storage.ArchiveQuery{})
	must(t, "Query", err)
	if !complete {
		t.Errorf("Query without a limit: complete = false")
	}
	return items
}

func testArchive(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("RoundTrip", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		a := s.Archive("mam")
		zone := time.FixedZone("UTC+05:30", 5*3600+1800)
		items := []storage.ArchiveItem{
			{ID: "1", With: bob, Time: base.Add(123456 * time.Microsecond), OriginID: "o1",
				Data: []byte("<message>\x00\xff binary \xfe</message>")},
			{ID: "2", With: "room@conference.localhost", Time: time.Date(2031, 12, 31, 23, 59, 59, 999999000, zone),
				Data: []byte("<message>\u00e9\U0001F600</message>")},
			{ID: "stanza-id with spaces/and'quotes\"", With: "", Time: time.Date(1999, 1, 2, 3, 4, 5, 6000,
				time.UTC), OriginID: "", Data: []byte{}},
		}
		must(t, "Append", a.Append(ctx, alice, items...))
		sameItems(t, "Query", all(t, a, alice), items)
		got, _, err := a.Query(ctx, alice, storage.ArchiveQuery{IDs: []string{"2"}})
		must(t, "Query", err)
		sameItems(t, "Query by id", got, items[1:2])
	})

	t.Run("Empty", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		a := s.Archive("mam")
		page(t, a, alice, "empty archive", storage.ArchiveQuery{}, nil, true)
		page(t, a, alice, "empty archive, last 5", storage.ArchiveQuery{Limit: 5, Last: true}, nil, true)
		count(t, a, alice, "empty archive", storage.ArchiveQuery{}, 0)
		must(t, "Append of no items", a.Append(ctx, alice))
		count(t, a, alice, "after Append of no items", storage.ArchiveQuery{}, 0)
		must(t, "Delete in an empty archive", a.Delete(ctx, alice, "x"))
		must(t, "DeleteOwner in an empty archive", a.DeleteOwner(ctx, alice))
		n, err := a.DeleteBefore(ctx, base)
		must(t, "DeleteBefore in an empty archive", err)
		if n != 0 {
			t.Errorf("DeleteBefore in an empty archive = %d", n)
		}
		has, err := a.HasOrigin(ctx, alice, bob, "x")
		must(t, "HasOrigin", err)
		if has {
			t.Errorf("HasOrigin in an empty archive = true")
		}
	})

	t.Run("AppendOrder", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		a := s.Archive("offline")
		// Every item has the same time and ids run backwards: only the append order can order them.
		var want []storage.ArchiveItem
		for i := 30; i > 0; i-- {
			it := msg(fmt.Sprintf("id-%02d", i), bob, base)
			want = append(want, it)
			must(t, "Append", a.Append(ctx, alice, it))
		}
		var group []storage.ArchiveItem
		for _, id := range []string{"z", "a", "m", "b"} {
			group = append(group, msg(id, carol, base))
		}
		must(t, "Append of several items", a.Append(ctx, alice, group...))
		want = append(want, group...)
		sameItems(t, "Query", all(t, a, alice), want)

		// Paging backwards sees the same order.
		var back []storage.ArchiveItem
		q := storage.ArchiveQuery{Limit: 7, Last: true}
		for range len(want) {
			items, complete, err := a.Query(ctx, alice, q)
			must(t, "Query", err)
			back = append(slices.Clone(items), back...)
			if complete || len(items) == 0 {
				break
			}
			q.BeforeID = items[0].ID
		}
		sameItems(t, "pages of 7 from the end", back, want)
	})

	t.Run("Filters", func(t *testing.T) {
		s := fresh(t, open)
		a := s.Archive("mam")
		it := appendFixture(t, a, alice)
		// Noise: the same ids for another owner and in another archive.
		must(t, "Append", a.Append(t.Context(), bob, fixture()...))
		must(t, "Append", s.Archive("muc").Append(t.Context(), alice, fixture()[:5]...))

		for _, c := range []struct {
			what string
			q    storage.ArchiveQuery
			want []int
		}{
			{"no filter", storage.ArchiveQuery{}, span(0, 9)},
			{"with bob", storage.ArchiveQuery{With: bob}, []int{0, 2, 4, 6, 8}},
			{"with carol", storage.ArchiveQuery{With: carol}, []int{1, 3, 5, 7, 9}},
			{"with nobody", storage.ArchiveQuery{With: "nobody@localhost"}, nil},
			{"start inclusive", storage.ArchiveQuery{Start: base.Add(2 * time.Minute)}, span(4, 9)},
			{"start between items", storage.ArchiveQuery{Start: base.Add(90 * time.Second)}, span(4, 9)},
			{"start after all", storage.ArchiveQuery{Start: base.Add(time.Hour)}, nil},
			{"end inclusive", storage.ArchiveQuery{End: base.Add(2 * time.Minute)}, span(0, 5)},
			{"end between items", storage.ArchiveQuery{End: base.Add(150 * time.Second)}, span(0, 5)},
			{"end before all", storage.ArchiveQuery{End: base.Add(-time.Second)}, nil},
			{"start and end", storage.ArchiveQuery{Start: base.Add(time.Minute), End: base.Add(3 * time.Minute)},
				span(2, 7)},
			{"start equals end", storage.ArchiveQuery{Start: base.Add(4 * time.Minute),
				End: base.Add(4 * time.Minute)}, []int{8, 9}},
			{"start in another zone", storage.ArchiveQuery{
				Start: base.Add(3 * time.Minute).In(time.FixedZone("UTC-8", -8*3600))}, span(6, 9)},
			{"with and start", storage.ArchiveQuery{With: carol, Start: base.Add(time.Minute)}, []int{3, 5, 7, 9}},
			{"ids in append order", storage.ArchiveQuery{IDs: pick(it, 7, 2, 5)}, []int{2, 5, 7}},
			{"ids with unknown ones", storage.ArchiveQuery{IDs: []string{"nope", it[3].ID, "m99"}}, []int{3}},
			{"ids none known", storage.ArchiveQuery{IDs: []string{"nope"}}, nil},
			{"ids and with", storage.ArchiveQuery{IDs: pick(it, 1, 2, 3, 4), With: bob}, []int{2, 4}},
			{"ids and end", storage.ArchiveQuery{IDs: pick(it, 1, 2, 3, 4), End: base.Add(time.Minute)},
				[]int{1, 2, 3}},
		} {
			page(t, a, alice, c.what, c.q, pick(it, c.want...), true)
			count(t, a, alice, c.what, c.q, len(c.want))
		}
	})

	t.Run("PagingForward", func(t *testing.T) {
		s := fresh(t, open)
		a := s.Archive("mam")
		it := appendFixture(t, a, alice)
		page(t, a, alice, "first 3", storage.ArchiveQuery{Limit: 3}, pick(it, 0, 1, 2), false)
		page(t, a, alice, "3 after #2", storage.ArchiveQuery{Limit: 3, AfterID: it[2].ID}, pick(it, 3, 4, 5), false)
		page(t, a, alice, "3 after #5", storage.ArchiveQuery{Limit: 3, AfterID: it[5].ID}, pick(it, 6, 7, 8), false)
		page(t, a, alice, "3 after #8", storage.ArchiveQuery{Limit: 3, AfterID: it[8].ID}, pick(it, 9), true)
		page(t, a, alice, "after the last", storage.ArchiveQuery{Limit: 3, AfterID: it[9].ID}, nil, true)
		// A page that ends exactly at the end of the selection is complete.
		page(t, a, alice, "first 5", storage.ArchiveQuery{Limit: 5}, pick(it, span(0, 4)...), false)
		page(t, a, alice, "5 after #4", storage.ArchiveQuery{Limit: 5, AfterID: it[4].ID}, pick(it, span(5, 9)...),
			true)
		page(t, a, alice, "limit = size", storage.ArchiveQuery{Limit: 10}, pick(it, span(0, 9)...), true)
		page(t, a, alice, "limit > size", storage.ArchiveQuery{Limit: 11}, pick(it, span(0, 9)...), true)
		page(t, a, alice, "no limit after #6", storage.ArchiveQuery{AfterID: it[6].ID}, pick(it, 7, 8, 9), true)
		page(t, a, alice, "limit 1", storage.ArchiveQuery{Limit: 1}, pick(it, 0), false)

		// Paging inside a filter; the after item itself need not match it.
		page(t, a, alice, "bob, first 2", storage.ArchiveQuery{With: bob, Limit: 2}, pick(it, 0, 2), false)
		page(t, a, alice, "bob, 2 after #2", storage.ArchiveQuery{With: bob, Limit: 2, AfterID: it[2].ID},
			pick(it, 4, 6), false)
		page(t, a, alice, "bob, 2 after #6", storage.ArchiveQuery{With: bob, Limit: 2, AfterID: it[6].ID},
			pick(it, 8), true)
		page(t, a, alice, "bob after carol's #3", storage.ArchiveQuery{With: bob, AfterID: it[3].ID},
			pick(it, 4, 6, 8), true)
		page(t, a, alice, "bob, 3 after carol's #3", storage.ArchiveQuery{With: bob, Limit: 3, AfterID: it[3].ID},
			pick(it, 4, 6, 8), true)
		page(t, a, alice, "ids, first 2", storage.ArchiveQuery{IDs: pick(it, 1, 3, 5, 7), Limit: 2},
			pick(it, 1, 3), false)
		page(t, a, alice, "ids, 2 after #3", storage.ArchiveQuery{IDs: pick(it, 1, 3, 5, 7), Limit: 2,
			AfterID: it[3].ID}, pick(it, 5, 7), true)
		page(t, a, alice, "start, 2 after #1", storage.ArchiveQuery{Start: base.Add(2 * time.Minute), Limit: 2,
			AfterID: it[1].ID}, pick(it, 4, 5), false)
	})

	t.Run("PagingBackward", func(t *testing.T) {
		s := fresh(t, open)
		a := s.Archive("mam")
		it := appendFixture(t, a, alice)
		last := func(limit int, before string) storage.ArchiveQuery {
			return storage.ArchiveQuery{Limit: limit, Last: true, BeforeID: before}
		}
		page(t, a, alice, "last 3", last(3, ""), pick(it, 7, 8, 9), false)
		page(t, a, alice, "3 before #7", last(3, it[7].ID), pick(it, 4, 5, 6), false)
		page(t, a, alice, "3 before #4", last(3, it[4].ID), pick(it, 1, 2, 3), false)
		page(t, a, alice, "3 before #1", last(3, it[1].ID), pick(it, 0), true)
		page(t, a, alice, "before the first", last(3, it[0].ID), nil, true)
		page(t, a, alice, "last 5", last(5, ""), pick(it, span(5, 9)...), false)
		page(t, a, alice, "5 before #5", last(5, it[5].ID), pick(it, span(0, 4)...), true)
		page(t, a, alice, "last 10", last(10, ""), pick(it, span(0, 9)...), true)
		page(t, a, alice, "last, no limit", last(0, ""), pick(it, span(0, 9)...), true)
		page(t, a, alice, "last, no limit, before #3", last(0, it[3].ID), pick(it, 0, 1, 2), true)

		// BeforeID without Last takes the first items before it.
		page(t, a, alice, "first 2 before #6", storage.ArchiveQuery{Limit: 2, BeforeID: it[6].ID}, pick(it, 0, 1),
			false)
		page(t, a, alice, "all before #2", storage.ArchiveQuery{BeforeID: it[2].ID}, pick(it, 0, 1), true)

		q := last(2, "")
		q.With = carol
		page(t, a, alice, "carol, last 2", q, pick(it, 7, 9), false)
		q.BeforeID = it[7].ID
		page(t, a, alice, "carol, 2 before #7", q, pick(it, 3, 5), false)
		q.BeforeID = it[3].ID
		page(t, a, alice, "carol, 2 before #3", q, pick(it, 1), true)
		q.BeforeID = it[4].ID // bob's item
		page(t, a, alice, "carol, 2 before bob's #4", q, pick(it, 1, 3), true)

		q = last(4, "")
		q.Start = base.Add(2 * time.Minute)
		page(t, a, alice, "start, last 4", q, pick(it, 6, 7, 8, 9), false)
		q.BeforeID = it[6].ID
		page(t, a, alice, "start, 4 before #6", q, pick(it, 4, 5), true)
	})

	t.Run("PagingRange", func(t *testing.T) {
		s := fresh(t, open)
		a := s.Archive("mam")
		it := appendFixture(t, a, alice)
		r := storage.ArchiveQuery{AfterID: it[2].ID, BeforeID: it[7].ID}
		page(t, a, alice, "between #2 and #7", r, pick(it, 3, 4, 5, 6), true)
		r.Limit = 2
		page(t, a, alice, "first 2 between #2 and #7", r, pick(it, 3, 4), false)
		r.Last = true
		page(t, a, alice, "last 2 between #2 and #7", r, pick(it, 5, 6), false)
		r.Limit = 4
		page(t, a, alice, "last 4 between #2 and #7", r, pick(it, 3, 4, 5, 6), true)
		page(t, a, alice, "between neighbours", storage.ArchiveQuery{AfterID: it[4].ID, BeforeID: it[5].ID}, nil,
			true)
	})

	t.Run("UnknownPagingID", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		a := s.Archive("mam")
		it := appendFixture(t, a, alice)
		must(t, "Append", a.Append(ctx, bob, msg("bob-only", alice, base)))
		must(t, "Append", s.Archive("offline").Append(ctx, alice, msg("offline-only", bob, base)))
		for _, c := range []struct {
			what string
			q    storage.ArchiveQuery
		}{
			{"unknown AfterID", storage.ArchiveQuery{AfterID: "nope"}},
			{"unknown BeforeID", storage.ArchiveQuery{BeforeID: "nope", Last: true, Limit: 3}},
			{"AfterID of another owner", storage.ArchiveQuery{AfterID: "bob-only"}},
			{"BeforeID of another owner", storage.ArchiveQuery{BeforeID: "bob-only"}},
			{"AfterID of another archive", storage.ArchiveQuery{AfterID: "offline-only", Limit: 1}},
			{"known AfterID, unknown BeforeID", storage.ArchiveQuery{AfterID: it[1].ID, BeforeID: "nope"}},
		} {
			items, _, err := a.Query(ctx, alice, c.q)
			wantErr(t, c.what, err, storage.ErrNotFound)
			if len(items) != 0 {
				t.Errorf("%s: items %q returned with the error", c.what, itemIDs(items))
			}
		}
		// In another archive of an owner that has no such id, an empty archive is still not found.
		_, _, err := s.Archive("muc").Query(ctx, alice, storage.ArchiveQuery{AfterID: it[0].ID})
		wantErr(t, "AfterID in an empty archive", err, storage.ErrNotFound)
	})

	t.Run("Count", func(t *testing.T) {
		s := fresh(t, open)
		a := s.Archive("mam")
		it := appendFixture(t, a, alice)
		must(t, "Append", a.Append(t.Context(), bob, fixture()[:3]...))
		count(t, a, alice, "all", storage.ArchiveQuery{}, 10)
		count(t, a, bob, "other owner", storage.ArchiveQuery{}, 3)
		count(t, a, carol, "owner without items", storage.ArchiveQuery{}, 0)
		count(t, s.Archive("muc"), alice, "other archive", storage.ArchiveQuery{}, 0)
		// Paging fields do not change the count of the result set (RSM count).
		count(t, a, alice, "with a limit", storage.ArchiveQuery{Limit: 3}, 10)
		count(t, a, alice, "last, with a limit", storage.ArchiveQuery{Limit: 3, Last: true}, 10)
		count(t, a, alice, "after #5", storage.ArchiveQuery{AfterID: it[5].ID, Limit: 2}, 10)
		count(t, a, alice, "before #5", storage.ArchiveQuery{BeforeID: it[5].ID}, 10)
		count(t, a, alice, "unknown AfterID", storage.ArchiveQuery{AfterID: "nope"}, 10)
		count(t, a, alice, "bob after #5", storage.ArchiveQuery{With: bob, AfterID: it[5].ID, Limit: 1}, 5)
	})

	t.Run("Conflict", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		a := s.Archive("mam")
		must(t, "Append", a.Append(ctx, alice, msg("x1", bob, base), msg("x2", bob, base)))

		err := a.Append(ctx, alice, msg("new1", bob, base), msg("x2", carol, base), msg("new2", bob, base))
		wantErr(t, "Append of a stored id", err, storage.ErrConflict)
		err = a.Append(ctx, alice, msg("new3", bob, base), msg("new3", bob, base))
		wantErr(t, "Append of one id twice", err, storage.ErrConflict)
		sameStrings(t, "after the failed calls", itemIDs(all(t, a, alice)), []string{"x1", "x2"})

		// Ids are unique per archive and owner only.
		must(t, "Append of the same id for another owner", a.Append(ctx, bob, msg("x1", alice, base)))
		must(t, "Append of the same id in another archive", s.Archive("offline").Append(ctx, alice,
			msg("x1", bob, base)))
		must(t, "Append after a conflict", a.Append(ctx, alice, msg("new1", bob, base)))
		sameStrings(t, "at the end", itemIDs(all(t, a, alice)), []string{"x1", "x2", "new1"})
	})

	t.Run("CanceledAppend", func(t *testing.T) {
		s := fresh(t, open)
		a := s.Archive("mam")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := a.Append(ctx, alice, msg("x", bob, base))
		wantErr(t, "Append with a canceled context", err, context.Canceled)
		count(t, a, alice, "after a canceled Append", storage.ArchiveQuery{}, 0)
	})

	t.Run("Delete", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		a := s.Archive("mam")
		it := appendFixture(t, a, alice)
		must(t, "Append", a.Append(ctx, bob, fixture()...))
		must(t, "Append", s.Archive("offline").Append(ctx, alice, fixture()...))

		must(t, "Delete", a.Delete(ctx, alice, it[1].ID, "absent", it[4].ID, it[9].ID))
		must(t, "Delete of nothing", a.Delete(ctx, alice))
		want := pick(it, 0, 2, 3, 5, 6, 7, 8)
		sameStrings(t, "after Delete", itemIDs(all(t, a, alice)), want)
		count(t, a, alice, "after Delete", storage.ArchiveQuery{}, 7)
		count(t, a, bob, "other owner", storage.ArchiveQuery{}, 10)
		count(t, s.Archive("offline"), alice, "other archive", storage.ArchiveQuery{}, 10)
		_, _, err := a.Query(ctx, alice, storage.ArchiveQuery{AfterID: it[4].ID})
		wantErr(t, "AfterID of a deleted item", err, storage.ErrNotFound)
		page(t, a, alice, "after #3 once #4 is gone", storage.ArchiveQuery{AfterID: it[3].ID, Limit: 2},
			pick(it, 5, 6), false)
		// A deleted id can be appended again; it goes to the end.
		must(t, "Append of a deleted id", a.Append(ctx, alice, it[1]))
		sameStrings(t, "after re-append", itemIDs(all(t, a, alice)), append(want, it[1].ID))
	})

	t.Run("DeleteOwner", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		a := s.Archive("mam")
		appendFixture(t, a, alice)
		must(t, "Append", a.Append(ctx, bob, fixture()...))
		must(t, "Append", s.Archive("offline").Append(ctx, alice, fixture()...))
		must(t, "DeleteOwner", a.DeleteOwner(ctx, alice))
		count(t, a, alice, "after DeleteOwner", storage.ArchiveQuery{}, 0)
		page(t, a, alice, "after DeleteOwner", storage.ArchiveQuery{}, nil, true)
		count(t, a, bob, "other owner", storage.ArchiveQuery{}, 10)
		count(t, s.Archive("offline"), alice, "other archive", storage.ArchiveQuery{}, 10)
		must(t, "DeleteOwner of an owner without items", a.DeleteOwner(ctx, carol))
		must(t, "Append after DeleteOwner", a.Append(ctx, alice, fixture()[:2]...))
		sameStrings(t, "after DeleteOwner and Append", itemIDs(all(t, a, alice)), pick(fixture(), 0, 1))
	})

	t.Run("DeleteBefore", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		a := s.Archive("mam")
		must(t, "Append", a.Append(ctx, alice,
			msg("a-2h", bob, base.Add(-2*time.Hour)),
			msg("a-1us", bob, base.Add(-time.Microsecond)),
			msg("a0", bob, base),
			msg("a-1h", bob, base.Add(-time.Hour)), // out of time order: deletion goes by time, not position
			msg("a+1h", bob, base.Add(time.Hour)),
		))
		must(t, "Append", a.Append(ctx, bob, msg("b-30m", alice, base.Add(-30*time.Minute)),
			msg("b+1m", alice, base.Add(time.Minute))))
		must(t, "Append", s.Archive("offline").Append(ctx, alice, msg("o-5h", bob, base.Add(-5*time.Hour))))

		n, err := a.DeleteBefore(ctx, base)
		must(t, "DeleteBefore", err)
		if n != 4 {
			t.Errorf("DeleteBefore = %d, want 4", n)
		}
		sameStrings(t, "alice after DeleteBefore", itemIDs(all(t, a, alice)), []string{"a0", "a+1h"})
		sameStrings(t, "bob after DeleteBefore", itemIDs(all(t, a, bob)), []string{"b+1m"})
		count(t, s.Archive("offline"), alice, "other archive", storage.ArchiveQuery{}, 1)
		n, err = a.DeleteBefore(ctx, base)
		must(t, "DeleteBefore again", err)
		if n != 0 {
			t.Errorf("second DeleteBefore = %d, want 0", n)
		}

		// Enough items that a driver deleting in chunks needs several.
		big := s.Archive("muc")
		var many []storage.ArchiveItem
		for i := range 2500 {
			many = append(many, msg(fmt.Sprintf("old-%04d", i), alice, base.Add(-time.Duration(2500-i)*time.Second)))
		}
		must(t, "Append", big.Append(ctx, "room@conference.localhost", many...))
		must(t, "Append", big.Append(ctx, "room@conference.localhost", msg("new", alice, base)))
		must(t, "Append", big.Append(ctx, "other@conference.localhost", many[:700]...))
		n, err = big.DeleteBefore(ctx, base.Add(-500*time.Second))
		must(t, "DeleteBefore", err)
		if n != 2000+700 {
			t.Errorf("DeleteBefore of many = %d, want %d", n, 2000+700)
		}
		count(t, big, "room@conference.localhost", "after DeleteBefore of many", storage.ArchiveQuery{}, 501)
		n, err = big.DeleteBefore(ctx, base.Add(time.Second))
		must(t, "DeleteBefore", err)
		if n != 501 {
			t.Errorf("DeleteBefore of the rest = %d, want 501", n)
		}
		count(t, a, alice, "first archive untouched by the second", storage.ArchiveQuery{}, 2)
	})

	t.Run("HasOrigin", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		a := s.Archive("mam")
		must(t, "Append", a.Append(ctx, alice,
			storage.ArchiveItem{ID: "1", With: bob, Time: base, OriginID: "o1", Data: []byte("x")},
			storage.ArchiveItem{ID: "2", With: bob, Time: base, Data: []byte("no origin")},
			storage.ArchiveItem{ID: "3", With: carol, Time: base, OriginID: "o3", Data: []byte("x")},
		))
		must(t, "Append", s.Archive("offline").Append(ctx, alice,
			storage.ArchiveItem{ID: "9", With: bob, Time: base, OriginID: "o9", Data: []byte("x")}))
		for _, c := range []struct {
			owner, with, origin string
			want                bool
		}{
			{alice, bob, "o1", true},
			{alice, carol, "o3", true},
			{alice, carol, "o1", false},
			{alice, bob, "o3", false},
			{alice, bob, "O1", false},
			{bob, bob, "o1", false},
			{alice, bob, "", false},
			{alice, bob, "o9", false},
		} {
			has, err := a.HasOrigin(ctx, c.owner, c.with, c.origin)
			must(t, "HasOrigin", err)
			if has != c.want {
				t.Errorf("HasOrigin(%q, %q, %q) = %v, want %v", c.owner, c.with, c.origin, has, c.want)
			}
		}
		must(t, "Delete", a.Delete(ctx, alice, "1"))
		has, err := a.HasOrigin(ctx, alice, bob, "o1")
		must(t, "HasOrigin", err)
		if has {
			t.Errorf("HasOrigin after Delete = true")
		}
	})

	t.Run("IndependentArchives", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		mam, offline := s.Archive("mam"), s.Archive("offline")
		must(t, "Append", mam.Append(ctx, alice, msg("1", bob, base), msg("2", bob, base)))
		must(t, "Append", offline.Append(ctx, alice, msg("2", carol, base), msg("3", carol, base)))
		sameItems(t, "mam", all(t, mam, alice), []storage.ArchiveItem{msg("1", bob, base), msg("2", bob, base)})
		sameItems(t, "offline", all(t, offline, alice),
			[]storage.ArchiveItem{msg("2", carol, base), msg("3", carol, base)})
		// Opening an archive again gives the same data.
		sameStrings(t, "mam opened again", itemIDs(all(t, s.Archive("mam"), alice)), []string{"1", "2"})
		must(t, "Delete", offline.Delete(ctx, alice, "2"))
		sameStrings(t, "mam after a delete in offline", itemIDs(all(t, mam, alice)), []string{"1", "2"})
		must(t, "DeleteOwner", mam.DeleteOwner(ctx, alice))
		sameStrings(t, "offline after DeleteOwner in mam", itemIDs(all(t, offline, alice)), []string{"3"})
	})

	t.Run("ConcurrentAppend", func(t *testing.T) { testConcurrentAppend(t, open) })
	t.Run("ConcurrentConflict", func(t *testing.T) { testConcurrentConflict(t, open) })
}

// testConcurrentAppend appends from 8 goroutines at once, to two owners, single items and groups, all with the
// same time, and checks that nothing is lost or duplicated and that each owner's archive has one total order
// that respects every goroutine's own order.
func testConcurrentAppend(t *testing.T, open func(t *testing.T) storage.Store) {
	const workers, calls = 8, 40
	s := fresh(t, open)
	a := s.Archive("mam")
	owners := []string{alice, bob}
	var wg sync.WaitGroup
	errs := make(chan error, workers*calls)
	for w := range workers {
		wg.Go(func() {
			for c := range calls {
				n := 1
				if c%5 == 0 {
					n = 3
				}
				var items []storage.ArchiveItem
				for j := range n {
					items = append(items, msg(fmt.Sprintf("w%d-c%02d-%d", w, c, j), carol, base))
				}
				if err := a.Append(t.Context(), owners[(w+c)%2], items...); err != nil {
					errs <- fmt.Errorf("worker %d call %d: %w", w, c, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	for _, owner := range owners {
		// Expected ids per worker, in the worker's own order.
		want := map[int][]string{}
		total := 0
		for w := range workers {
			for c := range calls {
				if owners[(w+c)%2] != owner {
					continue
				}
				n := 1
				if c%5 == 0 {
					n = 3
				}
				for j := range n {
					want[w] = append(want[w], fmt.Sprintf("w%d-c%02d-%d", w, c, j))
					total++
				}
			}
		}
		got := itemIDs(all(t, a, owner))
		if len(got) != total {
			t.Errorf("%s: %d items, want %d", owner, len(got), total)
		}
		count(t, a, owner, owner, storage.ArchiveQuery{}, total)
		seen := map[string]bool{}
		perWorker := map[int][]string{}
		for _, id := range got {
			if seen[id] {
				t.Errorf("%s: id %s twice", owner, id)
			}
			seen[id] = true
			var w int
			if _, err := fmt.Sscanf(id, "w%d-", &w); err != nil {
				t.Fatalf("%s: unexpected id %q", owner, id)
			}
			perWorker[w] = append(perWorker[w], id)
		}
		for w := range workers {
			sameStrings(t, fmt.Sprintf("%s: worker %d's items in the archive's order", owner, w), perWorker[w], want[w])
		}

		// The order is total: paging forwards and backwards through it meets the same sequence.
		var fwd []string
		q := storage.ArchiveQuery{Limit: 17}
		for range total + 1 {
			items, complete, err := a.Query(t.Context(), owner, q)
			must(t, "Query", err)
			fwd = append(fwd, itemIDs(items)...)
			if complete || len(items) == 0 {
				break
			}
			q.AfterID = items[len(items)-1].ID
		}
		sameStrings(t, owner+": pages of 17 forwards", fwd, got)
		var back []string
		q = storage.ArchiveQuery{Limit: 13, Last: true}
		for range total + 1 {
			items, complete, err := a.Query(t.Context(), owner, q)
			must(t, "Query", err)
			back = append(itemIDs(items), back...)
			if complete || len(items) == 0 {
				break
			}
			q.BeforeID = items[0].ID
		}
		sameStrings(t, owner+": pages of 13 backwards", back, got)
	}
}

// testConcurrentConflict appends from 8 goroutines at once while half of them fail with ErrConflict: a failing
// call must not take the other calls of its commit batch down with it, nor leave any of its own items behind.
func testConcurrentConflict(t *testing.T, open func(t *testing.T) storage.Store) {
	const workers, rounds = 8, 25
	s := fresh(t, open)
	a := s.Archive("offline")
	must(t, "Append", a.Append(t.Context(), alice, msg("taken", bob, base)))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wantIDs []string
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				id := fmt.Sprintf("w%d-r%02d", w, r)
				if w%2 == 1 {
					err := a.Append(t.Context(), alice, msg(id, bob, base), msg("taken", bob, base))
					wantErr(t, fmt.Sprintf("worker %d round %d: Append of a taken id", w, r), err, storage.ErrConflict)
					continue
				}
				if err := a.Append(t.Context(), alice, msg(id, bob, base)); err != nil {
					t.Errorf("worker %d round %d: %v", w, r, err)
					continue
				}
				mu.Lock()
				wantIDs = append(wantIDs, id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	got := itemIDs(all(t, a, alice))
	slices.Sort(got)
	wantIDs = append(wantIDs, "taken")
	slices.Sort(wantIDs)
	sameStrings(t, "items after concurrent appends with conflicts", got, wantIDs)
}
