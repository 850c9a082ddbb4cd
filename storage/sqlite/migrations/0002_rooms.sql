-- 0002_rooms: persistent multi-user chat rooms (storage.Rooms; SQLite dialect, storage/pg has the same tables).
--
-- A room's history is not here: it is the "muc" archive in archive_items, owned by the room's JID.

CREATE TABLE rooms (
	jid    TEXT NOT NULL PRIMARY KEY,
	config BLOB NOT NULL -- encoded by the MUC module, opaque here
) WITHOUT ROWID;

-- room_affiliations holds owner, admin, member and outcast records; "none" is the absence of a row.
CREATE TABLE room_affiliations (
	room        TEXT NOT NULL REFERENCES rooms (jid) ON DELETE CASCADE,
	jid         TEXT NOT NULL,
	affiliation TEXT NOT NULL,
	nick        TEXT NOT NULL,
	reason      TEXT NOT NULL,
	PRIMARY KEY (room, jid)
) WITHOUT ROWID;
