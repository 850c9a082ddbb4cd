package pg

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"parley.im/parley/storage"
)

// Roster returns every item of owner's roster, ordered by contact, and its current version, from one
// snapshot.
func (s *Store) Roster(ctx context.Context, owner string) ([]storage.RosterItem, int64, error) {
	if s.closed.Load() {
		return nil, 0, errClosed
	}
	// One statement, so one snapshot: the version row joined to the items, or to NULLs when there are none.
	rows, err := s.pool.Query(ctx, `SELECT v.version, i.contact, i.name, i.subscription, i.ask_out, i.pending_in,
			i.pre_approved, i.group_names
		FROM (SELECT coalesce((SELECT version FROM roster_versions WHERE owner = $1), 0) AS version) v
		LEFT JOIN roster_items i ON i.owner = $1
		ORDER BY i.contact`, owner)
	if err != nil {
		return nil, 0, fmt.Errorf("pg: roster: %w", err)
	}
	defer rows.Close()
	var ver int64
	var items []storage.RosterItem
	for rows.Next() {
		var contact, name, sub *string
		var ask, pending, pre *bool
		var groups []string
		if err := rows.Scan(&ver, &contact, &name, &sub, &ask, &pending, &pre, &groups); err != nil {
			return nil, 0, fmt.Errorf("pg: roster: %w", err)
		}
		if contact == nil {
			continue
		}
		items = append(items, storage.RosterItem{JID: *contact, Name: *name, Subscription: storage.Subscription(*sub),
			AskOut: *ask, PendingIn: *pending, PreApproved: *pre, Groups: groups})
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("pg: roster: %w", err)
	}
	return items, ver, nil
}

// RosterItem returns one item; storage.ErrNotFound if the contact is not in the roster.
func (s *Store) RosterItem(ctx context.Context, owner, contact string) (storage.RosterItem, error) {
	if s.closed.Load() {
		return storage.RosterItem{}, errClosed
	}
	it := storage.RosterItem{JID: contact}
	var sub string
	err := s.pool.QueryRow(ctx, `SELECT name, subscription, ask_out, pending_in, pre_approved, group_names
		FROM roster_items WHERE owner = $1 AND contact = $2`, owner, contact).Scan(&it.Name, &sub, &it.AskOut,
		&it.PendingIn, &it.PreApproved, &it.Groups)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.RosterItem{}, fmt.Errorf("pg: roster item %q of %q: %w", contact, owner, storage.ErrNotFound)
	}
	if err != nil {
		return storage.RosterItem{}, fmt.Errorf("pg: roster item: %w", err)
	}
	it.Subscription = storage.Subscription(sub)
	return it, nil
}

// PutRosterItem inserts or replaces an item and returns the new roster version.
func (s *Store) PutRosterItem(ctx context.Context, owner string, item storage.RosterItem) (int64, error) {
	groups := item.Groups
	if groups == nil {
		groups = []string{}
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("pg: put roster item: %w", err)
	}
	defer tx.Rollback(context.Background())
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO roster_items (owner, contact, name, subscription, ask_out, pending_in, pre_approved,
			group_names) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name, subscription = excluded.subscription,
			ask_out = excluded.ask_out, pending_in = excluded.pending_in, pre_approved = excluded.pre_approved,
			group_names = excluded.group_names`,
		owner, item.JID, item.Name, string(item.Subscription), item.AskOut, item.PendingIn, item.PreApproved, groups)
	var ver int64
	queueBumpVersion(b, owner, &ver)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("pg: put roster item: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("pg: put roster item: %w", err)
	}
	return ver, nil
}

// DeleteRosterItem removes an item and returns the new roster version; storage.ErrNotFound if it is absent.
func (s *Store) DeleteRosterItem(ctx context.Context, owner, contact string) (int64, error) {
	tx, err := s.begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("pg: delete roster item: %w", err)
	}
	defer tx.Rollback(context.Background())
	tag, err := tx.Exec(ctx, "DELETE FROM roster_items WHERE owner = $1 AND contact = $2", owner, contact)
	if err != nil {
		return 0, fmt.Errorf("pg: delete roster item: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return 0, fmt.Errorf("pg: roster item %q of %q: %w", contact, owner, storage.ErrNotFound)
	}
	b := &pgx.Batch{}
	var ver int64
	queueBumpVersion(b, owner, &ver)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("pg: delete roster item: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("pg: delete roster item: %w", err)
	}
	return ver, nil
}

// queueBumpVersion queues the statements that give owner's roster a new version from roster_version_seq and
// store it in *ver. The first locks owner's version row (creating it if needed); only then does the second
// draw from the sequence. Drawing under the lock makes a later commit always get a larger number, so an
// owner's versions strictly increase in commit order, and every version is a fresh sequence value.
func queueBumpVersion(b *pgx.Batch, owner string, ver *int64) {
	b.Queue(`INSERT INTO roster_versions (owner, version) VALUES ($1, 0)
		ON CONFLICT (owner) DO UPDATE SET version = roster_versions.version`, owner)
	b.Queue(`UPDATE roster_versions SET version = nextval('roster_version_seq') WHERE owner = $1
		RETURNING version`, owner).QueryRow(func(row pgx.Row) error { return row.Scan(ver) })
}

var _ storage.Roster = (*Store)(nil)
