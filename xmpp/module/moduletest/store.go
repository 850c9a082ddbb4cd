package moduletest

import (
	"path/filepath"
	"testing"

	"parley.im/parley/storage"
	"parley.im/parley/storage/sqlite"
)

// Store opens an empty SQLite store (the embedded driver, the one every server starts with) in the test's
// temporary directory and closes it when the test ends. Modules get from it the narrow interface they take:
// it is a storage.Roster, storage.KV and storage.Users, and Store(t).Archive("offline") an archive.
//
// This is a real driver rather than an in-memory fake so that module tests run against the behaviour the
// storage contract suite (storage/storagetest) pins down, paging and conflicts included.
func Store(t testing.TB) storage.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "moduletest.db"))
	if err != nil {
		t.Fatalf("moduletest: opening the store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("moduletest: closing the store: %v", err)
		}
	})
	return s
}
