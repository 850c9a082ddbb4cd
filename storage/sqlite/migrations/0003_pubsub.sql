-- 0003_pubsub: publish-subscribe nodes and items (storage.PubSub; SQLite dialect, storage/pg has the same
-- tables). PEP nodes are owned by the account's bare JID, service nodes by the service's JID.

-- item_seq hands out each item's seq: Publish increments it, so the node row is also what serializes
-- publishers of one node (and their trimming).
CREATE TABLE pubsub_nodes (
	owner        TEXT NOT NULL,
	node         TEXT NOT NULL,
	access_model TEXT NOT NULL,
	max_items    INTEGER NOT NULL, -- 0: "max", the module's per-node limit
	config       BLOB NOT NULL,    -- encoded by xmpp/pubsub, opaque here
	item_seq     INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (owner, node)
) WITHOUT ROWID;

-- seq is the publish order within the node: a replaced item gets a new seq, so it becomes the newest.
CREATE TABLE pubsub_items (
	owner     TEXT NOT NULL,
	node      TEXT NOT NULL,
	id        TEXT NOT NULL,
	seq       INTEGER NOT NULL,
	publisher TEXT NOT NULL,
	ts        INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
	payload   BLOB NOT NULL,    -- as published, byte for byte
	PRIMARY KEY (owner, node, id),
	FOREIGN KEY (owner, node) REFERENCES pubsub_nodes (owner, node) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE UNIQUE INDEX pubsub_items_seq ON pubsub_items (owner, node, seq);

CREATE TABLE pubsub_affiliations (
	owner       TEXT NOT NULL,
	node        TEXT NOT NULL,
	jid         TEXT NOT NULL,
	affiliation TEXT NOT NULL,
	PRIMARY KEY (owner, node, jid),
	FOREIGN KEY (owner, node) REFERENCES pubsub_nodes (owner, node) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE pubsub_subscriptions (
	owner  TEXT NOT NULL,
	node   TEXT NOT NULL,
	jid    TEXT NOT NULL,
	subid  TEXT NOT NULL,
	state  TEXT NOT NULL,
	PRIMARY KEY (owner, node, jid, subid),
	FOREIGN KEY (owner, node) REFERENCES pubsub_nodes (owner, node) ON DELETE CASCADE
) WITHOUT ROWID;
