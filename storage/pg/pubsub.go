package pg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"parley.im/parley/storage"
)

// CreateNode creates a node; storage.ErrConflict if it exists, a *storage.LimitError if the owner has
// lim.MaxNodes nodes or n.MaxItems exceeds lim.MaxItems. A transaction-level advisory lock per owner
// serializes the count and the insert, so that two creations at once (two cluster nodes) cannot both pass the
// limit.
func (s *Store) CreateNode(ctx context.Context, n storage.PubSubNode, lim storage.PubSubLimits) error {
	if err := storage.CheckPubSubNode(n, lim); err != nil {
		return fmt.Errorf("pg: create node: %w", err)
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("pg: create node: %w", err)
	}
	defer tx.Rollback(context.Background())
	if lim.MaxNodes > 0 {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('pubsub ' || $1, 0))", n.Owner); err != nil {
			return fmt.Errorf("pg: create node: %w", err)
		}
		var count int
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(bool_or(node = $2), false) FROM pubsub_nodes
			WHERE owner = $1`, n.Owner, n.Node).Scan(&count, &exists); err != nil {
			return fmt.Errorf("pg: create node: %w", err)
		}
		if !exists && count >= lim.MaxNodes {
			return fmt.Errorf("pg: create node: %w", &storage.LimitError{Limit: storage.LimitNodes, Max: lim.MaxNodes})
		}
	}
	tag, err := tx.Exec(ctx, `INSERT INTO pubsub_nodes (owner, node, access_model, max_items, config)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, n.Owner, n.Node, n.AccessModel, max(n.MaxItems, 0),
		nonNil(n.Config))
	if err != nil {
		return fmt.Errorf("pg: create node: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pg: create node %q of %q: %w", n.Node, n.Owner, storage.ErrConflict)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pg: create node: %w", err)
	}
	return nil
}

// ConfigureNode replaces a node's configuration and trims it to its new maximum, returning the trimmed ids
// oldest first; storage.ErrNotFound if there is no such node.
func (s *Store) ConfigureNode(ctx context.Context, n storage.PubSubNode, lim storage.PubSubLimits) ([]string, error) {
	if err := storage.CheckPubSubNode(n, lim); err != nil {
		return nil, fmt.Errorf("pg: configure node: %w", err)
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("pg: configure node: %w", err)
	}
	defer tx.Rollback(context.Background())
	// The UPDATE row-locks the node, as Publish does, so trimming here and there never interleave.
	tag, err := tx.Exec(ctx, `UPDATE pubsub_nodes SET access_model = $3, max_items = $4, config = $5
		WHERE owner = $1 AND node = $2`, n.Owner, n.Node, n.AccessModel, max(n.MaxItems, 0), nonNil(n.Config))
	if err != nil {
		return nil, fmt.Errorf("pg: configure node: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil, fmt.Errorf("pg: node %q of %q: %w", n.Node, n.Owner, storage.ErrNotFound)
	}
	trimmed, err := trimItems(ctx, tx, n.Owner, n.Node, storage.EffectiveMaxItems(n, lim))
	if err != nil {
		return nil, fmt.Errorf("pg: configure node: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("pg: configure node: %w", err)
	}
	return trimmed, nil
}

// trimItems removes the oldest items of a node beyond keep (0: keep all) and returns their ids, oldest first.
// The caller holds the node's row lock.
func trimItems(ctx context.Context, tx pgx.Tx, owner, node string, keep int) ([]string, error) {
	if keep <= 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `WITH gone AS (
			DELETE FROM pubsub_items WHERE owner = $1 AND node = $2 AND seq <= (
				SELECT seq FROM pubsub_items WHERE owner = $1 AND node = $2 ORDER BY seq DESC LIMIT 1 OFFSET $3)
			RETURNING id, seq)
		SELECT id FROM gone ORDER BY seq`, owner, node, keep)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Node returns one node; storage.ErrNotFound if there is no such node.
func (s *Store) Node(ctx context.Context, owner, node string) (storage.PubSubNode, error) {
	if s.closed.Load() {
		return storage.PubSubNode{}, errClosed
	}
	n := storage.PubSubNode{Owner: owner, Node: node}
	err := s.pool.QueryRow(ctx, `SELECT access_model, max_items, config FROM pubsub_nodes
		WHERE owner = $1 AND node = $2`, owner, node).Scan(&n.AccessModel, &n.MaxItems, &n.Config)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.PubSubNode{}, fmt.Errorf("pg: node %q of %q: %w", node, owner, storage.ErrNotFound)
	}
	if err != nil {
		return storage.PubSubNode{}, fmt.Errorf("pg: node: %w", err)
	}
	n.Config = nonNil(n.Config)
	return n, nil
}

// Nodes returns every node of owner in bytewise ascending name order.
func (s *Store) Nodes(ctx context.Context, owner string) ([]storage.PubSubNode, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.pool.Query(ctx, `SELECT node, access_model, max_items, config FROM pubsub_nodes
		WHERE owner = $1 ORDER BY node`, owner)
	if err != nil {
		return nil, fmt.Errorf("pg: nodes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.PubSubNode, error) {
		n := storage.PubSubNode{Owner: owner}
		err := r.Scan(&n.Node, &n.AccessModel, &n.MaxItems, &n.Config)
		n.Config = nonNil(n.Config)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("pg: nodes: %w", err)
	}
	return out, nil
}

// DeleteNode removes a node and, by cascade, its items, affiliations and subscriptions; storage.ErrNotFound if
// there is no such node.
func (s *Store) DeleteNode(ctx context.Context, owner, node string) error {
	if s.closed.Load() {
		return errClosed
	}
	tag, err := s.pool.Exec(ctx, "DELETE FROM pubsub_nodes WHERE owner = $1 AND node = $2", owner, node)
	if err != nil {
		return fmt.Errorf("pg: delete node: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pg: node %q of %q: %w", node, owner, storage.ErrNotFound)
	}
	return nil
}

// Publish stores item as the node's newest and trims the node in the same transaction, returning the trimmed
// ids oldest first. Incrementing the node's item_seq row-locks it: publishers of one node take turns.
func (s *Store) Publish(ctx context.Context, owner, node string, item storage.PubSubItem, lim storage.PubSubLimits) ([]string, error) {
	if err := storage.CheckPubSubItem(item, lim); err != nil {
		return nil, fmt.Errorf("pg: publish: %w", err)
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("pg: publish: %w", err)
	}
	defer tx.Rollback(context.Background())
	var seq int64
	var n storage.PubSubNode
	err = tx.QueryRow(ctx, `UPDATE pubsub_nodes SET item_seq = item_seq + 1 WHERE owner = $1 AND node = $2
		RETURNING item_seq, max_items`, owner, node).Scan(&seq, &n.MaxItems)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pg: node %q of %q: %w", node, owner, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pg: publish: %w", err)
	}
	if n.MaxItems == 0 && lim.MaxItems > 0 {
		var others int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM pubsub_items WHERE owner = $1 AND node = $2 AND id <> $3`,
			owner, node, item.ID).Scan(&others); err != nil {
			return nil, fmt.Errorf("pg: publish: %w", err)
		}
		if others >= lim.MaxItems {
			return nil, fmt.Errorf("pg: publish: %w", &storage.LimitError{Limit: storage.LimitItems, Max: lim.MaxItems})
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO pubsub_items (owner, node, id, seq, publisher, ts, payload)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (owner, node, id) DO UPDATE SET seq = excluded.seq,
		publisher = excluded.publisher, ts = excluded.ts, payload = excluded.payload`,
		owner, node, item.ID, seq, item.Publisher, item.Time.UTC(), nonNil(item.Payload)); err != nil {
		return nil, fmt.Errorf("pg: publish: %w", err)
	}
	trimmed, err := trimItems(ctx, tx, owner, node, storage.EffectiveMaxItems(n, lim))
	if err != nil {
		return nil, fmt.Errorf("pg: publish: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("pg: publish: %w", err)
	}
	return trimmed, nil
}

// nodeExists returns storage.ErrNotFound unless the node exists, within tx.
func nodeExists(ctx context.Context, tx pgx.Tx, owner, node string) error {
	tag, err := tx.Exec(ctx, "SELECT FROM pubsub_nodes WHERE owner = $1 AND node = $2", owner, node)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("node %q of %q: %w", node, owner, storage.ErrNotFound)
	}
	return nil
}

// Retract removes one item; storage.ErrNotFound if there is no such node or item.
func (s *Store) Retract(ctx context.Context, owner, node, id string) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("pg: retract: %w", err)
	}
	defer tx.Rollback(context.Background())
	if err := nodeExists(ctx, tx, owner, node); err != nil {
		return fmt.Errorf("pg: retract: %w", err)
	}
	tag, err := tx.Exec(ctx, "DELETE FROM pubsub_items WHERE owner = $1 AND node = $2 AND id = $3", owner, node, id)
	if err != nil {
		return fmt.Errorf("pg: retract: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pg: item %q of node %q: %w", id, node, storage.ErrNotFound)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pg: retract: %w", err)
	}
	return nil
}

// Items returns the selected items in publish order, oldest first; storage.ErrNotFound if there is no such
// node.
func (s *Store) Items(ctx context.Context, owner, node string, q storage.PubSubItemQuery) ([]storage.PubSubItem, error) {
	tx, err := s.beginRead(ctx)
	if err != nil {
		return nil, fmt.Errorf("pg: items: %w", err)
	}
	defer tx.Rollback(context.Background())
	if err := nodeExists(ctx, tx, owner, node); err != nil {
		return nil, fmt.Errorf("pg: items: %w", err)
	}
	var ids []string // NULL: every id
	if len(q.IDs) > 0 {
		ids = q.IDs
	}
	var lim *int // NULL: LIMIT ALL
	if q.Last > 0 {
		lim = &q.Last
	}
	// Newest first so that LIMIT takes the last ones; reversed below.
	rows, err := tx.Query(ctx, `SELECT id, publisher, ts, payload FROM pubsub_items
		WHERE owner = $1 AND node = $2 AND ($3::text[] IS NULL OR id = ANY ($3))
		ORDER BY seq DESC LIMIT $4`, owner, node, ids, lim)
	if err != nil {
		return nil, fmt.Errorf("pg: items: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.PubSubItem, error) {
		var it storage.PubSubItem
		var ts time.Time
		err := r.Scan(&it.ID, &it.Publisher, &ts, &it.Payload)
		it.Time = ts.UTC()
		it.Payload = nonNil(it.Payload)
		return it, err
	})
	if err != nil {
		return nil, fmt.Errorf("pg: items: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("pg: items: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

// Purge removes every item of a node; storage.ErrNotFound if there is no such node.
func (s *Store) Purge(ctx context.Context, owner, node string) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("pg: purge: %w", err)
	}
	defer tx.Rollback(context.Background())
	if err := nodeExists(ctx, tx, owner, node); err != nil {
		return fmt.Errorf("pg: purge: %w", err)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM pubsub_items WHERE owner = $1 AND node = $2", owner, node); err != nil {
		return fmt.Errorf("pg: purge: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pg: purge: %w", err)
	}
	return nil
}

// SetNodeAffiliation inserts, replaces or (for storage.AffNone or "") removes an affiliation;
// storage.ErrNotFound if there is no such node.
func (s *Store) SetNodeAffiliation(ctx context.Context, owner, node string, a storage.PubSubAffiliation) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("pg: set node affiliation: %w", err)
	}
	defer tx.Rollback(context.Background())
	if err := nodeExists(ctx, tx, owner, node); err != nil {
		return fmt.Errorf("pg: set node affiliation: %w", err)
	}
	if a.Affiliation == "" || a.Affiliation == storage.AffNone {
		_, err = tx.Exec(ctx, "DELETE FROM pubsub_affiliations WHERE owner = $1 AND node = $2 AND jid = $3",
			owner, node, a.JID)
	} else {
		_, err = tx.Exec(ctx, `INSERT INTO pubsub_affiliations (owner, node, jid, affiliation) VALUES ($1, $2, $3, $4)
			ON CONFLICT (owner, node, jid) DO UPDATE SET affiliation = excluded.affiliation`, owner, node, a.JID, a.Affiliation)
	}
	if err != nil {
		return fmt.Errorf("pg: set node affiliation: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pg: set node affiliation: %w", err)
	}
	return nil
}

// NodeAffiliations returns a node's affiliations in bytewise ascending JID order; storage.ErrNotFound if there
// is no such node.
func (s *Store) NodeAffiliations(ctx context.Context, owner, node string) ([]storage.PubSubAffiliation, error) {
	tx, err := s.beginRead(ctx)
	if err != nil {
		return nil, fmt.Errorf("pg: node affiliations: %w", err)
	}
	defer tx.Rollback(context.Background())
	if err := nodeExists(ctx, tx, owner, node); err != nil {
		return nil, fmt.Errorf("pg: node affiliations: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT jid, affiliation FROM pubsub_affiliations
		WHERE owner = $1 AND node = $2 ORDER BY jid`, owner, node)
	if err != nil {
		return nil, fmt.Errorf("pg: node affiliations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.PubSubAffiliation, error) {
		var a storage.PubSubAffiliation
		return a, r.Scan(&a.JID, &a.Affiliation)
	})
	if err != nil {
		return nil, fmt.Errorf("pg: node affiliations: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("pg: node affiliations: %w", err)
	}
	return out, nil
}

// SetSubscription inserts, replaces or (for state "none" or "") removes a subscription; storage.ErrNotFound if
// there is no such node.
func (s *Store) SetSubscription(ctx context.Context, owner, node string, sub storage.PubSubSubscription) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("pg: set subscription: %w", err)
	}
	defer tx.Rollback(context.Background())
	if err := nodeExists(ctx, tx, owner, node); err != nil {
		return fmt.Errorf("pg: set subscription: %w", err)
	}
	if sub.State == "" || sub.State == "none" {
		_, err = tx.Exec(ctx, `DELETE FROM pubsub_subscriptions WHERE owner = $1 AND node = $2 AND jid = $3
			AND subid = $4`, owner, node, sub.JID, sub.SubID)
	} else {
		_, err = tx.Exec(ctx, `INSERT INTO pubsub_subscriptions (owner, node, jid, subid, state)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner, node, jid, subid) DO UPDATE SET state = excluded.state`,
			owner, node, sub.JID, sub.SubID, sub.State)
	}
	if err != nil {
		return fmt.Errorf("pg: set subscription: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pg: set subscription: %w", err)
	}
	return nil
}

// Subscriptions returns a node's explicit subscriptions in bytewise ascending (JID, SubID) order;
// storage.ErrNotFound if there is no such node.
func (s *Store) Subscriptions(ctx context.Context, owner, node string) ([]storage.PubSubSubscription, error) {
	tx, err := s.beginRead(ctx)
	if err != nil {
		return nil, fmt.Errorf("pg: subscriptions: %w", err)
	}
	defer tx.Rollback(context.Background())
	if err := nodeExists(ctx, tx, owner, node); err != nil {
		return nil, fmt.Errorf("pg: subscriptions: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT jid, subid, state FROM pubsub_subscriptions
		WHERE owner = $1 AND node = $2 ORDER BY jid, subid`, owner, node)
	if err != nil {
		return nil, fmt.Errorf("pg: subscriptions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.PubSubSubscription, error) {
		var sub storage.PubSubSubscription
		return sub, r.Scan(&sub.JID, &sub.SubID, &sub.State)
	})
	if err != nil {
		return nil, fmt.Errorf("pg: subscriptions: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("pg: subscriptions: %w", err)
	}
	return out, nil
}

// DeleteOwner removes every node of owner and, by cascade, everything in them.
func (s *Store) DeleteOwner(ctx context.Context, owner string) error {
	if s.closed.Load() {
		return errClosed
	}
	if _, err := s.pool.Exec(ctx, "DELETE FROM pubsub_nodes WHERE owner = $1", owner); err != nil {
		return fmt.Errorf("pg: delete owner: %w", err)
	}
	return nil
}

// beginRead starts a read-only transaction with one snapshot for all its statements, so that a node's
// existence and its rows are read consistently.
func (s *Store) beginRead(ctx context.Context) (pgx.Tx, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	return s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
}

var _ storage.PubSub = (*Store)(nil)
