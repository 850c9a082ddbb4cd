-- 0003_pubsub: publish-subscribe nodes and items (storage.PubSub; PostgreSQL dialect, storage/sqlite has the
-- same tables). PEP nodes are owned by the account's bare JID, service nodes by the service's JID.

-- item_seq hands out each item's seq: Publish increments it, which row-locks the node, so the node row is also
-- what serializes publishers of one node (and their trimming) across connections and cluster nodes.
CREATE TABLE pubsub_nodes (
	owner        TEXT COLLATE "C" NOT NULL,
	node         TEXT COLLATE "C" NOT NULL,
	access_model TEXT NOT NULL,
	max_items    INTEGER NOT NULL, -- 0: "max", the module's per-node limit
	config       BYTEA NOT NULL,   -- encoded by xmpp/pubsub, opaque here
	item_seq     BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (owner, node)
);

-- seq is the publish order within the node: a replaced item gets a new seq, so it becomes the newest.
CREATE TABLE pubsub_items (
	owner     TEXT COLLATE "C" NOT NULL,
	node      TEXT COLLATE "C" NOT NULL,
	id        TEXT COLLATE "C" NOT NULL,
	seq       BIGINT NOT NULL,
	publisher TEXT COLLATE "C" NOT NULL,
	ts        TIMESTAMPTZ NOT NULL,
	payload   BYTEA NOT NULL, -- as published, byte for byte
	PRIMARY KEY (owner, node, id),
	FOREIGN KEY (owner, node) REFERENCES pubsub_nodes (owner, node) ON DELETE CASCADE
);
CREATE UNIQUE INDEX pubsub_items_seq ON pubsub_items (owner, node, seq);

CREATE TABLE pubsub_affiliations (
	owner       TEXT COLLATE "C" NOT NULL,
	node        TEXT COLLATE "C" NOT NULL,
	jid         TEXT COLLATE "C" NOT NULL,
	affiliation TEXT NOT NULL,
	PRIMARY KEY (owner, node, jid),
	FOREIGN KEY (owner, node) REFERENCES pubsub_nodes (owner, node) ON DELETE CASCADE
);

CREATE TABLE pubsub_subscriptions (
	owner  TEXT COLLATE "C" NOT NULL,
	node   TEXT COLLATE "C" NOT NULL,
	jid    TEXT COLLATE "C" NOT NULL,
	subid  TEXT COLLATE "C" NOT NULL,
	state  TEXT NOT NULL,
	PRIMARY KEY (owner, node, jid, subid),
	FOREIGN KEY (owner, node) REFERENCES pubsub_nodes (owner, node) ON DELETE CASCADE
);
