-- 0002_rooms: persistent multi-user chat rooms (storage.Rooms; PostgreSQL dialect, storage/sqlite has the same
-- tables).
--
-- A room's history is not here: it is the "muc" archive in archive_items, owned by the room's JID.

CREATE TABLE rooms (
	jid    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	config BYTEA NOT NULL -- encoded by the MUC module, opaque here
);

-- room_affiliations holds owner, admin, member and outcast records; "none" is the absence of a row.
CREATE TABLE room_affiliations (
	room        TEXT COLLATE "C" NOT NULL REFERENCES rooms (jid) ON DELETE CASCADE,
	jid         TEXT COLLATE "C" NOT NULL,
	affiliation TEXT NOT NULL,
	nick        TEXT NOT NULL,
	reason      TEXT NOT NULL,
	PRIMARY KEY (room, jid)
);
