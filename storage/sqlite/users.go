package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"parley.im/parley/storage"
)

// CreateUser adds an account; storage.ErrConflict if it exists.
func (s *Store) CreateUser(ctx context.Context, user string, creds []storage.ScramCredential) error {
	tx, err := s.writeTx(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "INSERT INTO users (username) VALUES (?) ON CONFLICT DO NOTHING", user)
	if err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: create user %q: %w", user, storage.ErrConflict)
	}
	if err := insertCreds(ctx, tx, user, creds); err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	}
	return nil
}

func insertCreds(ctx context.Context, tx *sql.Tx, user string, creds []storage.ScramCredential) error {
	for i, c := range creds {
		if _, err := tx.ExecContext(ctx, `INSERT INTO user_credentials
			(username, position, mechanism, salt, iterations, stored_key, server_key) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			user, i, c.Mechanism, nonNil(c.Salt), c.Iterations, nonNil(c.StoredKey), nonNil(c.ServerKey)); err != nil {
			return err
		}
	}
	return nil
}

// Credentials returns the account's credentials in the order they were stored; storage.ErrNotFound if there
// is no such account.
func (s *Store) Credentials(ctx context.Context, user string) ([]storage.ScramCredential, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	// One statement answers both "does the account exist" and "what are its credentials": an account without
	// credentials is one row of NULLs.
	st, err := s.prepared(ctx, `SELECT c.mechanism, c.salt, c.iterations, c.stored_key, c.server_key
		FROM users u LEFT JOIN user_credentials c ON c.username = u.username
		WHERE u.username = ? ORDER BY c.position`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: credentials: %w", err)
	}
	rows, err := st.QueryContext(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("sqlite: credentials: %w", err)
	}
	defer rows.Close()
	found := false
	var creds []storage.ScramCredential
	for rows.Next() {
		found = true
		var mech sql.NullString
		var iter sql.NullInt64
		var c storage.ScramCredential
		if err := rows.Scan(&mech, &c.Salt, &iter, &c.StoredKey, &c.ServerKey); err != nil {
			return nil, fmt.Errorf("sqlite: credentials: %w", err)
		}
		if !mech.Valid {
			continue
		}
		c.Mechanism, c.Iterations = mech.String, int(iter.Int64)
		creds = append(creds, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: credentials: %w", err)
	}
	if !found {
		return nil, fmt.Errorf("sqlite: user %q: %w", user, storage.ErrNotFound)
	}
	return creds, nil
}

// SetCredentials replaces every credential of the account; storage.ErrNotFound if there is no such account.
func (s *Store) SetCredentials(ctx context.Context, user string, creds []storage.ScramCredential) error {
	tx, err := s.writeTx(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: set credentials: %w", err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM users WHERE username = ?", user).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: set credentials: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: user %q: %w", user, storage.ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM user_credentials WHERE username = ?", user); err != nil {
		return fmt.Errorf("sqlite: set credentials: %w", err)
	}
	if err := insertCreds(ctx, tx, user, creds); err != nil {
		return fmt.Errorf("sqlite: set credentials: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: set credentials: %w", err)
	}
	return nil
}

// DeleteUser removes the account, its credentials, roster, key-value data, pubsub nodes and its items in every
// archive; storage.ErrNotFound if there is no such account.
func (s *Store) DeleteUser(ctx context.Context, user string) error {
	tx, err := s.writeTx(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: delete user: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "DELETE FROM users WHERE username = ?", user) // credentials cascade
	if err != nil {
		return fmt.Errorf("sqlite: delete user: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: delete user: %w", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: user %q: %w", user, storage.ErrNotFound)
	}
	for _, q := range []string{
		"DELETE FROM roster_items WHERE owner = ?",
		"DELETE FROM roster_versions WHERE owner = ?",
		"DELETE FROM kv WHERE owner = ?",
		"DELETE FROM pubsub_nodes WHERE owner = ?", // items, affiliations and subscriptions cascade
		// The archive indexes lead with the archive name; a loose index scan finds the few names, so that
		// each owner lookup is an index range instead of a scan of every archive's items.
		`WITH RECURSIVE names (name) AS (
			SELECT min(archive) FROM archive_items
			UNION ALL
			SELECT (SELECT min(archive) FROM archive_items WHERE archive > name) FROM names WHERE name IS NOT NULL
		)
		DELETE FROM archive_items WHERE owner = ?1 AND archive IN (SELECT name FROM names WHERE name IS NOT NULL)`,
	} {
		if _, err := tx.ExecContext(ctx, q, user); err != nil {
			return fmt.Errorf("sqlite: delete user: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: delete user: %w", err)
	}
	return nil
}

// ListUsers returns up to limit account names in bytewise ascending order, starting after the name after;
// limit <= 0 means no limit.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]string, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.r.QueryContext(ctx, "SELECT username FROM users WHERE username > ? ORDER BY username LIMIT ?",
		after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("sqlite: list users: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	return names, nil
}

var _ storage.Users = (*Store)(nil)
