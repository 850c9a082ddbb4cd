// Package pg is Parley's production storage driver: every storage shape in PostgreSQL, through a pgx/v5
// connection pool.
//
// Tables are created in the first schema of the connection's search_path, so one database can hold several
// Parley installations (or test runs) side by side: set search_path in the DSN.
//
// Archive.Append calls do not write themselves: they queue for the store's storage.Committer, which takes every
// unit waiting at that moment into one transaction (AppendBatch), one INSERT per archive and owner sent
// together as a pgx.Batch, so N concurrent appends cost one round trip and one WAL flush instead of N. A unit
// whose id is taken fails with storage.ErrConflict and its rows are removed before the commit; the other units
// of its batch are not affected. An error of the transaction itself goes to every unit of the batch.
//
// Durability is PostgreSQL's: with the default synchronous_commit=on a commit returns once its WAL is
// flushed. Do not run Parley against a server with synchronous_commit=off or fsync=off if acknowledged
// messages matter.
//
// The schema lives in migrations/*.sql, embedded, applied in name order by Open under an advisory lock (so
// that nodes starting together do not race) and recorded in the schema_migrations table.
package pg

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"parley.im/parley/storage"
)

const (
	// deleteChunk is how many rows DeleteBefore removes per transaction, so that a large expiry does not
	// hold row locks (and a long transaction that holds back vacuum) for its whole duration.
	deleteChunk = 1000
	// migrationLock is the pg_advisory_xact_lock key that serializes migrations ("parley" in ASCII).
	migrationLock int64 = 0x7061726c6579
)

// errClosed is returned by calls on a closed Store.
var errClosed = errors.New("pg: store is closed")

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a storage.Store in a PostgreSQL database. Open it with Open; it is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool

	commit *storage.Committer // the group-commit loop every archive's appends go through

	closeOnce sync.Once
	closed    atomic.Bool
}

// Open connects to the database named by dsn (a libpq keyword/value string or a postgres:// URL; pool
// settings such as pool_max_conns and runtime parameters such as search_path may be given in it), applies
// pending migrations and starts the committer.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pg: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pg: %w", err)
	}
	s := &Store{pool: pool}
	if _, err := s.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	s.commit = storage.NewCommitter(s, errClosed)
	return s, nil
}

// Migrate applies the embedded migrations that the database has not recorded yet, in name order, each in
// its own transaction under an advisory lock, and returns the names (without ".sql") of those it applied.
// Open calls it; calling it again is harmless. It refuses a database that records a migration this binary
// does not know, which means a newer Parley has upgraded it.
func (s *Store) Migrate(ctx context.Context) (applied []string, err error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("pg: migrate: %w", err)
	}
	slices.Sort(files)
	known := map[string]bool{}
	for _, f := range files {
		known[strings.TrimSuffix(path.Base(f), ".sql")] = true
	}
	for _, f := range files {
		version := strings.TrimSuffix(path.Base(f), ".sql")
		body, err := migrations.ReadFile(f)
		if err != nil {
			return applied, fmt.Errorf("pg: migrate: %w", err)
		}
		ok, err := s.applyMigration(ctx, version, string(body), known)
		if err != nil {
			return applied, fmt.Errorf("pg: migrate %s: %w", version, err)
		}
		if ok {
			applied = append(applied, version)
		}
	}
	return applied, nil
}

// applyMigration runs one migration unless it is recorded already.
func (s *Store) applyMigration(ctx context.Context, version, body string, known map[string]bool) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
	)`); err != nil {
		return false, err
	}
	rows, err := tx.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return false, err
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, err
	}
	for _, v := range done {
		if !known[v] {
			return false, fmt.Errorf("the database has migration %q, unknown to this binary", v)
		}
	}
	if slices.Contains(done, version) {
		return false, nil
	}
	if _, err := tx.Exec(ctx, body); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", version); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pg: ping: %w", err)
	}
	return nil
}

// Close stops the committer, after the batch it is committing, and closes the pool. Append calls still
// waiting to be taken into a batch fail. Closing again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.commit.Close()
		s.pool.Close()
	})
	return nil
}

// nonNil returns b, or an empty slice for nil: pgx sends nil as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// begin starts a transaction unless the store is closed.
func (s *Store) begin(ctx context.Context) (pgx.Tx, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	return s.pool.Begin(ctx)
}

var _ storage.Store = (*Store)(nil)
