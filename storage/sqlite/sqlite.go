// Package sqlite is Parley's embedded storage driver: every storage shape in one SQLite database file, through
// modernc.org/sqlite (pure Go, no cgo), so that a server needs nothing installed.
//
// The database runs in WAL mode with synchronous=FULL. In WAL mode synchronous=NORMAL skips the fsync at
// commit and syncs only at checkpoints: a commit survives a crash of the process but may be lost with the
// machine (power loss, kernel panic). Parley acknowledges a message only after its commit (XEP-0198 acks,
// receipts), so that commit has to be on disk; FULL fsyncs the WAL at every commit, and group commit
// (below) makes one fsync serve many messages.
//
// SQLite has a single writer, so the Store has a single writer connection and a small pool of read-only
// connections; in WAL mode readers never wait for the writer. Archive.Append calls do not write themselves:
// they queue for the store's storage.Committer, which takes every unit waiting at that moment into one
// transaction (AppendBatch), so N concurrent appends cost one fsync instead of N. Each unit of more than one
// item is isolated by a savepoint within the batch, so a unit that fails with storage.ErrConflict does not
// fail the others; an error of the transaction itself (its commit, a full disk) goes to every unit of the
// batch.
//
// The schema lives in migrations/*.sql, embedded, applied in name order by Open and recorded in the
// schema_migrations table.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"parley.im/parley/storage"
)

const (
	// readers is the size of the read-only connection pool; on a small machine more connections only
	// add memory, reads are short.
	readers = 4
	// busyTimeout is how long a connection waits for a lock another process holds (a backup, a second
	// server by mistake) before it fails with SQLITE_BUSY.
	busyTimeout = 10 * time.Second
	// deleteChunk is how many rows DeleteBefore removes per transaction: each transaction holds the single
	// write lock, and appends (acknowledgements) wait behind it.
	deleteChunk = 1000
)

// errClosed is returned by calls on a closed Store.
// writerCacheKiB is the writer's page cache. Appends touch the table and five index b-trees at scattered
// owners; with SQLite's default 2 MiB, the writer re-read pages from the file on most commits (7% of the
// server's CPU in a chat load profile, docs/BENCHMARKS.md).
const writerCacheKiB = 64 << 10

// walCheckpointPages is how long the write-ahead log grows (in 4 KiB pages, so 32 MiB) before a commit copies
// it into the database file. A checkpoint writes each page once however many commits changed it; at
// SQLite's default of 1000 pages, checkpoints were a fifth of the server's CPU under chat load, because the
// same index pages were copied again and again.
const walCheckpointPages = 8000

var errClosed = errors.New("sqlite: store is closed")

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a storage.Store in one SQLite database file. Open it with Open; it is safe for concurrent use.
type Store struct {
	w *sql.DB // exactly one connection: the writer
	r *sql.DB // read-only connections

	commit *storage.Committer // the group-commit loop every archive's appends go through

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool

	// stmts caches prepared read statements by their text. Preparing (parsing) SQL cost more than running it for
	// the short lookups every login and presence broadcast makes: 12% of the server's CPU per login for the
	// credentials query alone, in a connect load profile.
	stmts sync.Map // string → *sql.Stmt
}

// Open opens (creating it if needed) the database file at path, applies pending migrations and starts the
// committer. path is a file system path; ":memory:" is refused, since the readers would each see their own
// empty database.
func Open(ctx context.Context, path string) (*Store, error) {
	switch {
	case path == "":
		return nil, errors.New("sqlite: empty database path")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return nil, fmt.Errorf("sqlite: %q: want a file system path", path)
	case strings.Contains(path, "?"):
		// The driver reads everything after '?' as connection parameters.
		return nil, fmt.Errorf("sqlite: %q: a path may not contain '?'", path)
	}
	ms := busyTimeout.Milliseconds()
	// _txlock=immediate: a write transaction takes the write lock at BEGIN, so it waits (busy_timeout) there
	// rather than failing with SQLITE_BUSY half-way when another process writes.
	w, err := sql.Open("sqlite", fmt.Sprintf("%s?_busy_timeout=%d&_foreign_keys=1&_journal_mode=WAL"+
		"&_synchronous=FULL&_txlock=immediate&_pragma=temp_store(memory)&_pragma=cache_size(%d)&_pragma=wal_autocheckpoint(%d)", path, ms,
		-writerCacheKiB, walCheckpointPages))
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w}
	if err := s.checkPragmas(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if _, err := s.Migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	// The journal mode is a property of the file, set by the writer above; readers only need to wait for
	// locks and to be unable to write by mistake.
	s.r, err = sql.Open("sqlite", fmt.Sprintf("%s?_busy_timeout=%d&_foreign_keys=1&_query_only=1", path, ms))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	s.r.SetMaxOpenConns(readers)
	s.r.SetMaxIdleConns(readers)
	if err := s.r.PingContext(ctx); err != nil {
		w.Close()
		s.r.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	s.commit = storage.NewCommitter(s, errClosed)
	return s, nil
}

// checkPragmas verifies that the writer runs with the settings durability depends on: a journal_mode
// request can quietly fail (for example on a file system without shared memory).
func (s *Store) checkPragmas(ctx context.Context) error {
	var mode string
	var syncMode, fk int
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if err := s.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&syncMode); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if err := s.w.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if !strings.EqualFold(mode, "wal") || syncMode != 2 || fk != 1 {
		return fmt.Errorf("sqlite: journal_mode=%s synchronous=%d foreign_keys=%d, want wal, 2 (FULL), 1", mode,
			syncMode, fk)
	}
	return nil
}

// Migrate applies the embedded migrations that the database has not recorded yet, in name order, each in
// its own transaction, and returns the names (without ".sql") of those it applied. Open calls it; calling
// it again is harmless. It refuses a database that records a migration this binary does not know, which
// means a newer Parley has upgraded it.
func (s *Store) Migrate(ctx context.Context) (applied []string, err error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    TEXT    NOT NULL PRIMARY KEY,
		applied_at INTEGER NOT NULL -- unix microseconds
	) WITHOUT ROWID`); err != nil {
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	slices.Sort(files)
	known := map[string]bool{}
	for _, f := range files {
		known[strings.TrimSuffix(path.Base(f), ".sql")] = true
	}
	rows, err := s.w.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	done := map[string]bool{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: migrate: %w", err)
		}
		if !known[v] {
			rows.Close()
			return nil, fmt.Errorf("sqlite: migrate: the database has migration %q, unknown to this binary", v)
		}
		done[v] = true
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	for _, f := range files {
		version := strings.TrimSuffix(path.Base(f), ".sql")
		if done[version] {
			continue
		}
		body, err := migrations.ReadFile(f)
		if err != nil {
			return applied, fmt.Errorf("sqlite: migrate: %w", err)
		}
		ok, err := s.applyMigration(ctx, version, string(body))
		if err != nil {
			return applied, fmt.Errorf("sqlite: migrate %s: %w", version, err)
		}
		if ok {
			applied = append(applied, version)
		}
	}
	return applied, nil
}

// applyMigration runs one migration unless another process applied it since Migrate looked.
func (s *Store) applyMigration(ctx context.Context, version, body string) (bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE version = ?",
		version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
		version, time.Now().UnixMicro()); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// Ping checks that the database answers a read.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close stops the committer, after the batch it is committing, and closes the database. Append calls still
// waiting to be taken into a batch fail. Closing again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.commit.Close()
		s.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
		s.closeErr = errors.Join(s.r.Close(), s.w.Close())
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", s.closeErr)
		}
	})
	return s.closeErr
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY constraint failure.
func isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// readTx begins a read-only transaction on a reader, for reads that must see one snapshot.
func (s *Store) readTx(ctx context.Context) (*sql.Tx, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	return s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
}

// writeTx begins a transaction on the writer.
func (s *Store) writeTx(ctx context.Context) (*sql.Tx, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	return s.w.BeginTx(ctx, nil)
}

// nonNil returns b, or an empty slice for nil: the driver binds nil as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

var _ storage.Store = (*Store)(nil)

// prepared returns the read statement q, prepared once for the readers (each connection prepares it on first
// use and keeps it). q must be a fixed text: a statement built from arguments would fill the cache.
func (s *Store) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.r.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if old, loaded := s.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return old.(*sql.Stmt), nil
	}
	return st, nil
}
