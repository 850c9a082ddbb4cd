package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"parley.im/parley/storage"
)

const rosterColumns = "contact, name, subscription, ask_out, pending_in, pre_approved, group_names"

type rowScanner interface{ Scan(dest ...any) error }

func scanRosterItem(r rowScanner) (storage.RosterItem, error) {
	var it storage.RosterItem
	var sub, groups string
	if err := r.Scan(&it.JID, &it.Name, &sub, &it.AskOut, &it.PendingIn, &it.PreApproved, &groups); err != nil {
		return it, err
	}
	it.Subscription = storage.Subscription(sub)
	if err := json.Unmarshal([]byte(groups), &it.Groups); err != nil {
		return it, fmt.Errorf("groups of %q: %w", it.JID, err)
	}
	return it, nil
}

// Roster returns every item of owner's roster, ordered by contact, and its current version.
func (s *Store) Roster(ctx context.Context, owner string) ([]storage.RosterItem, int64, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: roster: %w", err)
	}
	defer tx.Rollback()
	verQ, err := s.prepared(ctx, "SELECT version FROM roster_versions WHERE owner = ?")
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: roster: %w", err)
	}
	itemsQ, err := s.prepared(ctx, "SELECT "+rosterColumns+" FROM roster_items WHERE owner = ? ORDER BY contact")
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: roster: %w", err)
	}
	var ver int64
	err = tx.StmtContext(ctx, verQ).QueryRowContext(ctx, owner).Scan(&ver)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("sqlite: roster: %w", err)
	}
	rows, err := tx.StmtContext(ctx, itemsQ).QueryContext(ctx, owner)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: roster: %w", err)
	}
	defer rows.Close()
	var items []storage.RosterItem
	for rows.Next() {
		it, err := scanRosterItem(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("sqlite: roster: %w", err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("sqlite: roster: %w", err)
	}
	return items, ver, nil
}

// RosterItem returns one item; storage.ErrNotFound if the contact is not in the roster.
func (s *Store) RosterItem(ctx context.Context, owner, contact string) (storage.RosterItem, error) {
	if s.closed.Load() {
		return storage.RosterItem{}, errClosed
	}
	st, err := s.prepared(ctx, "SELECT "+rosterColumns+" FROM roster_items WHERE owner = ? AND contact = ?")
	if err != nil {
		return storage.RosterItem{}, fmt.Errorf("sqlite: roster item: %w", err)
	}
	it, err := scanRosterItem(st.QueryRowContext(ctx, owner, contact))
	if errors.Is(err, sql.ErrNoRows) {
		return it, fmt.Errorf("sqlite: roster item %q of %q: %w", contact, owner, storage.ErrNotFound)
	}
	if err != nil {
		return it, fmt.Errorf("sqlite: roster item: %w", err)
	}
	return it, nil
}

// PutRosterItem inserts or replaces an item and returns the new roster version.
func (s *Store) PutRosterItem(ctx context.Context, owner string, item storage.RosterItem) (int64, error) {
	groups := item.Groups
	if groups == nil {
		groups = []string{}
	}
	gj, err := json.Marshal(groups)
	if err != nil {
		return 0, fmt.Errorf("sqlite: put roster item: %w", err)
	}
	tx, err := s.writeTx(ctx)
	if err != nil {
		return 0, fmt.Errorf("sqlite: put roster item: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO roster_items (owner, "+rosterColumns+
		") VALUES (?, ?, ?, ?, ?, ?, ?, ?)", owner, item.JID, item.Name, string(item.Subscription), item.AskOut,
		item.PendingIn, item.PreApproved, string(gj)); err != nil {
		return 0, fmt.Errorf("sqlite: put roster item: %w", err)
	}
	ver, err := bumpRosterVersion(ctx, tx, owner)
	if err != nil {
		return 0, fmt.Errorf("sqlite: put roster item: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: put roster item: %w", err)
	}
	return ver, nil
}

// DeleteRosterItem removes an item and returns the new roster version; storage.ErrNotFound if it is absent.
func (s *Store) DeleteRosterItem(ctx context.Context, owner, contact string) (int64, error) {
	tx, err := s.writeTx(ctx)
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete roster item: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "DELETE FROM roster_items WHERE owner = ? AND contact = ?", owner, contact)
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete roster item: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, fmt.Errorf("sqlite: delete roster item: %w", err)
	} else if n == 0 {
		return 0, fmt.Errorf("sqlite: roster item %q of %q: %w", contact, owner, storage.ErrNotFound)
	}
	ver, err := bumpRosterVersion(ctx, tx, owner)
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete roster item: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: delete roster item: %w", err)
	}
	return ver, nil
}

// bumpRosterVersion gives owner's roster the next number of the store-wide roster version counter. Writes
// are serialized (one writer), so the counter only grows and every owner's versions strictly increase.
func bumpRosterVersion(ctx context.Context, tx *sql.Tx, owner string) (int64, error) {
	var ver int64
	if err := tx.QueryRowContext(ctx,
		"UPDATE counters SET value = value + 1 WHERE name = 'roster_version' RETURNING value").Scan(&ver); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO roster_versions (owner, version) VALUES (?, ?)
		ON CONFLICT (owner) DO UPDATE SET version = excluded.version`, owner, ver); err != nil {
		return 0, err
	}
	return ver, nil
}

var _ storage.Roster = (*Store)(nil)
