package storagetest

import (
	"slices"
	"testing"

	"parley.im/parley/storage"
)

const (
	room1 = "dev@conference.localhost"
	room2 = "lobby@conference.localhost"
	room3 = "zoo@conference.localhost"
)

// rooms returns the store's storage.Rooms. Until storage.Store embeds Rooms, the suite reaches it by type
// assertion; every driver must implement it.
func rooms(t *testing.T, s storage.Store) storage.Rooms {
	t.Helper()
	r, ok := s.(storage.Rooms)
	if !ok {
		t.Fatalf("%T does not implement storage.Rooms", s)
	}
	return r
}

func sameAffs(t *testing.T, what string, got, want []storage.RoomAffiliation) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testRooms(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("RoundTrip", func(t *testing.T) {
		r := rooms(t, fresh(t, open))
		ctx := t.Context()
		_, err := r.Room(ctx, room1)
		wantErr(t, "Room of an absent room", err, storage.ErrNotFound)
		cfg := []byte(`{"name":"Dev","binary":"\u0000"}` + "\x00\xff")
		must(t, "PutRoom", r.PutRoom(ctx, room1, cfg))
		got, err := r.Room(ctx, room1)
		must(t, "Room", err)
		if string(got) != string(cfg) {
			t.Errorf("Room = %q, want %q", got, cfg)
		}
		must(t, "PutRoom (replace)", r.PutRoom(ctx, room1, []byte("v2")))
		got, err = r.Room(ctx, room1)
		must(t, "Room", err)
		if string(got) != "v2" {
			t.Errorf("Room after replace = %q, want v2", got)
		}
		must(t, "PutRoom with nil config", r.PutRoom(ctx, room2, nil))
		got, err = r.Room(ctx, room2)
		must(t, "Room", err)
		if got == nil || len(got) != 0 {
			t.Errorf("Room with nil config = %#v, want empty non-nil", got)
		}
	})

	t.Run("List", func(t *testing.T) {
		r := rooms(t, fresh(t, open))
		ctx := t.Context()
		list, err := r.ListRooms(ctx, "", 0)
		must(t, "ListRooms of none", err)
		if len(list) != 0 {
			t.Errorf("ListRooms of an empty store = %+v", list)
		}
		// Inserted out of order; "Zed" sorts before "dev" bytewise.
		for _, j := range []string{room3, room1, "Zed@conference.localhost", room2} {
			must(t, "PutRoom", r.PutRoom(ctx, j, []byte("cfg "+j)))
		}
		names := func(l []storage.RoomRecord) []string {
			var out []string
			for _, x := range l {
				if string(x.Config) != "cfg "+x.JID {
					t.Errorf("ListRooms: config of %s = %q", x.JID, x.Config)
				}
				out = append(out, x.JID)
			}
			return out
		}
		list, err = r.ListRooms(ctx, "", 0)
		must(t, "ListRooms", err)
		sameStrings(t, "ListRooms", names(list), []string{"Zed@conference.localhost", room1, room2, room3})
		list, err = r.ListRooms(ctx, room1, 1)
		must(t, "ListRooms", err)
		sameStrings(t, "ListRooms after dev, limit 1", names(list), []string{room2})
		list, err = r.ListRooms(ctx, room2, -1)
		must(t, "ListRooms", err)
		sameStrings(t, "ListRooms after lobby, no limit", names(list), []string{room3})
	})

	t.Run("Affiliations", func(t *testing.T) {
		r := rooms(t, fresh(t, open))
		ctx := t.Context()
		err := r.SetAffiliation(ctx, room1, storage.RoomAffiliation{JID: alice, Affiliation: storage.AffOwner})
		wantErr(t, "SetAffiliation in an absent room", err, storage.ErrNotFound)
		_, err = r.Affiliations(ctx, room1)
		wantErr(t, "Affiliations of an absent room", err, storage.ErrNotFound)

		must(t, "PutRoom", r.PutRoom(ctx, room1, []byte("c")))
		must(t, "PutRoom", r.PutRoom(ctx, room2, []byte("c")))
		affs, err := r.Affiliations(ctx, room1)
		must(t, "Affiliations of a room without any", err)
		sameAffs(t, "Affiliations of a room without any", affs, nil)

		want := []storage.RoomAffiliation{
			{JID: "Zoe@localhost", Affiliation: storage.AffMember, Nick: "zoe"},
			{JID: alice, Affiliation: storage.AffOwner},
			{JID: carol, Affiliation: storage.AffAdmin, Nick: "Carol 'C'"},
			{JID: "evil.example", Affiliation: storage.AffOutcast, Reason: "spam \u00e9\U0001F600"},
		}
		for _, i := range []int{3, 1, 0, 2} {
			must(t, "SetAffiliation", r.SetAffiliation(ctx, room1, want[i]))
		}
		must(t, "SetAffiliation in the other room", r.SetAffiliation(ctx, room2,
			storage.RoomAffiliation{JID: bob, Affiliation: storage.AffMember}))
		affs, err = r.Affiliations(ctx, room1)
		must(t, "Affiliations", err)
		sameAffs(t, "Affiliations", affs, want)

		// Replace: the whole record changes.
		want[2] = storage.RoomAffiliation{JID: carol, Affiliation: storage.AffMember}
		must(t, "SetAffiliation (replace)", r.SetAffiliation(ctx, room1, want[2]))
		// Remove, both spellings; removing an absent record is not an error.
		must(t, "SetAffiliation none", r.SetAffiliation(ctx, room1,
			storage.RoomAffiliation{JID: "Zoe@localhost", Affiliation: storage.AffNone}))
		must(t, "SetAffiliation empty", r.SetAffiliation(ctx, room1, storage.RoomAffiliation{JID: "evil.example"}))
		must(t, "SetAffiliation none of an absent record", r.SetAffiliation(ctx, room1,
			storage.RoomAffiliation{JID: "nobody@localhost", Affiliation: storage.AffNone}))
		affs, err = r.Affiliations(ctx, room1)
		must(t, "Affiliations", err)
		sameAffs(t, "Affiliations after replace and remove", affs, []storage.RoomAffiliation{want[1], want[2]})
		affs, err = r.Affiliations(ctx, room2)
		must(t, "Affiliations", err)
		sameAffs(t, "Affiliations of the other room", affs,
			[]storage.RoomAffiliation{{JID: bob, Affiliation: storage.AffMember}})

		// Replacing the configuration keeps the affiliations.
		must(t, "PutRoom (replace)", r.PutRoom(ctx, room1, []byte("c2")))
		affs, err = r.Affiliations(ctx, room1)
		must(t, "Affiliations", err)
		sameAffs(t, "Affiliations after PutRoom", affs, []storage.RoomAffiliation{want[1], want[2]})
	})

	t.Run("Delete", func(t *testing.T) {
		r := rooms(t, fresh(t, open))
		ctx := t.Context()
		wantErr(t, "DeleteRoom of an absent room", r.DeleteRoom(ctx, room1), storage.ErrNotFound)
		for _, j := range []string{room1, room2} {
			must(t, "PutRoom", r.PutRoom(ctx, j, []byte("c")))
			must(t, "SetAffiliation", r.SetAffiliation(ctx, j,
				storage.RoomAffiliation{JID: alice, Affiliation: storage.AffOwner}))
		}
		must(t, "DeleteRoom", r.DeleteRoom(ctx, room1))
		_, err := r.Room(ctx, room1)
		wantErr(t, "Room after DeleteRoom", err, storage.ErrNotFound)
		_, err = r.Affiliations(ctx, room1)
		wantErr(t, "Affiliations after DeleteRoom", err, storage.ErrNotFound)
		// A room created again with the same JID starts without the old affiliations.
		must(t, "PutRoom again", r.PutRoom(ctx, room1, []byte("c")))
		affs, err := r.Affiliations(ctx, room1)
		must(t, "Affiliations", err)
		sameAffs(t, "Affiliations of a re-created room", affs, nil)
		affs, err = r.Affiliations(ctx, room2)
		must(t, "Affiliations", err)
		sameAffs(t, "the other room keeps its affiliations", affs,
			[]storage.RoomAffiliation{{JID: alice, Affiliation: storage.AffOwner}})
	})
}
