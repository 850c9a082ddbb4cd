package pg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"parley.im/parley/storage"
	"parley.im/parley/storage/storagetest"
)

// testDSN returns the PostgreSQL the tests may use (PARLEY_TEST_PG_DSN, which scripts/services.sh start
// prints). Without it the test is skipped, or fails when PARLEY_REQUIRE_SERVICES=1 (CI).
func testDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("PARLEY_TEST_PG_DSN")
	if dsn == "" {
		const reason = "PARLEY_TEST_PG_DSN not set: PostgreSQL tests skipped"
		if os.Getenv("PARLEY_REQUIRE_SERVICES") == "1" {
			tb.Fatal(reason)
		}
		tb.Skip(reason)
	}
	return dsn
}

// withSearchPath returns dsn with search_path set to schema, in either DSN syntax.
func withSearchPath(tb testing.TB, dsn, schema string) string {
	tb.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			tb.Fatalf("PARLEY_TEST_PG_DSN: %v", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// openSchema opens a store in a new, uniquely named schema, dropped when the test ends.
func openSchema(tb testing.TB) *Store {
	tb.Helper()
	dsn := testDSN(tb)
	ctx := tb.Context()
	var rnd [6]byte
	rand.Read(rnd[:])
	schema := "parley_test_" + hex.EncodeToString(rnd[:])
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("connecting to PARLEY_TEST_PG_DSN: %v", err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, dsn)
		if err != nil {
			tb.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	s, err := Open(ctx, withSearchPath(tb, dsn, schema))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	testDSN(t)
	storagetest.Run(t, func(t *testing.T) storage.Store { return openSchema(t) })
}

func BenchmarkArchiveAppend(b *testing.B) {
	storagetest.BenchmarkArchiveAppend(b, func(b *testing.B) storage.Store { return openSchema(b) })
}

func TestWithSearchPath(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/parley_test", "postgres://postgres@127.0.0.1:5432/parley_test?search_path=s1"},
		{"postgres://u@h/db?sslmode=disable", "postgres://u@h/db?search_path=s1&sslmode=disable"},
		{"host=127.0.0.1 user=postgres dbname=parley_test", "host=127.0.0.1 user=postgres dbname=parley_test search_path=s1"},
	} {
		if got := withSearchPath(t, c.in, "s1"); got != c.want {
			t.Errorf("withSearchPath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMigrate(t *testing.T) {
	s := openSchema(t)
	defer s.Close()
	ctx := t.Context()
	applied, err := s.Migrate(ctx)
	if err != nil || len(applied) != 0 {
		t.Errorf("Migrate after Open = %q, %v; want nothing to do", applied, err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations WHERE version = '0001_init'").Scan(&n); err != nil || n != 1 {
		t.Errorf("schema_migrations has 0001_init %d times (%v), want once", n, err)
	}
	// The tables are in the test's schema, not in public.
	var schema string
	if err := s.pool.QueryRow(ctx, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'archive_items' AND table_schema = current_schema()").Scan(&schema); err != nil || !strings.HasPrefix(schema, "parley_test_") {
		t.Errorf("archive_items in schema %q (%v), want the test's own", schema, err)
	}
	if _, err := s.pool.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ('9999_future')"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Migrate(ctx); err == nil {
		t.Errorf("Migrate of a database with an unknown migration succeeded")
	}
}

// TestGroupCommit holds the archive table locked while many Append calls queue, and checks that the
// committer then commits them together rather than one by one.
func TestGroupCommit(t *testing.T) {
	const callers = 64
	s := openSchema(t)
	defer s.Close()
	ctx := t.Context()
	lock, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, "LOCK TABLE archive_items IN EXCLUSIVE MODE"); err != nil {
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
	time.Sleep(300 * time.Millisecond) // let every caller reach the committer's queue
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
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
	// Typically 2; a loaded machine may let a few callers arrive late, but one by one would be 64.
	if commits > callers/4 {
		t.Errorf("%d calls took %d commits, want them batched", callers, commits)
	}
	t.Logf("%d calls in %d commits", batched, commits)
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", false},
		{"a", "b", true},
		{"pep/", "pep0", true},
		{"\u00e9", "\u00ea", true},
		{"a\U0010FFFF", "b", true},
		{"\U0010FFFF", "", false},
		{"\ud7ff", "\ue000", true},
	} {
		got, ok := prefixEnd(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("prefixEnd(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
