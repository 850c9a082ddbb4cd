package pg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"parley.im/parley/storage"
)

// CreateUser adds an account; storage.ErrConflict if it exists.
func (s *Store) CreateUser(ctx context.Context, user string, creds []storage.ScramCredential) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("pg: create user: %w", err)
	}
	defer tx.Rollback(context.Background())
	tag, err := tx.Exec(ctx, "INSERT INTO users (username) VALUES ($1) ON CONFLICT DO NOTHING", user)
	if err != nil {
		return fmt.Errorf("pg: create user: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pg: create user %q: %w", user, storage.ErrConflict)
	}
	if err := insertCreds(ctx, tx, user, creds); err != nil {
		return fmt.Errorf("pg: create user: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pg: create user: %w", err)
	}
	return nil
}

// insertCreds inserts every credential in one statement.
func insertCreds(ctx context.Context, tx pgx.Tx, user string, creds []storage.ScramCredential) error {
	if len(creds) == 0 {
		return nil
	}
	pos := make([]int32, len(creds))
	mech := make([]string, len(creds))
	iter := make([]int64, len(creds))
	salt := make([][]byte, len(creds))
	stored := make([][]byte, len(creds))
	server := make([][]byte, len(creds))
	for i, c := range creds {
		pos[i], mech[i], iter[i] = int32(i), c.Mechanism, int64(c.Iterations)
		salt[i], stored[i], server[i] = nonNil(c.Salt), nonNil(c.StoredKey), nonNil(c.ServerKey)
	}
	_, err := tx.Exec(ctx, `INSERT INTO user_credentials
		(username, position, mechanism, salt, iterations, stored_key, server_key)
		SELECT $1, * FROM unnest($2::int[], $3::text[], $4::bytea[], $5::int[], $6::bytea[], $7::bytea[])`,
		user, pos, mech, salt, iter, stored, server)
	return err
}

// Credentials returns the account's credentials in the order they were stored; storage.ErrNotFound if there
// is no such account.
func (s *Store) Credentials(ctx context.Context, user string) ([]storage.ScramCredential, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	// One statement answers both "does the account exist" and "what are its credentials": an account without
	// credentials is one row of NULLs.
	rows, err := s.pool.Query(ctx, `SELECT c.mechanism, c.salt, c.iterations, c.stored_key, c.server_key
		FROM users u LEFT JOIN user_credentials c ON c.username = u.username
		WHERE u.username = $1 ORDER BY c.position`, user)
	if err != nil {
		return nil, fmt.Errorf("pg: credentials: %w", err)
	}
	defer rows.Close()
	found := false
	var creds []storage.ScramCredential
	for rows.Next() {
		found = true
		var mech *string
		var iter *int64
		var c storage.ScramCredential
		if err := rows.Scan(&mech, &c.Salt, &iter, &c.StoredKey, &c.ServerKey); err != nil {
			return nil, fmt.Errorf("pg: credentials: %w", err)
		}
		if mech == nil {
			continue
		}
		c.Mechanism, c.Iterations = *mech, int(*iter)
		creds = append(creds, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pg: credentials: %w", err)
	}
	if !found {
		return nil, fmt.Errorf("pg: user %q: %w", user, storage.ErrNotFound)
	}
	return creds, nil
}

// SetCredentials replaces every credential of the account; storage.ErrNotFound if there is no such account.
func (s *Store) SetCredentials(ctx context.Context, user string, creds []storage.ScramCredential) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("pg: set credentials: %w", err)
	}
	defer tx.Rollback(context.Background())
	// FOR UPDATE: a concurrent DeleteUser waits for this change, or this one sees the account gone.
	tag, err := tx.Exec(ctx, "SELECT FROM users WHERE username = $1 FOR UPDATE", user)
	if err != nil {
		return fmt.Errorf("pg: set credentials: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pg: user %q: %w", user, storage.ErrNotFound)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM user_credentials WHERE username = $1", user); err != nil {
		return fmt.Errorf("pg: set credentials: %w", err)
	}
	if err := insertCreds(ctx, tx, user, creds); err != nil {
		return fmt.Errorf("pg: set credentials: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pg: set credentials: %w", err)
	}
	return nil
}

// DeleteUser removes the account, its credentials, roster, key-value data, pubsub nodes and its items in every
// archive; storage.ErrNotFound if there is no such account.
func (s *Store) DeleteUser(ctx context.Context, user string) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("pg: delete user: %w", err)
	}
	defer tx.Rollback(context.Background())
	tag, err := tx.Exec(ctx, "DELETE FROM users WHERE username = $1", user) // credentials cascade
	if err != nil {
		return fmt.Errorf("pg: delete user: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pg: user %q: %w", user, storage.ErrNotFound)
	}
	b := &pgx.Batch{}
	// Same order as the roster writes (items, then version) so that they cannot deadlock with them.
	b.Queue("DELETE FROM roster_items WHERE owner = $1", user)
	b.Queue("DELETE FROM roster_versions WHERE owner = $1", user)
	b.Queue("DELETE FROM kv WHERE owner = $1", user)
	b.Queue("DELETE FROM pubsub_nodes WHERE owner = $1", user) // items, affiliations and subscriptions cascade
	// The archive indexes lead with the archive name; a loose index scan finds the few names, so that each
	// owner lookup is an index range instead of a scan of every archive's items.
	b.Queue(`WITH RECURSIVE names (name) AS (
			SELECT min(archive) FROM archive_items
			UNION ALL
			SELECT (SELECT min(archive) FROM archive_items WHERE archive > names.name) FROM names
			WHERE names.name IS NOT NULL
		)
		DELETE FROM archive_items WHERE owner = $1 AND archive IN (SELECT name FROM names WHERE name IS NOT NULL)`,
		user)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("pg: delete user: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pg: delete user: %w", err)
	}
	return nil
}

// ListUsers returns up to limit account names in bytewise ascending order, starting after the name after;
// limit <= 0 means no limit.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]string, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	var lim *int // NULL: LIMIT ALL
	if limit > 0 {
		lim = &limit
	}
	rows, err := s.pool.Query(ctx, "SELECT username FROM users WHERE username > $1 ORDER BY username LIMIT $2",
		after, lim)
	if err != nil {
		return nil, fmt.Errorf("pg: list users: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pg: list users: %w", err)
	}
	return names, nil
}

var _ storage.Users = (*Store)(nil)
