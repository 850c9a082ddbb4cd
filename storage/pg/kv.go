package pg

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"parley.im/parley/storage"
)

// Value returns the stored value; storage.ErrNotFound if absent.
func (s *Store) Value(ctx context.Context, owner, key string) ([]byte, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	var v []byte
	err := s.pool.QueryRow(ctx, "SELECT value FROM kv WHERE owner = $1 AND key = $2", owner, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pg: value %q of %q: %w", key, owner, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pg: value: %w", err)
	}
	return nonNil(v), nil
}

// PutValue inserts or replaces a value.
func (s *Store) PutValue(ctx context.Context, owner, key string, value []byte) error {
	if s.closed.Load() {
		return errClosed
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO kv (owner, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value`, owner, key, nonNil(value)); err != nil {
		return fmt.Errorf("pg: put value: %w", err)
	}
	return nil
}

// DeleteValue removes a value; deleting an absent key is not an error.
func (s *Store) DeleteValue(ctx context.Context, owner, key string) error {
	if s.closed.Load() {
		return errClosed
	}
	if _, err := s.pool.Exec(ctx, "DELETE FROM kv WHERE owner = $1 AND key = $2", owner, key); err != nil {
		return fmt.Errorf("pg: delete value: %w", err)
	}
	return nil
}

// Keys lists the owner's keys that start with prefix, in bytewise ascending order.
func (s *Store) Keys(ctx context.Context, owner, prefix string) ([]string, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	// A range of the primary key. Not LIKE, whose wildcards ('%', '_') may appear in keys. For valid UTF-8
	// (all PostgreSQL text) the range alone is exact; starts_with costs nothing and does not depend on that
	// argument.
	var end *string // NULL: no upper bound
	if e, ok := prefixEnd(prefix); ok {
		end = &e
	}
	rows, err := s.pool.Query(ctx, `SELECT key FROM kv
		WHERE owner = $1 AND key >= $2 AND ($3::text IS NULL OR key < $3) AND starts_with(key, $2)
		ORDER BY key`, owner, prefix, end)
	if err != nil {
		return nil, fmt.Errorf("pg: keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pg: keys: %w", err)
	}
	return keys, nil
}

// prefixEnd returns a string greater than every string that starts with prefix, in bytewise order, and
// false if there is none. It increments the last code point rather than the last byte: PostgreSQL text must
// be valid UTF-8, and UTF-8 preserves code point order.
func prefixEnd(prefix string) (string, bool) {
	runes := []rune(prefix)
	for i := len(runes) - 1; i >= 0; i-- {
		r := runes[i] + 1
		if r >= 0xd800 && r <= 0xdfff { // surrogates are not encodable
			r = 0xe000
		}
		if r <= utf8.MaxRune {
			runes[i] = r
			return string(runes[:i+1]), true
		}
	}
	return "", false
}

var _ storage.KV = (*Store)(nil)
