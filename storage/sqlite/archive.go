package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"parley.im/parley/storage"
)

// archive is one named archive of a Store. It is only a name: every archive lives in the archive_items
// table. Appends go through the store's storage.Committer, which calls AppendBatch.
type archive struct {
	storage.Appender
	s    *Store
	name string
}

// Archive opens the archive with the given name; it exists as soon as something is appended to it.
func (s *Store) Archive(name string) storage.Archive {
	return &archive{Appender: storage.Appender{Committer: s.commit, Name: name}, s: s, name: name}
}

// AppendBatch implements storage.BatchAppender: it inserts every unit in one transaction, each unit of more
// than one item inside its own savepoint so that a unit that conflicts is rolled back alone; its error goes
// to errs. The returned error is the transaction's, and concerns every unit.
func (s *Store) AppendBatch(ctx context.Context, units [][]storage.ArchiveAppend, errs []error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO archive_items (archive, owner, id, with_jid, ts, origin_id, data)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	defer ins.Close()
	// A unit of one item (almost every Append: one message in one archive) needs no savepoint: ON CONFLICT DO
	// NOTHING leaves nothing behind on a duplicate id, and no rows affected tells it apart. A savepoint costs a
	// sub-journal write of every page it touches, and was a tenth of the server's CPU in a chat load profile.
	var one *sql.Stmt
	for i, unit := range units {
		if len(unit) == 1 && len(unit[0].Items) == 1 {
			if one == nil {
				if one, err = tx.PrepareContext(ctx, `INSERT INTO archive_items (archive, owner, id, with_jid, ts, origin_id, data)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`); err != nil {
					return fmt.Errorf("sqlite: append: %w", err)
				}
				defer one.Close()
			}
			p, it := unit[0], unit[0].Items[0]
			res, err := one.ExecContext(ctx, p.Archive, p.Owner, it.ID, it.With, it.Time.UnixMicro(), it.OriginID,
				nonNil(it.Data))
			if err != nil {
				return fmt.Errorf("sqlite: append: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("sqlite: append: %w", err)
			} else if n == 0 {
				errs[i] = fmt.Errorf("sqlite: append to %s of %q: id %q: %w", p.Archive, p.Owner, it.ID,
					storage.ErrConflict)
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT append_unit"); err != nil {
			return fmt.Errorf("sqlite: append: %w", err)
		}
	unit:
		for _, p := range unit {
			for _, it := range p.Items {
				_, err := ins.ExecContext(ctx, p.Archive, p.Owner, it.ID, it.With, it.Time.UnixMicro(), it.OriginID,
					nonNil(it.Data))
				if err == nil {
					continue
				}
				if !isUnique(err) {
					return fmt.Errorf("sqlite: append: %w", err)
				}
				errs[i] = fmt.Errorf("sqlite: append to %s of %q: id %q: %w", p.Archive, p.Owner, it.ID,
					storage.ErrConflict)
				if _, err := tx.ExecContext(ctx, "ROLLBACK TO append_unit"); err != nil {
					return fmt.Errorf("sqlite: append: %w", err)
				}
				break unit
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE append_unit"); err != nil {
			return fmt.Errorf("sqlite: append: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	return nil
}

// startMicros and endMicros convert inclusive bounds to stored microseconds without letting in an item
// outside the bound: a bound inside a microsecond rounds inwards.
func startMicros(t time.Time) int64 {
	us := t.UnixMicro() // floors
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	return us
}

func endMicros(t time.Time) int64 { return t.UnixMicro() }

// filter returns the WHERE clause and arguments of q's filters (not its paging fields).
func (a *archive) filter(owner string, q storage.ArchiveQuery) (string, []any, error) {
	var b strings.Builder
	args := []any{a.name, owner}
	b.WriteString("archive = ? AND owner = ?")
	if q.With != "" {
		b.WriteString(" AND with_jid = ?")
		args = append(args, q.With)
	}
	if !q.Start.IsZero() {
		b.WriteString(" AND ts >= ?")
		args = append(args, startMicros(q.Start))
	}
	if !q.End.IsZero() {
		b.WriteString(" AND ts <= ?")
		args = append(args, endMicros(q.End))
	}
	if len(q.IDs) > 0 {
		// One JSON parameter however many ids: SQLite limits the number of parameters.
		ids, err := json.Marshal(q.IDs)
		if err != nil {
			return "", nil, err
		}
		b.WriteString(" AND id IN (SELECT value FROM json_each(?))")
		args = append(args, string(ids))
	}
	return b.String(), args, nil
}

// queryer is what *sql.DB and *sql.Tx have in common for reads.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// seqOf returns the position of item id in owner's archive; storage.ErrNotFound if it is not there.
func (a *archive) seqOf(ctx context.Context, db queryer, owner, id string) (int64, error) {
	var seq int64
	err := db.QueryRowContext(ctx, "SELECT seq FROM archive_items WHERE archive = ? AND owner = ? AND id = ?",
		a.name, owner, id).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("sqlite: archive %s of %q: paging id %q: %w", a.name, owner, id, storage.ErrNotFound)
	}
	return seq, err
}

// Query returns the selected items in append order and whether they reach the end of the selection in the
// paging direction.
func (a *archive) Query(ctx context.Context, owner string, q storage.ArchiveQuery) ([]storage.ArchiveItem, bool,
	error) {
	where, args, err := a.filter(owner, q)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: query: %w", err)
	}
	if a.s.closed.Load() {
		return nil, false, errClosed
	}
	var db queryer = a.s.r
	if q.AfterID != "" || q.BeforeID != "" {
		// One snapshot for resolving the paging ids and reading the page.
		tx, err := a.s.readTx(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("sqlite: query: %w", err)
		}
		defer tx.Rollback()
		db = tx
	}
	if q.AfterID != "" {
		seq, err := a.seqOf(ctx, db, owner, q.AfterID)
		if err != nil {
			return nil, false, err
		}
		where += " AND seq > ?"
		args = append(args, seq)
	}
	if q.BeforeID != "" {
		seq, err := a.seqOf(ctx, db, owner, q.BeforeID)
		if err != nil {
			return nil, false, err
		}
		where += " AND seq < ?"
		args = append(args, seq)
	}
	stmt := "SELECT id, with_jid, ts, origin_id, data FROM archive_items WHERE " + where
	if q.Last {
		stmt += " ORDER BY seq DESC"
	} else {
		stmt += " ORDER BY seq"
	}
	if q.Limit > 0 {
		// One more than asked tells whether the selection goes on.
		stmt += " LIMIT ?"
		args = append(args, q.Limit+1)
	}
	rows, err := db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite: query: %w", err)
	}
	defer rows.Close()
	var items []storage.ArchiveItem
	for rows.Next() {
		var it storage.ArchiveItem
		var ts int64
		if err := rows.Scan(&it.ID, &it.With, &ts, &it.OriginID, &it.Data); err != nil {
			return nil, false, fmt.Errorf("sqlite: query: %w", err)
		}
		it.Time = time.UnixMicro(ts).UTC()
		it.Data = nonNil(it.Data)
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("sqlite: query: %w", err)
	}
	complete := true
	if q.Limit > 0 && len(items) > q.Limit {
		items, complete = items[:q.Limit], false
	}
	if q.Last {
		slices.Reverse(items)
	}
	return items, complete, nil
}

// Count returns the number of items matching the query's filters; AfterID, BeforeID, Limit and Last are
// paging fields and ignored.
func (a *archive) Count(ctx context.Context, owner string, q storage.ArchiveQuery) (int, error) {
	if a.s.closed.Load() {
		return 0, errClosed
	}
	where, args, err := a.filter(owner, q)
	if err != nil {
		return 0, fmt.Errorf("sqlite: count: %w", err)
	}
	var n int
	if err := a.s.r.QueryRowContext(ctx, "SELECT count(*) FROM archive_items WHERE "+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count: %w", err)
	}
	return n, nil
}

// Delete removes the given ids of owner's archive; absent ids are ignored.
func (a *archive) Delete(ctx context.Context, owner string, ids ...string) error {
	if a.s.closed.Load() {
		return errClosed
	}
	if len(ids) == 0 {
		return nil
	}
	j, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("sqlite: delete: %w", err)
	}
	if _, err := a.s.w.ExecContext(ctx, `DELETE FROM archive_items
		WHERE archive = ? AND owner = ? AND id IN (SELECT value FROM json_each(?))`, a.name, owner,
		string(j)); err != nil {
		return fmt.Errorf("sqlite: delete: %w", err)
	}
	return nil
}

// DeleteOwner removes every item of owner in this archive.
func (a *archive) DeleteOwner(ctx context.Context, owner string) error {
	if a.s.closed.Load() {
		return errClosed
	}
	if _, err := a.s.w.ExecContext(ctx, "DELETE FROM archive_items WHERE archive = ? AND owner = ?", a.name,
		owner); err != nil {
		return fmt.Errorf("sqlite: delete owner: %w", err)
	}
	return nil
}

// DeleteBefore removes every item of this archive, of all owners, older than t, in transactions of
// deleteChunk rows so that appends are not held up behind one long write, and returns how many it removed.
// If it fails part way, the chunks already deleted stay deleted.
func (a *archive) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	limit := startMicros(t) // older than t: ts < t, rounded like an exclusive bound
	var total int64
	for {
		if a.s.closed.Load() {
			return total, errClosed
		}
		res, err := a.s.w.ExecContext(ctx, `DELETE FROM archive_items WHERE seq IN (
			SELECT seq FROM archive_items WHERE archive = ? AND ts < ? LIMIT ?)`, a.name, limit, deleteChunk)
		if err != nil {
			return total, fmt.Errorf("sqlite: delete before: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("sqlite: delete before: %w", err)
		}
		total += n
		if n < deleteChunk {
			return total, nil
		}
	}
}

// HasOrigin reports whether owner's archive holds an item with this origin id and With; an empty origin id
// matches nothing.
func (a *archive) HasOrigin(ctx context.Context, owner, with, originID string) (bool, error) {
	if a.s.closed.Load() {
		return false, errClosed
	}
	if originID == "" {
		return false, nil
	}
	// origin_id <> '' repeats the partial index's predicate: without it the planner cannot use that index for
	// a bound parameter and scans the owner's whole conversation instead (quadratic under a burst).
	var n int
	if err := a.s.r.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM archive_items
		WHERE archive = ? AND owner = ? AND origin_id = ? AND origin_id <> '' AND with_jid = ? LIMIT 1)`,
		a.name, owner, originID, with).Scan(&n); err != nil {
		return false, fmt.Errorf("sqlite: has origin: %w", err)
	}
	return n > 0, nil
}

var (
	_ storage.Archive       = (*archive)(nil)
	_ storage.AsyncAppender = (*archive)(nil)
	_ storage.Queued        = (*archive)(nil)
	_ storage.BatchAppender = (*Store)(nil)
)
