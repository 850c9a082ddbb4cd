-- 0001_init: the first schema of every storage shape (SQLite dialect; storage/pg has the same tables).
--
-- Text is compared with SQLite's default BINARY collation, which is bytewise: names and keys sort as Go
-- sorts strings. Times are INTEGER unix microseconds (UTC), the precision storage/pg keeps too.

CREATE TABLE users (
	username TEXT NOT NULL PRIMARY KEY
) WITHOUT ROWID;

-- user_credentials holds one row per SCRAM mechanism; position keeps the order they were given in.
CREATE TABLE user_credentials (
	username   TEXT    NOT NULL REFERENCES users (username) ON DELETE CASCADE,
	position   INTEGER NOT NULL,
	mechanism  TEXT    NOT NULL,
	salt       BLOB    NOT NULL,
	iterations INTEGER NOT NULL,
	stored_key BLOB    NOT NULL,
	server_key BLOB    NOT NULL,
	PRIMARY KEY (username, position)
) WITHOUT ROWID;

-- Roster, key-value and archive rows are keyed by owner, not by a reference to users: rooms own data too.
-- DeleteUser removes an account's rows from each of them explicitly.

CREATE TABLE roster_items (
	owner        TEXT    NOT NULL,
	contact      TEXT    NOT NULL,
	name         TEXT    NOT NULL,
	subscription TEXT    NOT NULL,
	ask_out      INTEGER NOT NULL,
	pending_in   INTEGER NOT NULL,
	pre_approved INTEGER NOT NULL,
	group_names  TEXT    NOT NULL, -- JSON array of strings, in the order given
	PRIMARY KEY (owner, contact)
) WITHOUT ROWID;

CREATE TABLE roster_versions (
	owner   TEXT    NOT NULL PRIMARY KEY,
	version INTEGER NOT NULL
) WITHOUT ROWID;

-- counters holds store-wide sequences. Roster versions come from one so that a version is never handed out
-- twice, not even to a new account that reuses a deleted account's name (XEP-0237 clients cache by version).
CREATE TABLE counters (
	name  TEXT    NOT NULL PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('roster_version', 0);

CREATE TABLE kv (
	owner TEXT NOT NULL,
	key   TEXT NOT NULL,
	value BLOB NOT NULL,
	PRIMARY KEY (owner, key)
) WITHOUT ROWID;

-- archive_items holds every archive ("mam", "offline", "muc", ...). seq is the total order: AUTOINCREMENT
-- never hands out a number twice, not even after the newest rows are deleted, so ids used as paging
-- positions keep their place.
CREATE TABLE archive_items (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	archive   TEXT    NOT NULL,
	owner     TEXT    NOT NULL,
	id        TEXT    NOT NULL,
	with_jid  TEXT    NOT NULL,
	ts        INTEGER NOT NULL,
	origin_id TEXT    NOT NULL,
	data      BLOB    NOT NULL
);
CREATE UNIQUE INDEX archive_items_id ON archive_items (archive, owner, id);
-- Every SQLite index ends in the rowid (seq), so these also serve ORDER BY seq.
CREATE INDEX archive_items_owner ON archive_items (archive, owner);
CREATE INDEX archive_items_with ON archive_items (archive, owner, with_jid);
CREATE INDEX archive_items_ts ON archive_items (archive, ts);
CREATE INDEX archive_items_origin ON archive_items (archive, owner, origin_id, with_jid) WHERE origin_id <> '';
