package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"parley.im/parley/storage"
	"parley.im/parley/storage/storagetest"
)

// openTemp opens a store in a new file under the test's temporary directory.
func openTemp(tb testing.TB) *Store {
	tb.Helper()
	s, err := Open(tb.Context(), filepath.Join(tb.TempDir(), "parley.db"))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return openTemp(t) })
}

func BenchmarkArchiveAppend(b *testing.B) {
	storagetest.BenchmarkArchiveAppend(b, func(b *testing.B) storage.Store { return openTemp(b) })
}

func TestOpenSettings(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := t.Context()
	for _, c := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", fmt.Sprint(busyTimeout.Milliseconds())},
	} {
		var got string
		if err := s.w.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("writer: PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
	if _, err := s.r.ExecContext(ctx, "INSERT INTO kv (owner, key, value) VALUES ('a', 'b', x'00')"); err == nil {
		t.Errorf("a reader connection accepted a write")
	}
	if st := s.w.Stats(); st.MaxOpenConnections != 1 {
		t.Errorf("writer pool allows %d connections, want 1", st.MaxOpenConnections)
	}
}

func TestOpenRefusesPaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "a?b.db")} {
		if s, err := Open(t.Context(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

func TestMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parley.db")
	ctx := t.Context()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := s.Migrate(ctx)
	if err != nil || len(applied) != 0 {
		t.Errorf("Migrate after Open = %q, %v; want nothing to do", applied, err)
	}
	var versions []string
	rows, err := s.r.QueryContext(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	rows.Close()
	if !slices.Contains(versions, "0001_init") {
		t.Errorf("schema_migrations = %q, want 0001_init in it", versions)
	}
	if err := s.PutValue(ctx, "alice@localhost", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Archive("mam").Append(ctx, "alice@localhost", storage.ArchiveItem{ID: "1", Time: time.Now(),
		Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening keeps the data and applies nothing.
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Value(ctx, "alice@localhost", "k"); err != nil || string(v) != "v" {
		t.Errorf("Value after reopening = %q, %v", v, err)
	}
	if n, err := s.Archive("mam").Count(ctx, "alice@localhost", storage.ArchiveQuery{}); err != nil || n != 1 {
		t.Errorf("Count after reopening = %d, %v", n, err)
	}

	// A database migrated by a newer binary is refused.
	if _, err := s.w.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES ('9999_future', 0)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(ctx, path); err == nil {
		s.Close()
		t.Errorf("Open of a database with an unknown migration succeeded")
	}
}

// TestGroupCommit holds the writer busy while many Append calls queue, and checks that the committer then
// commits them together rather than one by one.
func TestGroupCommit(t *testing.T) {
	const callers = 64
	s := openTemp(t)
	defer s.Close()
	ctx := t.Context()

	// Take the only writer connection, so that the committer's first batch blocks.
	conn, err := s.w.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := s.Archive("mam")
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() {
			errs[i] = a.Append(ctx, "alice@localhost", storage.ArchiveItem{ID: fmt.Sprint(i), Time: time.Now(),
				Data: []byte("x")})
		})
	}
	time.Sleep(200 * time.Millisecond) // let every caller reach the committer's queue
	conn.Close()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if n, err := a.Count(ctx, "alice@localhost", storage.ArchiveQuery{}); err != nil || n != callers {
		t.Errorf("Count = %d, %v; want %d", n, err, callers)
	}
	commits, batched := s.commit.Stats()
	if batched != callers {
		t.Errorf("committer carried %d calls, want %d", batched, callers)
	}
	// The first batch took one call before it blocked; the rest were waiting when it finished.
	// Typically 2; a loaded machine may let a few callers arrive late, but one by one would be 64.
	if commits > callers/4 {
		t.Errorf("%d calls took %d commits, want them batched", callers, commits)
	}
	t.Logf("%d calls in %d commits", batched, commits)
}

// TestCloseWithWaitingAppends checks that Close answers every Append: committed or failed, none left
// blocked.
func TestCloseWithWaitingAppends(t *testing.T) {
	s := openTemp(t)
	a := s.Archive("mam")
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			_ = a.Append(context.Background(), "alice@localhost", storage.ArchiveItem{ID: fmt.Sprint(i),
				Time: time.Now(), Data: []byte("x")})
		})
	}
	time.Sleep(10 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Append calls still blocked after Close")
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", false},
		{"a", "b", true},
		{"pep/", "pep0", true},
		{"a\xff", "b", true},
		{"a\xfe", "a\xff", true},
		{"\xff\xff", "", false},
		{"\u00e9", "\xc3\xaa", true},
	} {
		got, ok := prefixEnd(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("prefixEnd(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
