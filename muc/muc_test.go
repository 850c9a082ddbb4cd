package muc

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/form"
	"parley.im/parley/xmpp/module"
)

const (
	alice = "alice@localhost/phone"
	bob   = "bob@localhost/laptop"
	carol = "carol@localhost/desk"
	dave  = "dave@localhost/tab"
)

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		err string
	}{
		{Config{}, ""},
		{Config{Domain: "muc.example.net", MaxOccupants: 1000, MaxOccupantsLimit: 10000, Create: "admins",
			Admins: []string{"root@example.net"}}, ""},
		{Config{Domain: "a@b"}, "muc.domain"},
		{Config{MaxOccupants: 20000}, "muc.max_occupants"},
		{Config{MaxOccupants: 500, MaxOccupantsLimit: 200}, "muc.max_occupants_limit"},
		{Config{HistoryDefault: 5000}, "muc.history_default"},
		{Config{Create: "everybody"}, "muc.create"},
		{Config{Admins: []string{"x@y/z"}}, "muc.admins"},
	} {
		err := c.cfg.Validate()
		if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("Validate(%+v) = %v, want %q", c.cfg, err, c.err)
		}
	}
}

func TestDefaultDomainAndDisco(t *testing.T) {
	e := newEnv(t, Config{})
	if got := e.m.ServiceJID().String(); got != svc {
		t.Fatalf("service JID = %s, want %s", got, svc)
	}
	e.in("<iq type='get' id='d1' from='" + alice + "' to='" + svc + "'><query xmlns='" + NSDiscoInfo + "'/></iq>")
	e.expect(alice, "type='result'", "category='conference'", "var='"+NS+"'")
}

// An instant room (XEP-0045 10.1.2): created locked with 201, opened by an empty submitted form.
func TestCreateInstantRoom(t *testing.T) {
	e := newEnv(t, Config{})
	e.join(alice, "Alice")
	self := e.expect(alice, "from='"+roomJ+"/Alice'", "status code='110'", "status code='201'",
		"affiliation='owner'", "role='moderator'")
	if !strings.Contains(self, "status code='170'") {
		t.Errorf("self-presence without 170 (logging): %s", self)
	}
	e.expect(alice, "<subject></subject>")

	e.join(bob, "Bob")
	e.expect(bob, "type='error'", "item-not-found")
	e.in("<iq type='get' id='i1' from='" + bob + "' to='" + roomJ + "'><query xmlns='" + NSDiscoInfo + "'/></iq>")
	e.expect(bob, "type='error'", "item-not-found")

	e.in("<iq type='set' id='c1' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSOwner +
		"'><x xmlns='jabber:x:data' type='submit'/></query></iq>")
	e.expect(alice, "type='result'", "id='c1'")
	e.join(bob, "Bob")
	e.expect(bob, "from='"+roomJ+"/Alice'", "affiliation='owner'")
	if s := e.expect(bob, "from='"+roomJ+"/Bob'", "status code='110'"); strings.Contains(s, "201") {
		t.Errorf("second occupant got 201: %s", s)
	}
	// Semi-anonymous by default: Bob does not see Alice's JID, the moderator Alice sees Bob's.
	e.expect(alice, "from='"+roomJ+"/Bob'", "jid='"+bob+"'")
	e.in("<iq type='get' id='i2' from='" + bob + "' to='" + roomJ + "'><query xmlns='" + NSDiscoInfo + "'/></iq>")
	e.expect(bob, "type='result'", "muc_temporary", "muc_semianonymous", "muc_open", NSRoomInfo, "urn:xmpp:mam:2")
}

// A reserved room (XEP-0045 10.1.3): the owner fetches the form and submits it.
func TestReservedRoomConfiguration(t *testing.T) {
	e := newEnv(t, Config{})
	e.join(alice, "Alice")
	e.clear()
	e.in("<iq type='get' id='f1' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSOwner + "'/></iq>")
	form := e.expect(alice, "type='result'", "muc#roomconfig_membersonly", "muc#roomconfig_whois",
		"muc#roomconfig_maxusers", "muc#roomconfig_historylength")
	if !strings.Contains(form, "<value>100</value>") {
		t.Errorf("form without the default maxusers: %s", form)
	}
	e.in("<iq type='get' id='f2' from='" + bob + "' to='" + roomJ + "'><query xmlns='" + NSOwner + "'/></iq>")
	e.expect(bob, "type='error'", "item-not-found") // locked: invisible to others

	e.in("<iq type='set' id='f3' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSOwner + "'>" +
		"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>" + NSRoomConfig + "</value></field>" +
		"<field var='muc#roomconfig_maxusers'><value>20000</value></field></x></query></iq>")
	e.expect(alice, "type='error'", "not-acceptable")
	e.in("<iq type='set' id='f4' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSOwner + "'>" +
		"<x xmlns='jabber:x:data' type='submit'>" +
		"<field var='muc#roomconfig_roomname'><value>The Room</value></field>" +
		"<field var='muc#roomconfig_roomdesc'><value>Talk &amp; more</value></field>" +
		"<field var='muc#roomconfig_persistentroom'><value>1</value></field>" +
		"<field var='muc#roomconfig_whois'><value>anyone</value></field>" +
		"<field var='muc#roomconfig_maxusers'><value>1000</value></field>" +
		"<field var='muc#roomconfig_enablelogging'><value>1</value></field>" +
		"</x></query></iq>")
	e.expect(alice, "type='result'", "id='f4'")
	if _, err := e.rooms.Room(t.Context(), roomJ); err != nil {
		t.Fatalf("persistent room not stored: %v", err)
	}
	affs, _ := e.rooms.Affiliations(t.Context(), roomJ)
	if len(affs) != 1 || affs[0].JID != "alice@localhost" || affs[0].Affiliation != storage.AffOwner {
		t.Errorf("stored affiliations = %+v", affs)
	}
	e.in("<iq type='get' id='i1' from='" + bob + "' to='" + roomJ + "'><query xmlns='" + NSDiscoInfo + "'/></iq>")
	e.expect(bob, "name='The Room'", "muc_persistent", "muc_nonanonymous", "Talk &amp; more", "<value>1000</value>")
	// Non-anonymous: 100 on entering, and everyone sees real JIDs.
	e.join(bob, "Bob")
	e.expect(bob, "from='"+roomJ+"/Alice'", "jid='"+alice+"'")
	e.expect(bob, "status code='100'", "status code='110'")
	// Cancelling the configuration of an unlocked room changes nothing.
	e.in("<iq type='set' id='f5' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSOwner +
		"'><x xmlns='jabber:x:data' type='cancel'/></query></iq>")
	e.expect(alice, "type='result'", "id='f5'")
	// Switching back to semi-anonymous tells the occupants: 104 and 173.
	e.in("<iq type='set' id='f6' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSOwner + "'>" +
		"<x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_whois'><value>moderators</value></field>" +
		"</x></query></iq>")
	e.expect(bob, "<message", "status code='104'", "status code='173'")
	e.in("<iq type='set' id='f7' from='" + bob + "' to='" + roomJ + "'><query xmlns='" + NSOwner +
		"'><x xmlns='jabber:x:data' type='submit'/></query></iq>")
	e.expect(bob, "type='error'", "forbidden")
}

func TestCancelInitialConfigurationDestroys(t *testing.T) {
	e := newEnv(t, Config{})
	e.join(alice, "Alice")
	e.clear()
	e.in("<iq type='set' id='x' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSOwner +
		"'><x xmlns='jabber:x:data' type='cancel'/></query></iq>")
	e.expect(alice, "type='unavailable'", "<destroy")
	e.expect(alice, "type='result'")
	if e.m.Stats.Rooms.Load() != 0 {
		t.Fatalf("rooms = %d after cancel, want 0", e.m.Stats.Rooms.Load())
	}
}

func TestCreationRestricted(t *testing.T) {
	e := newEnv(t, Config{Create: "admins", Admins: []string{"root@localhost"}})
	e.join(alice, "Alice")
	e.expect(alice, "type='error'", "not-allowed")
	e.join("root@localhost/x", "Root")
	e.expect("root@localhost/x", "status code='201'")
	e = newEnv(t, Config{})
	e.join("eve@elsewhere.example/x", "Eve")
	e.expect("eve@elsewhere.example/x", "type='error'", "not-allowed")
}

func TestGroupchatFanOutWithStanzaID(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", nil)
	e.join(bob, "Bob")
	e.join(carol, "Carol")
	e.clear()
	e.in("<message type='groupchat' id='m1' from='" + bob + "' to='" + roomJ + "'><body>hello &amp; all</body>" +
		"<stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='" + roomJ + "'/><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>")
	var ids []string
	for _, to := range []string{alice, bob, carol} {
		s := e.expect(to, "type='groupchat'", "from='"+roomJ+"/Bob'", "id='m1'", "hello &amp; all", "by='"+roomJ+"'")
		if strings.Contains(s, "forged") {
			t.Fatalf("forged stanza-id kept: %s", s)
		}
		i := strings.Index(s, "<stanza-id")
		ids = append(ids, s[i:])
	}
	if ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("occupants got different stanza-ids: %q", ids)
	}
	items, _, _ := e.arch.Query(t.Context(), roomJ, storage.ArchiveQuery{})
	if len(items) != 1 || !strings.Contains(ids[0], "id='"+items[0].ID+"'") || items[0].OriginID != "o1" ||
		items[0].With != roomJ+"/Bob" {
		t.Fatalf("archive = %+v, stanza-ids %q", items, ids)
	}
	// Chat states are reflected but not archived.
	e.in("<message type='groupchat' id='m2' from='" + bob + "' to='" + roomJ + "'><composing xmlns='" + NSChatStates + "'/></message>")
	if s := e.expect(carol, "composing"); strings.Contains(s, "stanza-id") {
		t.Errorf("chat state stamped: %s", s)
	}
	if n, _ := e.arch.Count(t.Context(), roomJ, storage.ArchiveQuery{}); n != 1 {
		t.Errorf("archive holds %d items after a chat state, want 1", n)
	}
	// Someone outside the room cannot post.
	e.in("<message type='groupchat' id='m3' from='" + dave + "' to='" + roomJ + "'><body>spam</body></message>")
	e.expect(dave, "type='error'", "not-acceptable")
	e.none(alice, "spam")
	if e.m.Stats.Deliveries.Load() != 6 {
		t.Errorf("deliveries = %d, want 6", e.m.Stats.Deliveries.Load())
	}
}

func TestHistoryOnJoin(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", nil)
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 5 {
		e.m.now = func() time.Time { return base.Add(time.Duration(i) * time.Minute) }
		e.in(fmt.Sprintf("<message type='groupchat' id='h%d' from='%s' to='%s'><body>msg %d</body></message>", i, alice, roomJ, i))
	}
	e.in("<message type='groupchat' id='s' from='" + alice + "' to='" + roomJ + "'><subject>Today: tests</subject></message>")
	e.m.now = func() time.Time { return base.Add(10 * time.Minute) }
	e.clear()

	count := func(to string) (n int, last string) {
		for _, s := range e.r.take(to) {
			if strings.Contains(s, "<delay") {
				n++
				last = s
			}
		}
		return
	}
	e.join(bob, "Bob")
	e.expect(bob, "status code='110'")
	for i := range 5 {
		e.expect(bob, fmt.Sprintf("msg %d", i), "<delay xmlns='urn:xmpp:delay' from='"+roomJ+"' stamp='2025-01-02T03:0")
	}
	e.expect(bob, "<subject>Today: tests</subject>", "from='"+roomJ+"/Alice'")

	e.join(carol, "Carol", "<history maxstanzas='2'/>")
	if n, last := count(carol); n != 2 || !strings.Contains(last, "msg 4") {
		t.Errorf("maxstanzas=2 gave %d messages, last %s", n, last)
	}
	e.join(dave, "Dave", "<history maxchars='0'/>")
	if n, _ := count(dave); n != 0 {
		t.Errorf("maxchars=0 gave %d messages", n)
	}
	e.join("erin@localhost/x", "Erin", "<history seconds='450'/>") // messages at 3:07 and 3:08 are within 7.5 minutes
	if n, _ := count("erin@localhost/x"); n != 2 {
		t.Errorf("seconds=450 gave %d messages, want 2", n)
	}
	e.join("fred@localhost/x", "Fred", "<history since='2025-01-02T03:05:00Z'/>")
	if n, _ := count("fred@localhost/x"); n != 4 {
		t.Errorf("since gave %d messages, want 4", n)
	}
}

func TestSubjectChangeRights(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", nil)
	e.join(bob, "Bob")
	e.clear()
	e.in("<message type='groupchat' id='s1' from='" + bob + "' to='" + roomJ + "'><subject>mine</subject></message>")
	e.expect(bob, "type='error'", "forbidden")
	e.in("<message type='groupchat' id='s2' from='" + alice + "' to='" + roomJ + "'><subject>news</subject></message>")
	e.expect(bob, "<subject>news</subject>", "from='"+roomJ+"/Alice'")
}

func TestNickChange(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", nil)
	e.join(bob, "Bob")
	e.clear()
	e.in("<presence from='" + bob + "' to='" + roomJ + "/Alice'/>")
	e.expect(bob, "type='error'", "conflict")
	e.in("<presence from='" + bob + "' to='" + roomJ + "/Robert'><show>away</show></presence>")
	e.expect(alice, "type='unavailable'", "from='"+roomJ+"/Bob'", "nick='Robert'", "status code='303'")
	e.expect(alice, "from='"+roomJ+"/Robert'", "<show>away</show>")
	e.expect(bob, "type='unavailable'", "nick='Robert'", "status code='303'", "status code='110'")
	e.expect(bob, "from='"+roomJ+"/Robert'", "status code='110'")
	e.in("<message type='groupchat' id='m' from='" + bob + "' to='" + roomJ + "'><body>renamed</body></message>")
	e.expect(alice, "from='"+roomJ+"/Robert'", "renamed")
}

func TestPrivateMessages(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", nil)
	e.join(bob, "Bob")
	e.clear()
	e.in("<message type='chat' id='p1' from='" + bob + "' to='" + roomJ + "/Alice'><body>psst</body></message>")
	e.expect(alice, "type='chat'", "from='"+roomJ+"/Bob'", "psst", "<x xmlns='"+NSUser+"'/>")
	e.none(bob, "psst")
	e.in("<message type='chat' id='p2' from='" + bob + "' to='" + roomJ + "/Nobody'><body>?</body></message>")
	e.expect(bob, "type='error'", "item-not-found")
	e.in("<message type='chat' id='p3' from='" + dave + "' to='" + roomJ + "/Alice'><body>hi</body></message>")
	e.expect(dave, "type='error'", "not-acceptable")
	e.in("<message type='groupchat' id='p4' from='" + bob + "' to='" + roomJ + "/Alice'><body>x</body></message>")
	e.expect(bob, "type='error'", "bad-request")
}

func TestLeaveAndTemporaryRoomEnds(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", nil)
	e.join(bob, "Bob")
	e.in("<message type='groupchat' id='m' from='" + bob + "' to='" + roomJ + "'><body>x</body></message>")
	e.clear()
	e.in("<presence type='unavailable' from='" + bob + "' to='" + roomJ + "/Bob'><status>bye</status></presence>")
	e.expect(alice, "type='unavailable'", "from='"+roomJ+"/Bob'", "<status>bye</status>", "role='none'")
	e.expect(bob, "type='unavailable'", "status code='110'")
	e.in("<presence type='unavailable' from='" + alice + "' to='" + roomJ + "/Alice'/>")
	if e.m.Stats.Rooms.Load() != 0 || e.m.Stats.Occupants.Load() != 0 {
		t.Fatalf("rooms=%d occupants=%d after everyone left a temporary room", e.m.Stats.Rooms.Load(),
			e.m.Stats.Occupants.Load())
	}
	if n, _ := e.arch.Count(t.Context(), roomJ, storage.ArchiveQuery{}); n != 0 {
		t.Errorf("archive of the ended temporary room holds %d items", n)
	}
}

func TestMultipleDevicesOneNick(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", nil)
	e.join(bob, "Bob")
	e.clear()
	bob2 := "bob@localhost/phone"
	e.join(bob2, "Bob")
	e.expect(bob2, "from='"+roomJ+"/Alice'")
	e.expect(bob2, "from='"+roomJ+"/Bob'", "status code='110'")
	e.none(alice, "from='"+roomJ+"/Bob'") // no change for the others
	// Someone else cannot take the nick.
	e.join(carol, "Bob")
	e.expect(carol, "type='error'", "conflict")
	e.in("<message type='groupchat' id='m' from='" + alice + "' to='" + roomJ + "'><body>both</body></message>")
	e.expect(bob, "both")
	e.expect(bob2, "both")
	e.in("<message type='chat' id='p' from='" + alice + "' to='" + roomJ + "/Bob'><body>pm</body></message>")
	e.expect(bob, "pm")
	e.expect(bob2, "pm")
	// One device leaves: only it is told.
	e.in("<presence type='unavailable' from='" + bob2 + "' to='" + roomJ + "/Bob'/>")
	e.expect(bob2, "type='unavailable'", "status code='110'")
	e.none(alice, "unavailable")
	e.none(bob, "unavailable")
	e.in("<message type='groupchat' id='m2' from='" + alice + "' to='" + roomJ + "'><body>one</body></message>")
	e.expect(bob, "one")
	e.none(bob2, "one")
}

func TestFullRoom(t *testing.T) {
	e := newEnv(t, Config{MaxOccupants: 3})
	e.createRoom(alice, "Alice", nil)
	e.join(bob, "Bob")
	e.join(carol, "Carol")
	e.join(dave, "Dave")
	e.expect(dave, "type='error'", "service-unavailable")
	// Another device of an occupant is not a new occupant.
	e.join("bob@localhost/phone", "Bob")
	e.expect("bob@localhost/phone", "status code='110'")
}

func TestKickBanAndVoice(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", map[string]string{"muc#roomconfig_moderatedroom": "1"})
	e.join(bob, "Bob")
	e.expect(bob, "from='"+roomJ+"/Bob'", "role='visitor'")
	e.join(carol, "Carol")
	e.clear()
	// A visitor has no voice.
	e.in("<message type='groupchat' id='v' from='" + bob + "' to='" + roomJ + "'><body>hear me</body></message>")
	e.expect(bob, "type='error'", "forbidden")
	// Only moderators give voice.
	e.in("<iq type='set' id='a0' from='" + carol + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item nick='Bob' role='participant'/></query></iq>")
	e.expect(carol, "type='error'", "forbidden")
	e.in("<iq type='set' id='a1' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item nick='Bob' role='participant'><reason>ok</reason></item></query></iq>")
	e.expect(alice, "type='result'", "id='a1'")
	e.expect(carol, "from='"+roomJ+"/Bob'", "role='participant'")
	e.in("<message type='groupchat' id='v2' from='" + bob + "' to='" + roomJ + "'><body>hear me</body></message>")
	e.expect(carol, "hear me")
	// The voice list.
	e.in("<iq type='get' id='a2' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item role='participant'/></query></iq>")
	if s := e.expect(alice, "type='result'", "nick='Bob'"); strings.Contains(s, "Carol") {
		t.Errorf("the visitor Carol is in the participant list: %s", s)
	}
	e.in("<iq type='get' id='a3' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item role='visitor'/></query></iq>")
	e.expect(alice, "type='result'", "nick='Carol'")
	// Kick: 307 with actor and reason, to everyone and the kicked.
	e.in("<iq type='set' id='k' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item nick='Bob' role='none'><reason>calm down</reason></item></query></iq>")
	e.expect(alice, "type='result'", "id='k'")
	e.expect(bob, "type='unavailable'", "status code='307'", "status code='110'", "<actor nick='Alice'/>", "calm down")
	e.expect(carol, "type='unavailable'", "from='"+roomJ+"/Bob'", "status code='307'")
	e.in("<message type='groupchat' id='v3' from='" + bob + "' to='" + roomJ + "'><body>back?</body></message>")
	e.expect(bob, "type='error'", "not-acceptable")
	// A kicked user may come back; an owner cannot be kicked.
	e.join(bob, "Bob")
	e.expect(bob, "status code='110'")
	e.in("<iq type='set' id='k2' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item nick='Alice' role='none'/></query></iq>")
	e.expect(alice, "type='error'", "not-allowed")
	// Ban: 301, and the outcast cannot come back.
	e.in("<iq type='set' id='b' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item jid='bob@localhost' affiliation='outcast'><reason>spam</reason></item></query></iq>")
	e.expect(alice, "type='result'", "id='b'")
	e.expect(bob, "type='unavailable'", "status code='301'", "affiliation='outcast'", "spam")
	e.expect(carol, "type='unavailable'", "status code='301'")
	e.join(bob, "Bob")
	e.expect(bob, "type='error'", "forbidden")
	e.in("<iq type='get' id='bl' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item affiliation='outcast'/></query></iq>")
	e.expect(alice, "type='result'", "jid='bob@localhost'", "<reason>spam</reason>")
	e.in("<iq type='get' id='bl2' from='" + carol + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item affiliation='outcast'/></query></iq>")
	e.expect(carol, "type='error'", "forbidden")
	// The last owner cannot step down.
	e.in("<iq type='set' id='o' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item jid='alice@localhost' affiliation='member'/></query></iq>")
	e.expect(alice, "type='error'", "conflict")
}

func TestAdminRights(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", nil)
	e.in("<iq type='set' id='a' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item jid='bob@localhost' affiliation='admin'/></query></iq>")
	e.expect(alice, "type='result'")
	e.join(bob, "Bob")
	e.expect(bob, "from='"+roomJ+"/Bob'", "affiliation='admin'", "role='moderator'")
	// An admin may not touch owners or make admins.
	e.in("<iq type='set' id='b' from='" + bob + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item jid='alice@localhost' affiliation='outcast'/></query></iq>")
	e.expect(bob, "type='error'", "not-allowed")
	e.in("<iq type='set' id='c' from='" + bob + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item jid='carol@localhost' affiliation='admin'/></query></iq>")
	e.expect(bob, "type='error'", "not-allowed")
	// Several items apply all or none.
	e.in("<iq type='set' id='d' from='" + bob + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item jid='carol@localhost' affiliation='member'/><item jid='alice@localhost' affiliation='none'/></query></iq>")
	e.expect(bob, "type='error'", "not-allowed")
	e.in("<iq type='get' id='e' from='" + bob + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item affiliation='member'/></query></iq>")
	if s := e.expect(bob, "type='result'", "id='e'"); strings.Contains(s, "carol") {
		t.Fatalf("a refused batch was partly applied: %s", s)
	}
	// Demoting an admin in the room makes it a participant.
	e.in("<iq type='set' id='f' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item jid='bob@localhost' affiliation='member'/></query></iq>")
	e.expect(alice, "from='"+roomJ+"/Bob'", "affiliation='member'", "role='participant'")
}

// Private groups as Conversations makes them: members-only, non-anonymous, persistent.
func TestMembersOnlyPrivateGroup(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", map[string]string{"muc#roomconfig_membersonly": "1",
		"muc#roomconfig_whois": "anyone", "muc#roomconfig_persistentroom": "1", "muc#roomconfig_publicroom": "0"})
	e.join(bob, "Bob")
	e.expect(bob, "type='error'", "registration-required")

	// Granting membership to someone not in the room: 101 to the user.
	e.in("<iq type='set' id='g' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item jid='bob@localhost' affiliation='member'/></query></iq>")
	e.expect(alice, "<message", "jid='bob@localhost'", "affiliation='member'") // the member list changed
	e.expect(alice, "type='result'", "id='g'")
	e.expect("bob@localhost", "<message", "affiliation='member'", "status code='101'")
	affs, _ := e.rooms.Affiliations(t.Context(), roomJ)
	if len(affs) != 2 {
		t.Fatalf("stored affiliations = %+v", affs)
	}
	e.join(bob, "Bob")
	e.expect(bob, "status code='110'", "status code='100'")
	// Members read the member list (what OMEMO in a private group needs); not the ban list.
	e.in("<iq type='get' id='ml' from='" + bob + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item affiliation='member'/></query></iq>")
	e.expect(bob, "type='result'", "jid='bob@localhost'")
	e.in("<iq type='get' id='ol' from='" + bob + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item affiliation='owner'/></query></iq>")
	e.expect(bob, "type='result'", "jid='alice@localhost'")

	// A mediated invitation from the owner makes the invitee a member.
	e.in("<message from='" + alice + "' to='" + roomJ + "'><x xmlns='" + NSUser + "'><invite to='carol@localhost'><reason>join us</reason></invite></x></message>")
	e.expect("carol@localhost", "<message", "from='"+roomJ+"'", "<invite from='alice@localhost'>", "join us")
	e.join(carol, "Carol")
	e.expect(carol, "status code='110'", "affiliation='member'")
	// A member may not invite unless the room allows it.
	e.in("<message from='" + bob + "' to='" + roomJ + "'><x xmlns='" + NSUser + "'><invite to='dave@localhost'/></x></message>")
	e.expect(bob, "type='error'", "forbidden")
	// A decline goes back to the inviter.
	e.in("<message from='" + dave + "' to='" + roomJ + "'><x xmlns='" + NSUser + "'><decline to='alice@localhost'><reason>busy</reason></decline></x></message>")
	e.expect("alice@localhost", "<decline from='dave@localhost'>", "busy")

	// Revoking membership removes the member with 321.
	e.in("<iq type='set' id='r' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item jid='carol@localhost' affiliation='none'/></query></iq>")
	e.expect(carol, "type='unavailable'", "status code='321'", "status code='110'")
	e.expect(bob, "type='unavailable'", "from='"+roomJ+"/Carol'", "status code='321'")
	affs, _ = e.rooms.Affiliations(t.Context(), roomJ)
	if len(affs) != 2 {
		t.Errorf("stored affiliations after revoking = %+v", affs)
	}
	// The hidden room is not in the service's list.
	e.in("<iq type='get' id='l' from='" + dave + "' to='" + svc + "'><query xmlns='" + NSDiscoItems + "'/></iq>")
	if s := e.expect(dave, "type='result'"); strings.Contains(s, roomJ) {
		t.Errorf("hidden room listed: %s", s)
	}
}

func TestBecomingMembersOnlyRemovesNonMembers(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", nil)
	e.join(bob, "Bob")
	e.clear()
	e.in("<iq type='set' id='c' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSOwner + "'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_membersonly'><value>1</value></field></x></query></iq>")
	e.expect(bob, "type='unavailable'", "status code='322'")
	e.expect(alice, "status code='104'")
}

func TestPasswordProtectedRoom(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", map[string]string{"muc#roomconfig_passwordprotectedroom": "1",
		"muc#roomconfig_roomsecret": "s3cret"})
	e.join(bob, "Bob")
	e.expect(bob, "type='error'", "not-authorized")
	e.join(bob, "Bob", "<password>nope</password>")
	e.expect(bob, "type='error'", "not-authorized")
	e.join(bob, "Bob", "<password>s3cret</password>")
	e.expect(bob, "status code='110'")
}

func TestDestroy(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", map[string]string{"muc#roomconfig_persistentroom": "1"})
	e.join(bob, "Bob")
	e.in("<message type='groupchat' id='m' from='" + bob + "' to='" + roomJ + "'><body>x</body></message>")
	e.clear()
	e.in("<iq type='set' id='d0' from='" + bob + "' to='" + roomJ + "'><query xmlns='" + NSOwner + "'><destroy/></query></iq>")
	e.expect(bob, "type='error'", "forbidden")
	e.in("<iq type='set' id='d' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSOwner +
		"'><destroy jid='new@conference.localhost'><reason>moved</reason></destroy></query></iq>")
	for _, to := range []string{alice, bob} {
		e.expect(to, "type='unavailable'", "<destroy jid='new@conference.localhost'><reason>moved</reason></destroy>",
			"affiliation='none'", "role='none'")
	}
	e.expect(alice, "type='result'", "id='d'")
	if _, err := e.rooms.Room(t.Context(), roomJ); err == nil {
		t.Error("destroyed room still stored")
	}
	if n, _ := e.arch.Count(t.Context(), roomJ, storage.ArchiveQuery{}); n != 0 {
		t.Errorf("destroyed room's archive holds %d items", n)
	}
	e.in("<message type='groupchat' id='m2' from='" + bob + "' to='" + roomJ + "'><body>x</body></message>")
	e.expect(bob, "type='error'", "item-not-found")
}

// Rooms, affiliations and history survive a restart (a new Module on the same storage).
func TestPersistentRoomSurvivesRestart(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", map[string]string{"muc#roomconfig_persistentroom": "1",
		"muc#roomconfig_membersonly": "1", "muc#roomconfig_roomname": "Kept"})
	e.in("<iq type='set' id='g' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item jid='bob@localhost' affiliation='member' nick='Bobby'/></query></iq>")
	e.in("<message type='groupchat' id='m' from='" + alice + "' to='" + roomJ + "'><body>remember me</body></message>")
	e.in("<message type='groupchat' id='s' from='" + alice + "' to='" + roomJ + "'><subject>kept subject</subject></message>")

	affs, _ := e.rooms.Affiliations(t.Context(), roomJ)
	if len(affs) != 2 || affs[1].JID != "bob@localhost" || affs[1].Nick != "Bobby" {
		t.Fatalf("stored affiliations = %+v, want bob's with the reserved nick", affs)
	}

	e2 := newEnvWith(t, Config{}, e.rooms, e.arch)
	e2.t = t
	e2.join(carol, "Carol")
	e2.expect(carol, "type='error'", "registration-required")
	e2.in("<iq type='set' id='g2' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item jid='carol@localhost' affiliation='member'/></query></iq>")
	e2.join(carol, "Bobby")
	e2.expect(carol, "type='error'", "conflict") // reserved for bob
	e2.join(bob, "Bob")
	e2.expect(bob, "status code='110'", "affiliation='member'")
	e2.expect(bob, "remember me", "<delay", "stanza-id")
	e2.expect(bob, "<subject>kept subject</subject>")
	e2.in("<iq type='get' id='i' from='" + bob + "' to='" + svc + "'><query xmlns='" + NSDiscoItems + "'/></iq>")
	e2.expect(bob, "type='result'", "jid='"+roomJ+"'", "name='Kept'")
	// The last occupant leaving does not end a persistent room.
	e2.in("<presence type='unavailable' from='" + bob + "' to='" + roomJ + "/Bob'/>")
	e2.join(bob, "Bob")
	e2.expect(bob, "status code='110'")
}

func TestSelfPingAndIQForwarding(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", nil)
	e.join(bob, "Bob")
	e.clear()
	e.in("<iq type='get' id='sp' from='" + bob + "' to='" + roomJ + "/Bob'><ping xmlns='urn:xmpp:ping'/></iq>")
	e.expect(bob, "type='result'", "id='sp'", "from='"+roomJ+"/Bob'")
	e.in("<iq type='get' id='sp2' from='" + dave + "' to='" + roomJ + "/Dave'><ping xmlns='urn:xmpp:ping'/></iq>")
	e.expect(dave, "type='error'", "not-acceptable")
	// A vCard request to an occupant goes to its bare JID and the answer comes back.
	e.in("<iq type='get' id='vc' from='" + bob + "' to='" + roomJ + "/Alice'><vCard xmlns='vcard-temp'/></iq>")
	fwd := e.expect("alice@localhost", "<iq", "from='"+roomJ+"/Bob'", "vcard-temp")
	i := strings.Index(fwd, "id='") + 4
	id := fwd[i : i+strings.IndexByte(fwd[i:], '\'')]
	e.in("<iq type='result' id='" + id + "' from='alice@localhost' to='" + roomJ + "/Bob'><vCard xmlns='vcard-temp'><FN>Alice</FN></vCard></iq>")
	e.expect(bob, "type='result'", "id='vc'", "from='"+roomJ+"/Alice'", "<FN>Alice</FN>")
}

func TestSessionClosedLeavesRooms(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", nil)
	e.join(bob, "Bob")
	e.clear()
	e.m.sessionClosed(t.Context(), fakeSession{j: jid.MustParse(bob)})
	e.expect(alice, "type='unavailable'", "from='"+roomJ+"/Bob'")
	if n := e.m.Stats.Occupants.Load(); n != 1 {
		t.Errorf("occupants = %d, want 1", n)
	}
}

func TestPresenceErrorRemovesGhost(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", nil)
	e.join(bob, "Bob")
	e.clear()
	e.in("<presence type='error' from='" + bob + "' to='" + roomJ + "/Bob'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>")
	e.expect(alice, "type='unavailable'", "from='"+roomJ+"/Bob'")
}

func TestMAMOnRoom(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", map[string]string{"muc#roomconfig_membersonly": "1"})
	for i := range 7 {
		e.in(fmt.Sprintf("<message type='groupchat' id='m%d' from='%s' to='%s'><body>n%d</body></message>", i, alice, roomJ, i))
	}
	e.clear()
	e.in("<iq type='set' id='q' from='" + bob + "' to='" + roomJ + "'><query xmlns='urn:xmpp:mam:2'/></iq>")
	e.expect(bob, "type='error'", "forbidden")
	e.in("<iq type='set' id='q1' from='" + alice + "' to='" + roomJ + "'><query xmlns='urn:xmpp:mam:2' queryid='f'>" +
		"<set xmlns='http://jabber.org/protocol/rsm'><max>3</max><before/></set></query></iq>")
	var results []string
	for range 3 {
		results = append(results, e.expect(alice, "<result xmlns='urn:xmpp:mam:2' queryid='f'", "<message xmlns='jabber:client'"))
	}
	for i, want := range []string{"n4", "n5", "n6"} {
		if !strings.Contains(results[i], want) {
			t.Errorf("last page item %d = %s, want %s", i, results[i], want)
		}
	}
	fin := e.expect(alice, "type='result'", "id='q1'", "<fin xmlns='urn:xmpp:mam:2' complete='false'", "<count>7</count>")
	i := strings.Index(fin, "<first>") + 7
	first := fin[i : i+strings.Index(fin[i:], "<")]
	e.in("<iq type='set' id='q2' from='" + alice + "' to='" + roomJ + "'><query xmlns='urn:xmpp:mam:2'>" +
		"<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before>" + first + "</before></set></query></iq>")
	for _, want := range []string{"n0", "n1", "n2", "n3"} {
		e.expect(alice, "<result", want)
	}
	e.expect(alice, "type='result'", "id='q2'", "complete='true'")
	e.in("<iq type='set' id='q3' from='" + alice + "' to='" + roomJ + "'><query xmlns='urn:xmpp:mam:2'>" +
		"<x xmlns='jabber:x:data' type='submit'><field var='with'><value>" + roomJ + "/Nobody</value></field></x></query></iq>")
	e.expect(alice, "type='result'", "id='q3'", "<count>0</count>")
	e.in("<iq type='get' id='q4' from='" + alice + "' to='" + roomJ + "'><query xmlns='urn:xmpp:mam:2'/></iq>")
	e.expect(alice, "type='result'", "var='with'")
}

func TestChildren(t *testing.T) {
	got := children([]byte(" <body>a<b/></body>\n<x xmlns='y'><z/></x><stanza-id xmlns='urn:xmpp:sid:0' id='1'/>"))
	if len(got) != 3 || got[0].local != "body" || got[1].ns != "y" || string(got[2].raw) != "<stanza-id xmlns='urn:xmpp:sid:0' id='1'/>" {
		t.Fatalf("children = %+v", got)
	}
	if attr(got[2].raw, "id") != "1" || attr([]byte("<a b='&amp;'>x</a>"), "b") != "&" {
		t.Error("attr")
	}
}

type fakeSession struct {
	module.Session
	j jid.JID
}

func (f fakeSession) JID() jid.JID { return f.j }

// With muc.archive false, rooms keep no archive: no stanza-id, nothing stored, MAM neither advertised nor
// answered; history on join still works from memory.
func TestArchiveOff(t *testing.T) {
	off := false
	e := newEnv(t, Config{Archive: &off})
	e.createRoom(alice, "Alice", nil)
	e.in("<message type='groupchat' id='m1' from='" + alice + "' to='" + roomJ + "'><body>unarchived</body></message>")
	if s := e.expect(alice, "unarchived"); strings.Contains(s, "stanza-id") {
		t.Errorf("stanza-id without an archive: %s", s)
	}
	if n, _ := e.arch.Count(t.Context(), roomJ, storage.ArchiveQuery{}); n != 0 {
		t.Errorf("archive holds %d items with muc.archive false", n)
	}
	e.join(bob, "Bob")
	e.expect(bob, "unarchived", "<delay")
	e.in("<iq type='get' id='d1' from='" + bob + "' to='" + roomJ + "'><query xmlns='" + NSDiscoInfo + "'/></iq>")
	if s := e.expect(bob, "id='d1'", "type='result'"); strings.Contains(s, "urn:xmpp:mam") || strings.Contains(s, "var=''") {
		t.Errorf("disco info advertises MAM (or an empty feature) without an archive: %s", s)
	}
	e.in("<iq type='set' id='q1' from='" + bob + "' to='" + roomJ + "'><query xmlns='urn:xmpp:mam:2'/></iq>")
	e.expect(bob, "id='q1'", "type='error'", "service-unavailable")
}

// The room configuration form listed the maxusers option 100 twice (issue 19 item 7): the room's limit, 100 and
// the service's limit were offered without removing repeats. No list-single field may repeat an option, and
// its value must be one of its options.
func TestDefectMaxUsersOptionListedTwice(t *testing.T) {
	for _, cfg := range []Config{{}, {MaxOccupants: 1000, MaxOccupantsLimit: 1000}, {MaxOccupants: 50, MaxOccupantsLimit: 80}} {
		e := newEnv(t, cfg)
		e.join(alice, "Alice")
		e.clear()
		e.in("<iq type='get' id='f1' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSOwner + "'/></iq>")
		raw := e.expect(alice, "type='result'", "muc#roomconfig_maxusers")
		q := raw[strings.Index(raw, "<query") : strings.LastIndex(raw, "</query>")+len("</query>")]
		forms, err := form.ParseAll([]byte(q), form.Limits{})
		if err != nil || len(forms) != 1 {
			t.Fatalf("%+v: config form: %v, %d forms in %s", cfg, err, len(forms), raw)
		}
		lists := 0
		for _, fl := range forms[0].Fields {
			if fl.Type != form.ListSingle {
				continue
			}
			lists++
			seen := map[string]bool{}
			for _, o := range fl.Options {
				if seen[o.Value] {
					t.Errorf("%+v: %s offers %q twice", cfg, fl.Var, o.Value)
				}
				seen[o.Value] = true
			}
			if !seen[fl.Value()] {
				t.Errorf("%+v: %s has value %q, not among its options", cfg, fl.Var, fl.Value())
			}
		}
		if lists < 3 {
			t.Errorf("%+v: %d list-single fields, want whois, maxusers and allowpm", cfg, lists)
		}
		if fl := forms[0].Field("muc#roomconfig_maxusers"); fl != nil {
			for _, o := range fl.Options {
				if n, _ := strconv.Atoi(o.Value); n > e.m.cfg.MaxOccupantsLimit {
					t.Errorf("%+v: maxusers offers %d, above the service's limit", cfg, n)
				}
			}
		}
	}
}
