package storagetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"parley.im/parley/storage"
)

// sameRosterItem fails the test unless got equals want in every field, groups in order.
func sameRosterItem(t *testing.T, what string, got, want storage.RosterItem) {
	t.Helper()
	if len(got.Groups) == 0 && len(want.Groups) == 0 {
		got.Groups, want.Groups = nil, nil
	}
	if got.JID != want.JID || got.Name != want.Name || got.Subscription != want.Subscription ||
		got.AskOut != want.AskOut || got.PendingIn != want.PendingIn || got.PreApproved != want.PreApproved ||
		!slices.Equal(got.Groups, want.Groups) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// sameRoster fails the test unless got holds exactly want, in any order.
func sameRoster(t *testing.T, what string, got, want []storage.RosterItem) {
	t.Helper()
	byJID := func(a, b storage.RosterItem) int { return strings.Compare(a.JID, b.JID) }
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, byJID)
	slices.SortFunc(want, byJID)
	if len(got) != len(want) {
		t.Errorf("%s: got %d items %+v, want %d items %+v", what, len(got), got, len(want), want)
		return
	}
	for i := range want {
		sameRosterItem(t, fmt.Sprintf("%s: item %d", what, i), got[i], want[i])
	}
}

func testRoster(t *testing.T, open func(t *testing.T) storage.Store) {
	const alice = "alice@localhost"

	t.Run("Empty", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		items, ver, err := s.Roster(ctx, alice)
		must(t, "Roster", err)
		if len(items) != 0 || ver != 0 {
			t.Errorf("Roster of a new owner = %+v, version %d; want no items, version 0", items, ver)
		}
		_, err = s.RosterItem(ctx, alice, "bob@localhost")
		wantErr(t, "RosterItem", err, storage.ErrNotFound)
		_, err = s.DeleteRosterItem(ctx, alice, "bob@localhost")
		wantErr(t, "DeleteRosterItem", err, storage.ErrNotFound)
		_, ver, err = s.Roster(ctx, alice)
		must(t, "Roster", err)
		if ver != 0 {
			t.Errorf("version after a failed delete = %d, want 0", ver)
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		items := []storage.RosterItem{
			{JID: "all@localhost", Name: "Everything Set", Subscription: storage.SubBoth, AskOut: true, PendingIn: true,
				PreApproved: true, Groups: []string{"Friends", "Work", "Z\u00fcrich \U0001F600", ""}},
			{JID: "none@localhost", Subscription: storage.SubNone},
			{JID: "to@localhost", Name: "To", Subscription: storage.SubTo, AskOut: true, Groups: []string{"B", "A"}},
			{JID: "from@localhost", Name: "From", Subscription: storage.SubFrom, PendingIn: true},
			{JID: "pre@localhost", Subscription: storage.SubNone, PreApproved: true, Groups: []string{"only"}},
			{JID: "quote@localhost", Name: `O'Brien "the" [\]`, Subscription: storage.SubTo,
				Groups: []string{`a,b`, `{c}`, `"d"`, `NULL`}},
		}
		for _, it := range items {
			_, err := s.PutRosterItem(ctx, alice, it)
			must(t, "PutRosterItem "+it.JID, err)
		}
		for _, it := range items {
			got, err := s.RosterItem(ctx, alice, it.JID)
			must(t, "RosterItem "+it.JID, err)
			sameRosterItem(t, "RosterItem "+it.JID, got, it)
		}
		got, _, err := s.Roster(ctx, alice)
		must(t, "Roster", err)
		sameRoster(t, "Roster", got, items)

		// Another owner's roster is separate.
		other, ver, err := s.Roster(ctx, "bob@localhost")
		must(t, "Roster", err)
		if len(other) != 0 || ver != 0 {
			t.Errorf("Roster of another owner = %+v, version %d; want empty, 0", other, ver)
		}
		_, err = s.RosterItem(ctx, "bob@localhost", "all@localhost")
		wantErr(t, "RosterItem of another owner", err, storage.ErrNotFound)
	})

	t.Run("Replace", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		first := storage.RosterItem{JID: "bob@localhost", Name: "Bob", Subscription: storage.SubBoth, AskOut: true,
			PendingIn: true, PreApproved: true, Groups: []string{"A", "B", "C"}}
		second := storage.RosterItem{JID: "bob@localhost", Name: "", Subscription: storage.SubFrom,
			Groups: []string{"C"}}
		_, err := s.PutRosterItem(ctx, alice, first)
		must(t, "PutRosterItem", err)
		_, err = s.PutRosterItem(ctx, alice, second)
		must(t, "PutRosterItem", err)
		got, err := s.RosterItem(ctx, alice, "bob@localhost")
		must(t, "RosterItem", err)
		sameRosterItem(t, "replaced item", got, second)
		all, _, err := s.Roster(ctx, alice)
		must(t, "Roster", err)
		sameRoster(t, "Roster after replace", all, []storage.RosterItem{second})
		third := second
		third.Groups = nil
		_, err = s.PutRosterItem(ctx, alice, third)
		must(t, "PutRosterItem", err)
		got, err = s.RosterItem(ctx, alice, "bob@localhost")
		must(t, "RosterItem", err)
		sameRosterItem(t, "item with its groups removed", got, third)
	})

	t.Run("Versions", func(t *testing.T) {
		s := fresh(t, open)
		ctx := t.Context()
		var last int64
		step := func(what string, ver int64, err error) {
			t.Helper()
			must(t, what, err)
			if ver <= last {
				t.Errorf("%s: version %d, not above the previous %d", what, ver, last)
			}
			last = ver
			_, cur, err := s.Roster(ctx, alice)
			must(t, "Roster", err)
			if cur != ver {
				t.Errorf("%s: Roster version %d, want the returned %d", what, cur, ver)
			}
		}
		bob := storage.RosterItem{JID: "bob@localhost", Subscription: storage.SubNone}
		carol := storage.RosterItem{JID: "carol@localhost", Subscription: storage.SubTo}
		ver, err := s.PutRosterItem(ctx, alice, bob)
		step("put bob", ver, err)
		ver, err = s.PutRosterItem(ctx, alice, carol)
		step("put carol", ver, err)
		ver, err = s.PutRosterItem(ctx, alice, carol)
		step("put carol unchanged", ver, err)
		bob.Subscription = storage.SubBoth
		ver, err = s.PutRosterItem(ctx, alice, bob)
		step("update bob", ver, err)
		ver, err = s.DeleteRosterItem(ctx, alice, "bob@localhost")
		step("delete bob", ver, err)
		_, err = s.DeleteRosterItem(ctx, alice, "bob@localhost")
		wantErr(t, "delete bob again", err, storage.ErrNotFound)
		ver, err = s.DeleteRosterItem(ctx, alice, "carol@localhost")
		step("delete carol", ver, err)

		// The roster is empty now, but it has changed: its version stays.
		items, cur, err := s.Roster(ctx, alice)
		must(t, "Roster", err)
		if len(items) != 0 || cur != last {
			t.Errorf("emptied roster: %+v, version %d; want no items, version %d", items, cur, last)
		}

		// Another owner's changes leave this version alone.
		_, err = s.PutRosterItem(ctx, "dave@localhost", bob)
		must(t, "PutRosterItem for another owner", err)
		_, cur, err = s.Roster(ctx, alice)
		must(t, "Roster", err)
		if cur != last {
			t.Errorf("version after another owner's change = %d, want %d", cur, last)
		}
		ver, err = s.PutRosterItem(ctx, alice, bob)
		step("put bob again", ver, err)
	})

	t.Run("ConcurrentVersions", func(t *testing.T) {
		s := fresh(t, open)
		const workers, puts = 8, 25
		var mu sync.Mutex
		seen := map[int64]string{}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for p := range puts {
					what := fmt.Sprintf("worker %d put %d", w, p)
					// Most puts write rows of their own, so that only the version serializes them; every fifth
					// writes a row the others write too.
					jid := fmt.Sprintf("w%d-p%d@localhost", w, p)
					if p%5 == 0 {
						jid = "shared@localhost"
					}
					ver, err := s.PutRosterItem(t.Context(), alice, storage.RosterItem{JID: jid,
						Subscription: storage.SubNone})
					if err != nil {
						t.Errorf("%s: %v", what, err)
						continue
					}
					mu.Lock()
					if other, dup := seen[ver]; dup {
						t.Errorf("%s and %s both got version %d", what, other, ver)
					}
					seen[ver] = what
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		var maxVer int64
		for v := range seen {
			maxVer = max(maxVer, v)
		}
		items, cur, err := s.Roster(t.Context(), alice)
		must(t, "Roster", err)
		if cur != maxVer {
			t.Errorf("Roster version after concurrent puts = %d, want the largest returned, %d", cur, maxVer)
		}
		if want := workers*(puts-puts/5) + 1; len(items) != want {
			t.Errorf("Roster after concurrent puts has %d items, want %d", len(items), want)
		}
	})
}
