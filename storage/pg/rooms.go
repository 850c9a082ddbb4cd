package pg

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"parley.im/parley/storage"
)

// PutRoom inserts or replaces a room's configuration.
func (s *Store) PutRoom(ctx context.Context, room string, config []byte) error {
	if s.closed.Load() {
		return errClosed
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO rooms (jid, config) VALUES ($1, $2)
		ON CONFLICT (jid) DO UPDATE SET config = excluded.config`, room, nonNil(config)); err != nil {
		return fmt.Errorf("pg: put room: %w", err)
	}
	return nil
}

// Room returns a room's configuration; storage.ErrNotFound if there is no such room.
func (s *Store) Room(ctx context.Context, room string) ([]byte, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	var c []byte
	err := s.pool.QueryRow(ctx, "SELECT config FROM rooms WHERE jid = $1", room).Scan(&c)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pg: room %q: %w", room, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pg: room: %w", err)
	}
	return nonNil(c), nil
}

// DeleteRoom removes a room and, by cascade, its affiliations; storage.ErrNotFound if there is no such room.
func (s *Store) DeleteRoom(ctx context.Context, room string) error {
	if s.closed.Load() {
		return errClosed
	}
	tag, err := s.pool.Exec(ctx, "DELETE FROM rooms WHERE jid = $1", room)
	if err != nil {
		return fmt.Errorf("pg: delete room: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pg: room %q: %w", room, storage.ErrNotFound)
	}
	return nil
}

// ListRooms returns up to limit rooms in bytewise ascending JID order, after the JID after; limit <= 0 means
// no limit.
func (s *Store) ListRooms(ctx context.Context, after string, limit int) ([]storage.RoomRecord, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	var lim *int // NULL: LIMIT ALL
	if limit > 0 {
		lim = &limit
	}
	rows, err := s.pool.Query(ctx, "SELECT jid, config FROM rooms WHERE jid > $1 ORDER BY jid LIMIT $2", after, lim)
	if err != nil {
		return nil, fmt.Errorf("pg: list rooms: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.RoomRecord, error) {
		var rec storage.RoomRecord
		err := r.Scan(&rec.JID, &rec.Config)
		rec.Config = nonNil(rec.Config)
		return rec, err
	})
	if err != nil {
		return nil, fmt.Errorf("pg: list rooms: %w", err)
	}
	return out, nil
}

// SetAffiliation inserts, replaces or (for storage.AffNone or "") removes an affiliation;
// storage.ErrNotFound if there is no such room.
func (s *Store) SetAffiliation(ctx context.Context, room string, a storage.RoomAffiliation) error {
	if s.closed.Load() {
		return errClosed
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pg: set affiliation: %w", err)
	}
	defer tx.Rollback(context.Background())
	// FOR KEY SHARE: a concurrent DeleteRoom waits for this transaction, so a row is never left for a room
	// that is gone (the foreign key would refuse it anyway; this turns the race into a clean order).
	var one int
	err = tx.QueryRow(ctx, "SELECT 1 FROM rooms WHERE jid = $1 FOR KEY SHARE", room).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("pg: room %q: %w", room, storage.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("pg: set affiliation: %w", err)
	}
	if a.Affiliation == "" || a.Affiliation == storage.AffNone {
		_, err = tx.Exec(ctx, "DELETE FROM room_affiliations WHERE room = $1 AND jid = $2", room, a.JID)
	} else {
		_, err = tx.Exec(ctx, `INSERT INTO room_affiliations (room, jid, affiliation, nick, reason)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (room, jid) DO UPDATE SET affiliation = excluded.affiliation,
			nick = excluded.nick, reason = excluded.reason`, room, a.JID, a.Affiliation, a.Nick, a.Reason)
	}
	if err != nil {
		return fmt.Errorf("pg: set affiliation: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pg: set affiliation: %w", err)
	}
	return nil
}

// Affiliations returns a room's affiliations in bytewise ascending JID order; storage.ErrNotFound if there is
// no such room.
func (s *Store) Affiliations(ctx context.Context, room string) ([]storage.RoomAffiliation, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	// One statement, one snapshot: the room row joined to its affiliations, or to NULLs when it has none.
	rows, err := s.pool.Query(ctx, `SELECT a.jid, a.affiliation, a.nick, a.reason
		FROM rooms r LEFT JOIN room_affiliations a ON a.room = r.jid
		WHERE r.jid = $1 ORDER BY a.jid`, room)
	if err != nil {
		return nil, fmt.Errorf("pg: affiliations: %w", err)
	}
	defer rows.Close()
	found := false
	var out []storage.RoomAffiliation
	for rows.Next() {
		found = true
		var j, aff, nick, reason *string
		if err := rows.Scan(&j, &aff, &nick, &reason); err != nil {
			return nil, fmt.Errorf("pg: affiliations: %w", err)
		}
		if j == nil {
			continue
		}
		out = append(out, storage.RoomAffiliation{JID: *j, Affiliation: *aff, Nick: *nick, Reason: *reason})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pg: affiliations: %w", err)
	}
	if !found {
		return nil, fmt.Errorf("pg: room %q: %w", room, storage.ErrNotFound)
	}
	return out, nil
}

var _ storage.Rooms = (*Store)(nil)
