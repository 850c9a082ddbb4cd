package storage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"parley.im/parley/storage"
	"parley.im/parley/storage/sqlite"
)

// Queued appends of one owner keep their order, synchronous appends interleave in queue order, and every
// callback reports success.
func TestPipelineKeepsOrderPerOwner(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := storage.NewPipeline(st.Archive("mam"), 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := 0; i < 300; i++ {
		owner := fmt.Sprintf("u%d@x", i%3)
		wg.Add(1)
		p.AppendAsync(owner, []storage.ArchiveItem{{ID: fmt.Sprintf("%04d", i), Data: []byte("<message/>")}}, func(err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
			wg.Done()
		})
		if i == 150 {
			if err := p.Append(context.Background(), "u0@x", storage.ArchiveItem{ID: "sync", Data: []byte("<message/>")}); err != nil {
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
	items, _, err := st.Archive("mam").Query(context.Background(), "u0@x", storage.ArchiveQuery{})
	if err != nil {
		t.Fatal(err)
	}
	prev := ""
	sawSync := false
	for _, it := range items {
		if it.ID == "sync" {
			if prev != "0150" {
				t.Fatalf("synchronous append landed after %s, want right after 0150", prev)
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
