package storage_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"parley.im/parley/storage"
	"parley.im/parley/storage/sqlite"
)

// Queued appends of one owner keep their order, waited-for appends interleave in queue order, and every
// callback reports success.
func TestCommitterKeepsOrderPerOwner(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := st.Archive("mam")
	aa := a.(storage.AsyncAppender)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := 0; i < 300; i++ {
		owner := fmt.Sprintf("u%d@x", i%3)
		wg.Add(1)
		aa.AppendAsync(owner, []storage.ArchiveItem{{ID: fmt.Sprintf("%04d", i), Data: []byte("<message/>")}}, func(err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
			wg.Done()
		})
		if i == 150 {
			if err := a.Append(context.Background(), "u0@x", storage.ArchiveItem{ID: "sync", Data: []byte("<message/>")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	items, _, err := a.Query(context.Background(), "u0@x", storage.ArchiveQuery{})
	if err != nil {
		t.Fatal(err)
	}
	prev := ""
	sawSync := false
	for _, it := range items {
		if it.ID == "sync" {
			if prev != "0150" {
				t.Fatalf("waited-for append landed after %s, want right after 0150", prev)
			}
			sawSync = true
			continue
		}
		if it.ID <= prev && prev != "sync" {
			t.Fatalf("order broken: %s after %s", it.ID, prev)
		}
		prev = it.ID
	}
	if !sawSync || len(items) != 101 {
		t.Fatalf("got %d items (sync seen %v), want 101", len(items), sawSync)
	}
}

// blocking is a BatchAppender whose first batch waits for release, and that records every unit it stored.
type blocking struct {
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	stored  []string
}

func (b *blocking) AppendBatch(ctx context.Context, units [][]storage.ArchiveAppend, errs []error) error {
	b.once.Do(func() { <-b.release })
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range units {
		for _, p := range u {
			for _, it := range p.Items {
				b.stored = append(b.stored, p.Archive+"/"+it.ID)
			}
		}
	}
	return nil
}

func item(id string) storage.ArchiveAppend {
	return storage.ArchiveAppend{Archive: "mam", Owner: "alice@x", Items: []storage.ArchiveItem{{ID: id}}}
}

// TestCommitterSkipsCanceled checks that a waited-for unit whose context ended before its batch began stores
// nothing, that Sync waits for the units queued before it, and that Close fails what still waits.
func TestCommitterSkipsCanceled(t *testing.T) {
	b := &blocking{release: make(chan struct{})}
	c := storage.NewCommitter(b, nil)
	first := make(chan error, 1)
	c.AppendAsync([]storage.ArchiveAppend{item("first")}, func(err error) { first <- err })
	time.Sleep(20 * time.Millisecond) // the committer is now blocked in the first batch
	ctx, cancel := context.WithCancel(t.Context())
	gone := make(chan error, 1)
	go func() { gone <- c.Append(ctx, item("gone")) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled Append: %v, want context.Canceled", err)
	}
	queued := make(chan error, 1)
	c.AppendAsync([]storage.ArchiveAppend{item("queued")}, func(err error) { queued <- err })
	synced := make(chan error, 1)
	go func() { synced <- c.Sync(t.Context()) }()
	time.Sleep(20 * time.Millisecond)
	close(b.release)
	if err := <-synced; err != nil {
		t.Fatalf("Sync: %v", err)
	}
	select {
	case err := <-queued:
		if err != nil {
			t.Errorf("queued unit: %v", err)
		}
	default:
		t.Error("Sync returned before the unit queued before it was reported")
	}
	if err := <-first; err != nil {
		t.Errorf("first unit: %v", err)
	}
	b.mu.Lock()
	got := fmt.Sprint(b.stored)
	b.mu.Unlock()
	if got != "[mam/first mam/queued]" {
		t.Errorf("stored %s, want [mam/first mam/queued]", got)
	}
	c.Close()
	if err := c.Append(t.Context(), item("late")); err == nil {
		t.Error("Append after Close succeeded")
	}
	late := make(chan error, 1)
	c.AppendAsync([]storage.ArchiveAppend{item("late")}, func(err error) { late <- err })
	if err := <-late; err == nil {
		t.Error("AppendAsync after Close reported success")
	}
}
