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
// table.
type archive struct {
	s    *Store
	name string
}

// Archive opens the archive with the given name; it exists as soon as something is appended to it.
func (s *Store) Archive(name string) storage.Archive { return &archive{s: s, name: name} }

// appendReq is one Append call waiting for the committer.
type appendReq struct {
	ctx     context.Context
	archive string
	owner   string
	items   []storage.ArchiveItem
	done    chan error // buffered: the committer never waits for the caller
}

// Append stores items for owner and returns once they are committed, sharing the commit with the other
// Append calls of the moment. If ctx ends first, Append returns its error; the items are then stored only if
// their batch had already begun.
func (a *archive) Append(ctx context.Context, owner string, items ...storage.ArchiveItem) error {
	if a.s.closed.Load() {
		return errClosed
	}
	if len(items) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &appendReq{ctx: ctx, archive: a.name, owner: owner, items: items, done: make(chan error, 1)}
	select {
	case a.s.appends <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-a.s.quit:
		return errClosed
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop is the committer: it takes one waiting Append call, then every other call already waiting,
// and commits them in one transaction. There is no timer: calls that arrive while a commit runs wait in
// the unbuffered channel and form the next batch, so a lone caller pays one commit and a crowd shares
// them.
func (s *Store) commitLoop() {
	defer close(s.done)
	batch := make([]*appendReq, 0, maxBatch)
	for {
		select {
		case r := <-s.appends:
			batch = append(batch[:0], r)
		case <-s.quit:
			return
		}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-s.appends:
				batch = append(batch, r)
			default:
				break more
			}
		}
		s.commitBatch(batch)
		clear(batch) // drop the references to the callers' items
	}
}

// commitBatch commits the calls of one batch and answers each of them.
func (s *Store) commitBatch(batch []*appendReq) {
	live := make([]*appendReq, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- err // gave up before its batch began: store nothing
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	errs := make([]error, len(live))
	err := s.insertBatch(live, errs)
	s.commits.Add(1)
	s.batched.Add(int64(len(live)))
	for i, r := range live {
		if err != nil {
			r.done <- err
		} else {
			r.done <- errs[i]
		}
	}
}

// insertSQL inserts one call's items, in their order, from parallel arrays. ORDER BY ordinality makes the
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

// insertBatch inserts every call's items in one transaction and one round trip. A call with a taken id (or
// one id twice) gets storage.ErrConflict in errs, and the rows it did insert are deleted before the commit,
// so that it stores nothing. The returned error is the transaction's, and concerns every call.
func (s *Store) insertBatch(reqs []*appendReq, errs []error) error {
	// Not one caller's context: a caller that gives up must not abort the others' commit.
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pg: append: %w", err)
	}
	defer tx.Rollback(ctx)
	b := &pgx.Batch{}
	var undo []int64
	for i, r := range reqs {
		n := len(r.items)
		ids, withs, origins := make([]string, n), make([]string, n), make([]string, n)
		times, data := make([]time.Time, n), make([][]byte, n)
		for j, it := range r.items {
			ids[j], withs[j], times[j], origins[j], data[j] = it.ID, it.With, it.Time, it.OriginID, nonNil(it.Data)
		}
		b.Queue(insertSQL, r.archive, r.owner, ids, withs, times, origins, data).QueryRow(func(row pgx.Row) error {
			var inserted int
			var seqs []int64
			if err := row.Scan(&inserted, &seqs); err != nil {
				return err
			}
			if inserted < n {
				errs[i] = fmt.Errorf("pg: append to %s of %q: %w", r.archive, r.owner, storage.ErrConflict)
				undo = append(undo, seqs...)
			}
			return nil
		})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("pg: append: %w", err)
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

var _ storage.Archive = (*archive)(nil)
