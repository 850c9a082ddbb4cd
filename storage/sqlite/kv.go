package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"parley.im/parley/storage"
)

// Value returns the stored value; storage.ErrNotFound if absent.
func (s *Store) Value(ctx context.Context, owner, key string) ([]byte, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	st, err := s.prepared(ctx, "SELECT value FROM kv WHERE owner = ? AND key = ?")
	if err != nil {
		return nil, fmt.Errorf("sqlite: value %q of %q: %w", key, owner, err)
	}
	var v []byte
	err = st.QueryRowContext(ctx, owner, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: value %q of %q: %w", key, owner, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: value: %w", err)
	}
	return nonNil(v), nil
}

// PutValue inserts or replaces a value.
func (s *Store) PutValue(ctx context.Context, owner, key string, value []byte) error {
	if s.closed.Load() {
		return errClosed
	}
	if _, err := s.w.ExecContext(ctx, "INSERT OR REPLACE INTO kv (owner, key, value) VALUES (?, ?, ?)", owner, key,
		nonNil(value)); err != nil {
		return fmt.Errorf("sqlite: put value: %w", err)
	}
	return nil
}

// DeleteValue removes a value; deleting an absent key is not an error.
func (s *Store) DeleteValue(ctx context.Context, owner, key string) error {
	if s.closed.Load() {
		return errClosed
	}
	if _, err := s.w.ExecContext(ctx, "DELETE FROM kv WHERE owner = ? AND key = ?", owner, key); err != nil {
		return fmt.Errorf("sqlite: delete value: %w", err)
	}
	return nil
}

// Keys lists the owner's keys that start with prefix, in bytewise ascending order.
func (s *Store) Keys(ctx context.Context, owner, prefix string) ([]string, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	// A range on the primary key rather than LIKE, whose wildcards ('%', '_') may appear in keys and which
	// ignores case for ASCII.
	q, args := "SELECT key FROM kv WHERE owner = ? AND key >= ?", []any{owner, prefix}
	if end, ok := prefixEnd(prefix); ok {
		q += " AND key < ?"
		args = append(args, end)
	}
	rows, err := s.r.QueryContext(ctx, q+" ORDER BY key", args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: keys: %w", err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("sqlite: keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: keys: %w", err)
	}
	return keys, nil
}

// prefixEnd returns the least string greater than every string that starts with prefix, in bytewise order,
// and false if there is none (prefix is empty or all 0xff bytes).
func prefixEnd(prefix string) (string, bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

var _ storage.KV = (*Store)(nil)
