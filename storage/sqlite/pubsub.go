package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"parley.im/parley/storage"
)

// CreateNode creates a node; storage.ErrConflict if it exists, a *storage.LimitError if the owner has
// lim.MaxNodes nodes or n.MaxItems exceeds lim.MaxItems. The single writer serializes the count and the insert.
func (s *Store) CreateNode(ctx context.Context, n storage.PubSubNode, lim storage.PubSubLimits) error {
	if err := storage.CheckPubSubNode(n, lim); err != nil {
		return fmt.Errorf("sqlite: create node: %w", err)
	}
	tx, err := s.writeTx(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: create node: %w", err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, "SELECT 1 FROM pubsub_nodes WHERE owner = ? AND node = ?", n.Owner, n.Node).Scan(&one)
	if err == nil {
		return fmt.Errorf("sqlite: create node %q of %q: %w", n.Node, n.Owner, storage.ErrConflict)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: create node: %w", err)
	}
	if lim.MaxNodes > 0 {
		var count int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM pubsub_nodes WHERE owner = ?", n.Owner).Scan(&count); err != nil {
			return fmt.Errorf("sqlite: create node: %w", err)
		}
		if count >= lim.MaxNodes {
			return fmt.Errorf("sqlite: create node: %w", &storage.LimitError{Limit: storage.LimitNodes, Max: lim.MaxNodes})
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO pubsub_nodes (owner, node, access_model, max_items, config)
		VALUES (?, ?, ?, ?, ?)`, n.Owner, n.Node, n.AccessModel, max(n.MaxItems, 0), nonNil(n.Config)); err != nil {
		return fmt.Errorf("sqlite: create node: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: create node: %w", err)
	}
	return nil
}

// ConfigureNode replaces a node's configuration and trims it to its new maximum, returning the trimmed ids
// oldest first; storage.ErrNotFound if there is no such node.
func (s *Store) ConfigureNode(ctx context.Context, n storage.PubSubNode, lim storage.PubSubLimits) ([]string, error) {
	if err := storage.CheckPubSubNode(n, lim); err != nil {
		return nil, fmt.Errorf("sqlite: configure node: %w", err)
	}
	tx, err := s.writeTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: configure node: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE pubsub_nodes SET access_model = ?, max_items = ?, config = ?
		WHERE owner = ? AND node = ?`, n.AccessModel, max(n.MaxItems, 0), nonNil(n.Config), n.Owner, n.Node)
	if err != nil {
		return nil, fmt.Errorf("sqlite: configure node: %w", err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("sqlite: configure node: %w", err)
	} else if k == 0 {
		return nil, fmt.Errorf("sqlite: node %q of %q: %w", n.Node, n.Owner, storage.ErrNotFound)
	}
	trimmed, err := trimItems(ctx, tx, n.Owner, n.Node, storage.EffectiveMaxItems(n, lim))
	if err != nil {
		return nil, fmt.Errorf("sqlite: configure node: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: configure node: %w", err)
	}
	return trimmed, nil
}

// trimItems removes the oldest items of a node beyond keep (0: keep all) and returns their ids, oldest first.
func trimItems(ctx context.Context, tx *sql.Tx, owner, node string, keep int) ([]string, error) {
	if keep <= 0 {
		return nil, nil
	}
	var cut int64
	err := tx.QueryRowContext(ctx, `SELECT seq FROM pubsub_items WHERE owner = ? AND node = ?
		ORDER BY seq DESC LIMIT 1 OFFSET ?`, owner, node, keep).Scan(&cut)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil // no more than keep items
	}
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT id FROM pubsub_items WHERE owner = ? AND node = ? AND seq <= ?
		ORDER BY seq`, owner, node, cut)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM pubsub_items WHERE owner = ? AND node = ? AND seq <= ?",
		owner, node, cut); err != nil {
		return nil, err
	}
	return ids, nil
}

// Node returns one node; storage.ErrNotFound if there is no such node.
func (s *Store) Node(ctx context.Context, owner, node string) (storage.PubSubNode, error) {
	if s.closed.Load() {
		return storage.PubSubNode{}, errClosed
	}
	n := storage.PubSubNode{Owner: owner, Node: node}
	err := s.r.QueryRowContext(ctx, `SELECT access_model, max_items, config FROM pubsub_nodes
		WHERE owner = ? AND node = ?`, owner, node).Scan(&n.AccessModel, &n.MaxItems, &n.Config)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.PubSubNode{}, fmt.Errorf("sqlite: node %q of %q: %w", node, owner, storage.ErrNotFound)
	}
	if err != nil {
		return storage.PubSubNode{}, fmt.Errorf("sqlite: node: %w", err)
	}
	n.Config = nonNil(n.Config)
	return n, nil
}

// Nodes returns every node of owner in bytewise ascending name order.
func (s *Store) Nodes(ctx context.Context, owner string) ([]storage.PubSubNode, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.r.QueryContext(ctx, `SELECT node, access_model, max_items, config FROM pubsub_nodes
		WHERE owner = ? ORDER BY node`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: nodes: %w", err)
	}
	defer rows.Close()
	var out []storage.PubSubNode
	for rows.Next() {
		n := storage.PubSubNode{Owner: owner}
		if err := rows.Scan(&n.Node, &n.AccessModel, &n.MaxItems, &n.Config); err != nil {
			return nil, fmt.Errorf("sqlite: nodes: %w", err)
		}
		n.Config = nonNil(n.Config)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: nodes: %w", err)
	}
	return out, nil
}

// DeleteNode removes a node and, by cascade, its items, affiliations and subscriptions; storage.ErrNotFound if
// there is no such node.
func (s *Store) DeleteNode(ctx context.Context, owner, node string) error {
	if s.closed.Load() {
		return errClosed
	}
	res, err := s.w.ExecContext(ctx, "DELETE FROM pubsub_nodes WHERE owner = ? AND node = ?", owner, node)
	if err != nil {
		return fmt.Errorf("sqlite: delete node: %w", err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: delete node: %w", err)
	} else if k == 0 {
		return fmt.Errorf("sqlite: node %q of %q: %w", node, owner, storage.ErrNotFound)
	}
	return nil
}

// Publish stores item as the node's newest and trims the node in the same transaction, returning the trimmed
// ids oldest first.
func (s *Store) Publish(ctx context.Context, owner, node string, item storage.PubSubItem, lim storage.PubSubLimits) ([]string, error) {
	if err := storage.CheckPubSubItem(item, lim); err != nil {
		return nil, fmt.Errorf("sqlite: publish: %w", err)
	}
	tx, err := s.writeTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: publish: %w", err)
	}
	defer tx.Rollback()
	var seq int64
	var n storage.PubSubNode
	err = tx.QueryRowContext(ctx, `UPDATE pubsub_nodes SET item_seq = item_seq + 1 WHERE owner = ? AND node = ?
		RETURNING item_seq, max_items`, owner, node).Scan(&seq, &n.MaxItems)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: node %q of %q: %w", node, owner, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: publish: %w", err)
	}
	if n.MaxItems == 0 && lim.MaxItems > 0 {
		var others int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pubsub_items WHERE owner = ? AND node = ? AND id <> ?`,
			owner, node, item.ID).Scan(&others); err != nil {
			return nil, fmt.Errorf("sqlite: publish: %w", err)
		}
		if others >= lim.MaxItems {
			return nil, fmt.Errorf("sqlite: publish: %w", &storage.LimitError{Limit: storage.LimitItems, Max: lim.MaxItems})
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO pubsub_items (owner, node, id, seq, publisher, ts, payload)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (owner, node, id) DO UPDATE SET seq = excluded.seq,
		publisher = excluded.publisher, ts = excluded.ts, payload = excluded.payload`,
		owner, node, item.ID, seq, item.Publisher, item.Time.UnixMicro(), nonNil(item.Payload)); err != nil {
		return nil, fmt.Errorf("sqlite: publish: %w", err)
	}
	trimmed, err := trimItems(ctx, tx, owner, node, storage.EffectiveMaxItems(n, lim))
	if err != nil {
		return nil, fmt.Errorf("sqlite: publish: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: publish: %w", err)
	}
	return trimmed, nil
}

// nodeExists reports storage.ErrNotFound unless the node exists, within q's transaction.
func nodeExists(ctx context.Context, tx *sql.Tx, owner, node string) error {
	var one int
	err := tx.QueryRowContext(ctx, "SELECT 1 FROM pubsub_nodes WHERE owner = ? AND node = ?", owner, node).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("node %q of %q: %w", node, owner, storage.ErrNotFound)
	}
	return err
}

// Retract removes one item; storage.ErrNotFound if there is no such node or item.
func (s *Store) Retract(ctx context.Context, owner, node, id string) error {
	tx, err := s.writeTx(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: retract: %w", err)
	}
	defer tx.Rollback()
	if err := nodeExists(ctx, tx, owner, node); err != nil {
		return fmt.Errorf("sqlite: retract: %w", err)
	}
	res, err := tx.ExecContext(ctx, "DELETE FROM pubsub_items WHERE owner = ? AND node = ? AND id = ?", owner, node, id)
	if err != nil {
		return fmt.Errorf("sqlite: retract: %w", err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: retract: %w", err)
	} else if k == 0 {
		return fmt.Errorf("sqlite: item %q of node %q: %w", id, node, storage.ErrNotFound)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: retract: %w", err)
	}
	return nil
}

// Items returns the selected items in publish order, oldest first; storage.ErrNotFound if there is no such
// node.
func (s *Store) Items(ctx context.Context, owner, node string, q storage.PubSubItemQuery) ([]storage.PubSubItem, error) {
	if q.IDs != nil && len(q.IDs) == 0 {
		q.IDs = nil
	}
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: items: %w", err)
	}
	defer tx.Rollback()
	if err := nodeExists(ctx, tx, owner, node); err != nil {
		return nil, fmt.Errorf("sqlite: items: %w", err)
	}
	var b strings.Builder
	b.WriteString("SELECT id, publisher, ts, payload FROM pubsub_items WHERE owner = ? AND node = ?")
	args := []any{owner, node}
	if len(q.IDs) > 0 {
		b.WriteString(" AND id IN (?")
		b.WriteString(strings.Repeat(", ?", len(q.IDs)-1))
		b.WriteString(")")
		for _, id := range q.IDs {
			args = append(args, id)
		}
	}
	// Newest first so that LIMIT takes the last ones; reversed below.
	b.WriteString(" ORDER BY seq DESC LIMIT ?")
	limit := -1
	if q.Last > 0 {
		limit = q.Last
	}
	args = append(args, limit)
	rows, err := tx.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: items: %w", err)
	}
	defer rows.Close()
	var out []storage.PubSubItem
	for rows.Next() {
		var it storage.PubSubItem
		var us int64
		if err := rows.Scan(&it.ID, &it.Publisher, &us, &it.Payload); err != nil {
			return nil, fmt.Errorf("sqlite: items: %w", err)
		}
		it.Time = time.UnixMicro(us).UTC()
		it.Payload = nonNil(it.Payload)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: items: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

// Purge removes every item of a node; storage.ErrNotFound if there is no such node.
func (s *Store) Purge(ctx context.Context, owner, node string) error {
	tx, err := s.writeTx(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: purge: %w", err)
	}
	defer tx.Rollback()
	if err := nodeExists(ctx, tx, owner, node); err != nil {
		return fmt.Errorf("sqlite: purge: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM pubsub_items WHERE owner = ? AND node = ?", owner, node); err != nil {
		return fmt.Errorf("sqlite: purge: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: purge: %w", err)
	}
	return nil
}

// SetNodeAffiliation inserts, replaces or (for storage.AffNone or "") removes an affiliation;
// storage.ErrNotFound if there is no such node.
func (s *Store) SetNodeAffiliation(ctx context.Context, owner, node string, a storage.PubSubAffiliation) error {
	tx, err := s.writeTx(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: set node affiliation: %w", err)
	}
	defer tx.Rollback()
	if err := nodeExists(ctx, tx, owner, node); err != nil {
		return fmt.Errorf("sqlite: set node affiliation: %w", err)
	}
	if a.Affiliation == "" || a.Affiliation == storage.AffNone {
		_, err = tx.ExecContext(ctx, "DELETE FROM pubsub_affiliations WHERE owner = ? AND node = ? AND jid = ?",
			owner, node, a.JID)
	} else {
		_, err = tx.ExecContext(ctx, `INSERT INTO pubsub_affiliations (owner, node, jid, affiliation) VALUES (?, ?, ?, ?)
			ON CONFLICT (owner, node, jid) DO UPDATE SET affiliation = excluded.affiliation`, owner, node, a.JID, a.Affiliation)
	}
	if err != nil {
		return fmt.Errorf("sqlite: set node affiliation: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: set node affiliation: %w", err)
	}
	return nil
}

// NodeAffiliations returns a node's affiliations in bytewise ascending JID order; storage.ErrNotFound if there
// is no such node.
func (s *Store) NodeAffiliations(ctx context.Context, owner, node string) ([]storage.PubSubAffiliation, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: node affiliations: %w", err)
	}
	defer tx.Rollback()
	if err := nodeExists(ctx, tx, owner, node); err != nil {
		return nil, fmt.Errorf("sqlite: node affiliations: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT jid, affiliation FROM pubsub_affiliations
		WHERE owner = ? AND node = ? ORDER BY jid`, owner, node)
	if err != nil {
		return nil, fmt.Errorf("sqlite: node affiliations: %w", err)
	}
	defer rows.Close()
	var out []storage.PubSubAffiliation
	for rows.Next() {
		var a storage.PubSubAffiliation
		if err := rows.Scan(&a.JID, &a.Affiliation); err != nil {
			return nil, fmt.Errorf("sqlite: node affiliations: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: node affiliations: %w", err)
	}
	return out, nil
}

// SetSubscription inserts, replaces or (for state "none" or "") removes a subscription; storage.ErrNotFound if
// there is no such node.
func (s *Store) SetSubscription(ctx context.Context, owner, node string, sub storage.PubSubSubscription) error {
	tx, err := s.writeTx(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: set subscription: %w", err)
	}
	defer tx.Rollback()
	if err := nodeExists(ctx, tx, owner, node); err != nil {
		return fmt.Errorf("sqlite: set subscription: %w", err)
	}
	if sub.State == "" || sub.State == "none" {
		_, err = tx.ExecContext(ctx, `DELETE FROM pubsub_subscriptions WHERE owner = ? AND node = ? AND jid = ?
			AND subid = ?`, owner, node, sub.JID, sub.SubID)
	} else {
		_, err = tx.ExecContext(ctx, `INSERT INTO pubsub_subscriptions (owner, node, jid, subid, state)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner, node, jid, subid) DO UPDATE SET state = excluded.state`,
			owner, node, sub.JID, sub.SubID, sub.State)
	}
	if err != nil {
		return fmt.Errorf("sqlite: set subscription: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: set subscription: %w", err)
	}
	return nil
}

// Subscriptions returns a node's explicit subscriptions in bytewise ascending (JID, SubID) order;
// storage.ErrNotFound if there is no such node.
func (s *Store) Subscriptions(ctx context.Context, owner, node string) ([]storage.PubSubSubscription, error) {
	tx, err := s.readTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: subscriptions: %w", err)
	}
	defer tx.Rollback()
	if err := nodeExists(ctx, tx, owner, node); err != nil {
		return nil, fmt.Errorf("sqlite: subscriptions: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT jid, subid, state FROM pubsub_subscriptions
		WHERE owner = ? AND node = ? ORDER BY jid, subid`, owner, node)
	if err != nil {
		return nil, fmt.Errorf("sqlite: subscriptions: %w", err)
	}
	defer rows.Close()
	var out []storage.PubSubSubscription
	for rows.Next() {
		var sub storage.PubSubSubscription
		if err := rows.Scan(&sub.JID, &sub.SubID, &sub.State); err != nil {
			return nil, fmt.Errorf("sqlite: subscriptions: %w", err)
		}
		out = append(out, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: subscriptions: %w", err)
	}
	return out, nil
}

// DeleteOwner removes every node of owner and, by cascade, everything in them.
func (s *Store) DeleteOwner(ctx context.Context, owner string) error {
	if s.closed.Load() {
		return errClosed
	}
	if _, err := s.w.ExecContext(ctx, "DELETE FROM pubsub_nodes WHERE owner = ?", owner); err != nil {
		return fmt.Errorf("sqlite: delete owner: %w", err)
	}
	return nil
}

var _ storage.PubSub = (*Store)(nil)
