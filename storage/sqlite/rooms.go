package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"parley.im/parley/storage"
)

// PutRoom inserts or replaces a room's configuration. An upsert rather than INSERT OR REPLACE: REPLACE
// deletes the old row first, and the foreign key would cascade that delete to the room's affiliations.
func (s *Store) PutRoom(ctx context.Context, room string, config []byte) error {
	if s.closed.Load() {
		return errClosed
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO rooms (jid, config) VALUES (?, ?)
		ON CONFLICT (jid) DO UPDATE SET config = excluded.config`, room, nonNil(config)); err != nil {
		return fmt.Errorf("sqlite: put room: %w", err)
	}
	return nil
}

// Room returns a room's configuration; storage.ErrNotFound if there is no such room.
func (s *Store) Room(ctx context.Context, room string) ([]byte, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	var c []byte
	err := s.r.QueryRowContext(ctx, "SELECT config FROM rooms WHERE jid = ?", room).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: room %q: %w", room, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: room: %w", err)
	}
	return nonNil(c), nil
}

// DeleteRoom removes a room and, by cascade, its affiliations; storage.ErrNotFound if there is no such room.
func (s *Store) DeleteRoom(ctx context.Context, room string) error {
	if s.closed.Load() {
		return errClosed
	}
	res, err := s.w.ExecContext(ctx, "DELETE FROM rooms WHERE jid = ?", room)
	if err != nil {
		return fmt.Errorf("sqlite: delete room: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: delete room: %w", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: room %q: %w", room, storage.ErrNotFound)
	}
	return nil
}

// ListRooms returns up to limit rooms in bytewise ascending JID order, after the JID after; limit <= 0 means
// no limit.
func (s *Store) ListRooms(ctx context.Context, after string, limit int) ([]storage.RoomRecord, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.r.QueryContext(ctx, "SELECT jid, config FROM rooms WHERE jid > ? ORDER BY jid LIMIT ?", after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list rooms: %w", err)
	}
	defer rows.Close()
	var out []storage.RoomRecord
	for rows.Next() {
		var r storage.RoomRecord
		if err := rows.Scan(&r.JID, &r.Config); err != nil {
			return nil, fmt.Errorf("sqlite: list rooms: %w", err)
		}
		r.Config = nonNil(r.Config)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list rooms: %w", err)
	}
	return out, nil
}

// SetAffiliation inserts, replaces or (for storage.AffNone or "") removes an affiliation;
// storage.ErrNotFound if there is no such room.
func (s *Store) SetAffiliation(ctx context.Context, room string, a storage.RoomAffiliation) error {
	tx, err := s.writeTx(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: set affiliation: %w", err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, "SELECT 1 FROM rooms WHERE jid = ?", room).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: room %q: %w", room, storage.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlite: set affiliation: %w", err)
	}
	if a.Affiliation == "" || a.Affiliation == storage.AffNone {
		_, err = tx.ExecContext(ctx, "DELETE FROM room_affiliations WHERE room = ? AND jid = ?", room, a.JID)
	} else {
		_, err = tx.ExecContext(ctx, `INSERT INTO room_affiliations (room, jid, affiliation, nick, reason)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (room, jid) DO UPDATE SET affiliation = excluded.affiliation,
			nick = excluded.nick, reason = excluded.reason`, room, a.JID, a.Affiliation, a.Nick, a.Reason)
	}
	if err != nil {
		return fmt.Errorf("sqlite: set affiliation: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: set affiliation: %w", err)
	}
	return nil
}

// Affiliations returns a room's affiliations in bytewise ascending JID order; storage.ErrNotFound if there is
// no such room.
func (s *Store) Affiliations(ctx context.Context, room string) ([]storage.RoomAffiliation, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: affiliations: %w", err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, "SELECT 1 FROM rooms WHERE jid = ?", room).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: room %q: %w", room, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: affiliations: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT jid, affiliation, nick, reason FROM room_affiliations
		WHERE room = ? ORDER BY jid`, room)
	if err != nil {
		return nil, fmt.Errorf("sqlite: affiliations: %w", err)
	}
	defer rows.Close()
	var out []storage.RoomAffiliation
	for rows.Next() {
		var a storage.RoomAffiliation
		if err := rows.Scan(&a.JID, &a.Affiliation, &a.Nick, &a.Reason); err != nil {
			return nil, fmt.Errorf("sqlite: affiliations: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: affiliations: %w", err)
	}
	return out, nil
}

var _ storage.Rooms = (*Store)(nil)
