-- 0001_init: the first schema of every storage shape (PostgreSQL dialect; storage/sqlite has the same tables).
--
-- Names, keys and ids are COLLATE "C": they compare and sort bytewise, as Go sorts strings and as SQLite
-- does, whatever the database's default collation; and prefix ranges use plain btree indexes.
-- Tables are created unqualified, in the first schema of the connection's search_path.

CREATE TABLE users (
	username TEXT COLLATE "C" NOT NULL PRIMARY KEY
);

-- user_credentials holds one row per SCRAM mechanism; position keeps the order they were given in.
CREATE TABLE user_credentials (
	username   TEXT COLLATE "C" NOT NULL REFERENCES users (username) ON DELETE CASCADE,
	position   INTEGER NOT NULL,
	mechanism  TEXT    NOT NULL,
	salt       BYTEA   NOT NULL,
	iterations INTEGER NOT NULL,
	stored_key BYTEA   NOT NULL,
	server_key BYTEA   NOT NULL,
	PRIMARY KEY (username, position)
);

-- Roster, key-value and archive rows are keyed by owner, not by a reference to users: rooms own data too.
-- DeleteUser removes an account's rows from each of them explicitly.

CREATE TABLE roster_items (
	owner        TEXT COLLATE "C" NOT NULL,
	contact      TEXT COLLATE "C" NOT NULL,
	name         TEXT    NOT NULL,
	subscription TEXT    NOT NULL,
	ask_out      BOOLEAN NOT NULL,
	pending_in   BOOLEAN NOT NULL,
	pre_approved BOOLEAN NOT NULL,
	group_names  TEXT[]  NOT NULL, -- in the order given
	PRIMARY KEY (owner, contact)
);

CREATE TABLE roster_versions (
	owner   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	version BIGINT NOT NULL
);

-- Every roster version comes from this sequence, so that a version is never handed out twice, not even to
-- a new account that reuses a deleted account's name (XEP-0237 clients cache rosters by version).
CREATE SEQUENCE roster_version_seq;

CREATE TABLE kv (
	owner TEXT COLLATE "C" NOT NULL,
	key   TEXT COLLATE "C" NOT NULL,
	value BYTEA NOT NULL,
	PRIMARY KEY (owner, key)
);

-- archive_items holds every archive ("mam", "offline", "muc", ...). seq is the total order.
CREATE TABLE archive_items (
	seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	archive   TEXT COLLATE "C" NOT NULL,
	owner     TEXT COLLATE "C" NOT NULL,
	id        TEXT COLLATE "C" NOT NULL,
	with_jid  TEXT COLLATE "C" NOT NULL,
	ts        TIMESTAMPTZ NOT NULL,
	origin_id TEXT COLLATE "C" NOT NULL,
	data      BYTEA NOT NULL
);
CREATE UNIQUE INDEX archive_items_id ON archive_items (archive, owner, id);
CREATE INDEX archive_items_owner ON archive_items (archive, owner, seq);
CREATE INDEX archive_items_with ON archive_items (archive, owner, with_jid, seq);
CREATE INDEX archive_items_ts ON archive_items (archive, ts);
CREATE INDEX archive_items_origin ON archive_items (archive, owner, origin_id, with_jid) WHERE origin_id <> '';
