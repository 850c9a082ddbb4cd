package pg

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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

// insertSQL inserts one part's items, in their order, from parallel arrays. ORDER BY ordinality makes the
// identity column number them in that order. A taken id inserts nothing (ON CONFLICT DO NOTHING), which
// shows as fewer rows than items; the positions of the rows that were inserted come back so that they can
// be removed again.
const insertSQL = `WITH ins AS (
	INSERT INTO archive_items (archive, owner, id, with_jid, ts, origin_id, data)
	SELECT $1, $2, u.id, u.with_jid, u.ts, u.origin_id, u.data
	FROM unnest($3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::bytea[])
		WITH ORDINALITY AS u (id, with_jid, ts, origin_id, data, ord)
	ORDER BY u.ord
	ON CONFLICT (archive, owner, id) DO NOTHING
	RETURNING seq
)
SELECT count(*), coalesce(array_agg(seq), '{}') FROM ins`

// AppendBatch implements storage.BatchAppender: every part of every unit in one transaction and one round
// trip. A unit with a taken id (or one id twice) gets storage.ErrConflict in errs, and the rows its parts did
// insert are deleted before the commit, so that it stores nothing. The returned error is the transaction's,
// and concerns every unit.
func (s *Store) AppendBatch(ctx context.Context, units [][]storage.ArchiveAppend, errs []error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pg: append: %w", err)
	}
	defer tx.Rollback(ctx)
	b := &pgx.Batch{}
	seqs := make([][]int64, len(units)) // rows each unit inserted, for undoing a unit that conflicts
	for i, unit := range units {
		for _, p := range unit {
			n := len(p.Items)
			ids, withs, origins := make([]string, n), make([]string, n), make([]string, n)
			times, data := make([]time.Time, n), make([][]byte, n)
			for j, it := range p.Items {
				ids[j], withs[j], times[j], origins[j], data[j] = it.ID, it.With, it.Time, it.OriginID, nonNil(it.Data)
			}
			b.Queue(insertSQL, p.Archive, p.Owner, ids, withs, times, origins, data).QueryRow(func(row pgx.Row) error {
				var inserted int
				var got []int64
				if err := row.Scan(&inserted, &got); err != nil {
					return err
				}
				seqs[i] = append(seqs[i], got...)
				if inserted < n && errs[i] == nil {
					errs[i] = fmt.Errorf("pg: append to %s of %q: %w", p.Archive, p.Owner, storage.ErrConflict)
				}
				return nil
			})
		}
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("pg: append: %w", err)
	}
	var undo []int64
	for i := range units {
		if errs[i] != nil {
			undo = append(undo, seqs[i]...)
		}
	}
	if len(undo) > 0 {
		if _, err := tx.Exec(ctx, "DELETE FROM archive_items WHERE seq = ANY($1)", undo); err != nil {
			return fmt.Errorf("pg: append: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pg: append: %w", err)
	}
	return nil
}

// startBound and endBound turn inclusive bounds into the microseconds PostgreSQL stores without letting in
// an item outside the bound: a bound inside a microsecond rounds inwards.
func startBound(t time.Time) time.Time {
	us := t.UnixMicro() // floors
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	return time.UnixMicro(us)
}

func endBound(t time.Time) time.Time { return time.UnixMicro(t.UnixMicro()) }

// filter builds the WHERE clause and arguments of q's filters (not its paging fields).
type filter struct {
	where strings.Builder
	args  []any
}

func (f *filter) add(cond string, arg any) {
	f.args = append(f.args, arg)
	f.where.WriteString(" AND ")
	f.where.WriteString(strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(f.args))))
}

func (a *archive) filter(owner string, q storage.ArchiveQuery) *filter {
	f := &filter{args: []any{a.name, owner}}
	f.where.WriteString("archive = $1 AND owner = $2")
	if q.With != "" {
		f.add("with_jid = ?", q.With)
	}
	if !q.Start.IsZero() {
		f.add("ts >= ?", startBound(q.Start))
	}
	if !q.End.IsZero() {
		f.add("ts <= ?", endBound(q.End))
	}
	if len(q.IDs) > 0 {
		f.add("id = ANY(?)", q.IDs)
	}
	return f
}

// Query returns the selected items in append order and whether they reach the end of the selection in the
// paging direction.
func (a *archive) Query(ctx context.Context, owner string, q storage.ArchiveQuery) ([]storage.ArchiveItem, bool,
	error) {
	if a.s.closed.Load() {
		return nil, false, errClosed
	}
	f := a.filter(owner, q)
	if q.AfterID != "" || q.BeforeID != "" {
		// Resolve the paging ids to positions first: an unknown id is an error, not an empty page.
		rows, err := a.s.pool.Query(ctx, "SELECT id, seq FROM archive_items WHERE archive = $1 AND owner = $2 AND id = ANY($3)",
			a.name, owner, []string{q.AfterID, q.BeforeID})
		if err != nil {
			return nil, false, fmt.Errorf("pg: query: %w", err)
		}
		seqs := map[string]int64{}
		var id string
		var seq int64
		if _, err := pgx.ForEachRow(rows, []any{&id, &seq}, func() error { seqs[id] = seq; return nil }); err != nil {
			return nil, false, fmt.Errorf("pg: query: %w", err)
		}
		for _, p := range []struct {
			id, cond string
		}{{q.AfterID, "seq > ?"}, {q.BeforeID, "seq < ?"}} {
			if p.id == "" {
				continue
			}
			seq, ok := seqs[p.id]
			if !ok {
				return nil, false, fmt.Errorf("pg: archive %s of %q: paging id %q: %w", a.name, owner, p.id,
					storage.ErrNotFound)
			}
			f.add(p.cond, seq)
		}
	}
	stmt := "SELECT id, with_jid, ts, origin_id, data FROM archive_items WHERE " + f.where.String()
	if q.Last {
		stmt += " ORDER BY seq DESC"
	} else {
		stmt += " ORDER BY seq"
	}
	if q.Limit > 0 {
		// One more than asked tells whether the selection goes on.
		f.args = append(f.args, q.Limit+1)
		stmt += " LIMIT $" + strconv.Itoa(len(f.args))
	}
	rows, err := a.s.pool.Query(ctx, stmt, f.args...)
	if err != nil {
		return nil, false, fmt.Errorf("pg: query: %w", err)
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.ArchiveItem, error) {
		var it storage.ArchiveItem
		err := row.Scan(&it.ID, &it.With, &it.Time, &it.OriginID, &it.Data)
		it.Time, it.Data = it.Time.UTC(), nonNil(it.Data)
		return it, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("pg: query: %w", err)
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
	f := a.filter(owner, q)
	var n int
	if err := a.s.pool.QueryRow(ctx, "SELECT count(*) FROM archive_items WHERE "+f.where.String(),
		f.args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("pg: count: %w", err)
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
	if _, err := a.s.pool.Exec(ctx, "DELETE FROM archive_items WHERE archive = $1 AND owner = $2 AND id = ANY($3)",
		a.name, owner, ids); err != nil {
		return fmt.Errorf("pg: delete: %w", err)
	}
	return nil
}

// DeleteOwner removes every item of owner in this archive.
func (a *archive) DeleteOwner(ctx context.Context, owner string) error {
	if a.s.closed.Load() {
		return errClosed
	}
	if _, err := a.s.pool.Exec(ctx, "DELETE FROM archive_items WHERE archive = $1 AND owner = $2", a.name,
		owner); err != nil {
		return fmt.Errorf("pg: delete owner: %w", err)
	}
	return nil
}

// DeleteBefore removes every item of this archive, of all owners, older than t, in transactions of
// deleteChunk rows, and returns how many it removed. If it fails part way, the chunks already deleted stay
// deleted.
func (a *archive) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	limit := startBound(t) // older than t: ts < t, rounded like an exclusive bound
	var total int64
	for {
		if a.s.closed.Load() {
			return total, errClosed
		}
		tag, err := a.s.pool.Exec(ctx, `DELETE FROM archive_items WHERE seq = ANY(ARRAY(
			SELECT seq FROM archive_items WHERE archive = $1 AND ts < $2 LIMIT $3))`, a.name, limit, deleteChunk)
		if err != nil {
			return total, fmt.Errorf("pg: delete before: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < deleteChunk {
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
	var has bool
	if err := a.s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM archive_items
		WHERE archive = $1 AND owner = $2 AND origin_id = $3 AND origin_id <> '' AND with_jid = $4)`,
		a.name, owner, originID, with).Scan(&has); err != nil {
		return false, fmt.Errorf("pg: has origin: %w", err)
	}
	return has, nil
}

var (
	_ storage.Archive       = (*archive)(nil)
	_ storage.AsyncAppender = (*archive)(nil)
	_ storage.Queued        = (*archive)(nil)
	_ storage.BatchAppender = (*Store)(nil)
)
