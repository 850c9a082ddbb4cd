package conformance

// Multi-user chat (XEP-0045) as people use it in Conversations, Gajim and Dino: rooms created and configured by
// their owners, private members-only groups with invitations, moderation, history on mucJoin, the room archive
// (XEP-0313) that a member's other devices catch up from, and rooms that survive a restart. Plus slixmpp's
// XEP-0045 plugin in a room with mellium clients.

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	mucService = "conference.localhost"
	nsMUC      = "http://jabber.org/protocol/muc"
	nsMUCUser  = "http://jabber.org/protocol/muc#user"
	nsMUCAdmin = "http://jabber.org/protocol/muc#admin"
	nsMUCOwner = "http://jabber.org/protocol/muc#owner"
)

const mucWait = 10 * time.Second

// mucRequire checks that the server lists the MUC service in its disco#items.
func mucRequire(t *testing.T, c *Client) {
	t.Helper()
	c.Send(`<iq type='get' id='disco-items' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	got := c.Expect(mucWait, `id="disco-items"`)
	if !strings.Contains(got, `jid="`+mucService+`"`) {
		t.Fatalf("the server does not list %s in disco#items (is muc in cmd/parley's module list?): %s", mucService, got)
	}
}

// mucOnline sends initial presence, as every client does: messages to the bare JID (invitations, membership
// notices) go to available resources only.
func mucOnline(cs ...*Client) {
	for _, c := range cs {
		c.Send(`<presence/>`)
		c.Expect(mucWait, "<presence", `from="`+c.JID.String()+`"`)
	}
}

// join enters a room and returns the self-presence (status 110).
func mucJoin(c *Client, room, nick, extra string) string {
	c.t.Helper()
	c.Send(fmt.Sprintf(`<presence to='%s/%s'><x xmlns='%s'>%s</x></presence>`, room, nick, nsMUC, extra))
	return c.Expect(mucWait, `from="`+room+`/`+nick+`"`, `code="110"`)
}

// mucJoinRefused tries to enter a room and returns the presence error.
func mucJoinRefused(c *Client, room, nick, condition string) string {
	c.t.Helper()
	c.Send(fmt.Sprintf(`<presence to='%s/%s'><x xmlns='%s'/></presence>`, room, nick, nsMUC))
	return c.Expect(mucWait, "<presence", `type="error"`, condition)
}

// mucCreate makes c the owner of a new room, configured with fields (an instant room when there are none).
func mucCreate(c *Client, room, nick string, fields map[string]string) {
	c.t.Helper()
	self := mucJoin(c, room, nick, "")
	if !strings.Contains(self, `code="201"`) {
		c.t.Fatalf("creating %s: self-presence without 201: %s", room, self)
	}
	c.Expect(mucWait, "<subject")
	var b strings.Builder
	fmt.Fprintf(&b, `<iq type='set' id='create' to='%s'><query xmlns='%s'><x xmlns='jabber:x:data' type='submit'>`, room, nsMUCOwner)
	for k, v := range fields {
		fmt.Fprintf(&b, `<field var='%s'><value>%s</value></field>`, k, v)
	}
	b.WriteString(`</x></query></iq>`)
	c.Send(b.String())
	c.Expect(mucWait, `id="create"`, `type="result"`)
}

// mucExpectAll waits until c has received a stanza containing each of subs, in any order, and returns them in
// the order of subs.
func mucExpectAll(c *Client, d time.Duration, subs ...string) []string {
	c.t.Helper()
	got := make([]string, len(subs))
	left := len(subs)
	timeout := time.After(d)
	for left > 0 {
		select {
		case s := <-c.In:
			for i, sub := range subs {
				if got[i] == "" && strings.Contains(s, sub) {
					got[i] = s
					left--
				}
			}
		case <-timeout:
			c.t.Fatalf("%s: within %s, received only %d of %q", c.JID, d, len(subs)-left, subs)
		}
	}
	return got
}

func mucSay(c *Client, room, id, body string) {
	c.Send(fmt.Sprintf(`<message to='%s' type='groupchat' id='%s'><body>%s</body></message>`, room, id, body))
}

func mucAdmin(c *Client, room, id, item string) string {
	c.t.Helper()
	c.Send(fmt.Sprintf(`<iq type='set' id='%s' to='%s'><query xmlns='%s'>%s</query></iq>`, id, room, nsMUCAdmin, item))
	return c.Expect(mucWait, `id="`+id+`"`)
}

var roomStanzaIDRe = regexp.MustCompile(`<stanza-id[^>]*\bid="([^"]+)"`)

// A room from creation to destruction: created locked (201), configured through the form, discoverable,
// joined, and destroyed with a reason and an alternate venue.
func TestMUCCreateConfigureDestroy(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "laptop")
	bob := Dial(t, srv, "bob", "bob-secret", "phone")
	mucRequire(t, alice)
	alice.Send(`<iq type='get' id='svc' to='` + mucService + `'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	alice.Expect(mucWait, `id="svc"`, `category="conference"`, nsMUC)

	room := "team@" + mucService
	self := mucJoin(alice, room, "Alice", "")
	for _, want := range []string{`code="201"`, `affiliation="owner"`, `role="moderator"`} {
		if !strings.Contains(self, want) {
			t.Fatalf("self-presence of the creator lacks %s: %s", want, self)
		}
	}
	// Locked until configured: bob cannot enter yet.
	mucJoinRefused(bob, room, "Bob", "item-not-found")
	alice.Send(`<iq type='get' id='form' to='` + room + `'><query xmlns='` + nsMUCOwner + `'/></iq>`)
	form := alice.Expect(mucWait, `id="form"`, `type="result"`)
	for _, f := range []string{"muc#roomconfig_roomname", "muc#roomconfig_persistentroom", "muc#roomconfig_membersonly",
		"muc#roomconfig_moderatedroom", "muc#roomconfig_passwordprotectedroom", "muc#roomconfig_whois",
		"muc#roomconfig_historylength", "muc#roomconfig_maxusers", "muc#roomconfig_publicroom", "muc#roomconfig_roomdesc"} {
		if !strings.Contains(form, f) {
			t.Errorf("configuration form lacks %s", f)
		}
	}
	alice.Send(`<iq type='set' id='cfg' to='` + room + `'><query xmlns='` + nsMUCOwner + `'><x xmlns='jabber:x:data' type='submit'>` +
		`<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>` +
		`<field var='muc#roomconfig_roomname'><value>The Team</value></field>` +
		`<field var='muc#roomconfig_roomdesc'><value>Where the team talks</value></field>` +
		`<field var='muc#roomconfig_persistentroom'><value>1</value></field>` +
		`<field var='muc#roomconfig_publicroom'><value>1</value></field>` +
		`<field var='muc#roomconfig_whois'><value>anyone</value></field>` +
		`<field var='muc#roomconfig_maxusers'><value>500</value></field>` +
		`</x></query></iq>`)
	alice.Expect(mucWait, `id="cfg"`, `type="result"`)

	bob.Send(`<iq type='get' id='items' to='` + mucService + `'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	bob.Expect(mucWait, `id="items"`, `jid="`+room+`"`, `name="The Team"`)
	bob.Send(`<iq type='get' id='info' to='` + room + `'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	info := bob.Expect(mucWait, `id="info"`, `type="result"`)
	for _, f := range []string{"muc_persistent", "muc_public", "muc_open", "muc_nonanonymous", "muc_unmoderated",
		"muc_unsecured", "urn:xmpp:mam:2", "urn:xmpp:sid:0", "muc#roominfo", "Where the team talks"} {
		if !strings.Contains(info, f) {
			t.Errorf("room disco#info lacks %s: %s", f, info)
		}
	}
	self = mucJoin(bob, room, "Bob", "")
	if !strings.Contains(self, `code="100"`) {
		t.Errorf("non-anonymous room: self-presence without 100: %s", self)
	}
	alice.Expect(mucWait, `from="`+room+`/Bob"`, `jid="`+bob.JID.String()+`"`)

	alice.Send(`<iq type='set' id='destroy' to='` + room + `'><query xmlns='` + nsMUCOwner + `'>` +
		`<destroy jid='elsewhere@` + mucService + `'><reason>moving on</reason></destroy></query></iq>`)
	for _, c := range []*Client{alice, bob} {
		got := c.Expect(mucWait, `type="unavailable"`, "<destroy", "moving on")
		if !strings.Contains(got, `jid="elsewhere@`+mucService+`"`) {
			t.Errorf("destroy presence lacks the alternate venue: %s", got)
		}
	}
	alice.Expect(mucWait, `id="destroy"`, `type="result"`)
	bob.Send(`<iq type='get' id='gone' to='` + room + `'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	bob.Expect(mucWait, `id="gone"`, `type="error"`, "item-not-found")
}

// A private group as Conversations creates it: members-only, non-anonymous, persistent, hidden; members added
// by the owner, a mediated invitation that makes the invitee a member, and an XEP-0249 direct invitation.
func TestMUCMembersOnlyInvitations(t *testing.T) {
	srv := Start(t, "")
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		srv.AddUser(u, u+"-secret")
	}
	alice := Dial(t, srv, "alice", "alice-secret", "phone")
	bob := Dial(t, srv, "bob", "bob-secret", "phone")
	carol := Dial(t, srv, "carol", "carol-secret", "phone")
	dave := Dial(t, srv, "dave", "dave-secret", "phone")
	mucOnline(alice, bob, carol, dave)
	mucRequire(t, alice)
	room := "family@" + mucService
	mucCreate(alice, room, "Alice", map[string]string{"muc#roomconfig_membersonly": "1", "muc#roomconfig_whois": "anyone",
		"muc#roomconfig_persistentroom": "1", "muc#roomconfig_publicroom": "0", "muc#roomconfig_roomname": "Family"})

	mucJoinRefused(bob, room, "Bob", "registration-required")

	// Mediated invitation (XEP-0045 7.8.2): the room relays it and makes bob a member.
	alice.Send(`<message to='` + room + `'><x xmlns='` + nsMUCUser + `'><invite to='bob@localhost'><reason>dinner?</reason></invite></x></message>`)
	inv := bob.Expect(mucWait, "<message", `from="`+room+`"`, "<invite", "dinner?")
	if !strings.Contains(inv, `from="alice@localhost"`) {
		t.Errorf("invitation does not name the inviter: %s", inv)
	}
	mucJoin(bob, room, "Bob", "")
	alice.Expect(mucWait, `from="`+room+`/Bob"`, `affiliation="member"`)

	// The owner adds carol to the member list and invites her directly (XEP-0249, user to user).
	got := mucAdmin(alice, room, "grant", `<item jid='carol@localhost' affiliation='member'/>`)
	if !strings.Contains(got, `type="result"`) {
		t.Fatalf("granting membership: %s", got)
	}
	carol.Expect(mucWait, "<message", `from="`+room+`"`, `affiliation="member"`, `code="101"`)
	bob.Expect(mucWait, "<message", `jid="carol@localhost"`, `affiliation="member"`) // the member list changed
	alice.Send(`<message to='carol@localhost'><x xmlns='jabber:x:conference' jid='` + room + `' reason='join us'/></message>`)
	carol.Expect(mucWait, "<message", "jabber:x:conference", `jid="`+room+`"`)
	mucJoin(carol, room, "Carol", "")

	// Members read the member list, which Conversations needs for OMEMO in a private group.
	bob.Send(`<iq type='get' id='members' to='` + room + `'><query xmlns='` + nsMUCAdmin + `'><item affiliation='member'/></query></iq>`)
	members := bob.Expect(mucWait, `id="members"`, `type="result"`)
	if !strings.Contains(members, "bob@localhost") || !strings.Contains(members, "carol@localhost") {
		t.Errorf("member list: %s", members)
	}
	// A member may not invite: the room does not allow it.
	bob.Send(`<message to='` + room + `'><x xmlns='` + nsMUCUser + `'><invite to='dave@localhost'/></x></message>`)
	bob.Expect(mucWait, "<message", `type="error"`, "forbidden")
	mucJoinRefused(dave, room, "Dave", "registration-required")

	// Revoking carol's membership removes her (321).
	mucAdmin(alice, room, "revoke", `<item jid='carol@localhost' affiliation='none'/>`)
	carol.Expect(mucWait, `type="unavailable"`, `code="321"`, `code="110"`)
	bob.Expect(mucWait, `type="unavailable"`, `from="`+room+`/Carol"`, `code="321"`)
}

// A room's message reaches each of 100 occupants; the 101st is refused (the default limit).
func TestMUCHundredOccupants(t *testing.T) {
	srv := Start(t, "c2s:\n  max_conns_per_ip: 400\n")
	const users, perUser = 10, 10
	for u := 0; u <= users; u++ {
		srv.AddUser(fmt.Sprintf("u%d", u), "secret")
	}
	var clients []*Client
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, users*perUser)
	for u := 0; u < users; u++ {
		wg.Go(func() {
			for r := 0; r < perUser; r++ {
				c, err := DialErr(t, srv, fmt.Sprintf("u%d", u), "secret", fmt.Sprintf("d%d", r))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				clients = append(clients, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mucRequire(t, clients[0])
	room := "crowd@" + mucService
	mucCreate(clients[0], room, "n0", nil)
	for i, c := range clients[1:] {
		mucJoin(c, room, fmt.Sprintf("n%d", i+1), "<history maxstanzas='0'/>")
	}
	extra := Dial(t, srv, "u10", "secret", "late")
	mucJoinRefused(extra, room, "n100", "service-unavailable")

	senders := []int{0, 42, 99}
	var bodies []string
	for k, s := range senders {
		bodies = append(bodies, fmt.Sprintf("message %d from n%d", k, s))
		mucSay(clients[s], room, fmt.Sprintf("crowd-%d", k), bodies[k])
	}
	start := time.Now()
	for i, c := range clients {
		for k, got := range mucExpectAll(c, mucWait, bodies...) {
			if !strings.Contains(got, fmt.Sprintf(`from="%s/n%d"`, room, senders[k])) || !roomStanzaIDRe.MatchString(got) {
				t.Fatalf("occupant n%d got %s", i, got)
			}
		}
	}
	t.Logf("100 occupants, 3 messages, all delivered; checked in %s", time.Since(start))
}

// Kick, ban and voice in a moderated room.
func TestMUCKickBanVoice(t *testing.T) {
	srv := Start(t, "")
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.AddUser(u, u+"-secret")
	}
	alice := Dial(t, srv, "alice", "alice-secret", "r")
	bob := Dial(t, srv, "bob", "bob-secret", "r")
	carol := Dial(t, srv, "carol", "carol-secret", "r")
	mucRequire(t, alice)
	room := "stage@" + mucService
	mucCreate(alice, room, "Alice", map[string]string{"muc#roomconfig_moderatedroom": "1"})
	if self := mucJoin(bob, room, "Bob", ""); !strings.Contains(self, `role="visitor"`) {
		t.Fatalf("moderated room: bob is not a visitor: %s", self)
	}
	mucJoin(carol, room, "Carol", "")

	mucSay(bob, room, "v1", "may I?")
	bob.Expect(mucWait, "<message", `type="error"`, "forbidden")
	got := mucAdmin(alice, room, "voice", `<item nick='Bob' role='participant'/>`)
	if !strings.Contains(got, `type="result"`) {
		t.Fatalf("granting voice: %s", got)
	}
	bob.Expect(mucWait, `from="`+room+`/Bob"`, `role="participant"`, `code="110"`)
	mucSay(bob, room, "v2", "thank you")
	carol.Expect(mucWait, "thank you", `from="`+room+`/Bob"`)

	mucAdmin(alice, room, "kick", `<item nick='Carol' role='none'><reason>too loud</reason></item>`)
	got = carol.Expect(mucWait, `type="unavailable"`, `code="307"`, `code="110"`)
	if !strings.Contains(got, "too loud") || !strings.Contains(got, `nick="Alice"`) {
		t.Errorf("kick presence lacks reason or actor: %s", got)
	}
	bob.Expect(mucWait, `type="unavailable"`, `from="`+room+`/Carol"`, `code="307"`)

	mucJoin(carol, room, "Carol", "") // kicked, not banned
	mucAdmin(alice, room, "ban", `<item jid='carol@localhost' affiliation='outcast'><reason>again</reason></item>`)
	carol.Expect(mucWait, `type="unavailable"`, `code="301"`, `affiliation="outcast"`)
	bob.Expect(mucWait, `type="unavailable"`, `from="`+room+`/Carol"`, `code="301"`)
	mucJoinRefused(carol, room, "Carol", "forbidden")

	// Bob, a participant, may not kick.
	got = mucAdmin(bob, room, "kick2", `<item nick='Alice' role='none'/>`)
	if !strings.Contains(got, `type="error"`) {
		t.Errorf("a participant kicked the owner: %s", got)
	}
}

// History on join: the last messages, with delay stamped by the room, then the subject.
func TestMUCHistoryOnJoin(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "r")
	bob := Dial(t, srv, "bob", "bob-secret", "r")
	mucRequire(t, alice)
	room := "history@" + mucService
	mucCreate(alice, room, "Alice", nil)
	for i := range 5 {
		mucSay(alice, room, fmt.Sprintf("h%d", i), fmt.Sprintf("old news %d", i))
		alice.Expect(mucWait, fmt.Sprintf("old news %d", i))
	}
	alice.Send(`<message to='` + room + `' type='groupchat' id='subj'><subject>Weekly sync</subject></message>`)
	alice.Expect(mucWait, "Weekly sync")

	mucJoin(bob, room, "Bob", "<history maxstanzas='3'/>")
	for i := 2; i < 5; i++ {
		got := bob.Expect(mucWait, fmt.Sprintf("old news %d", i))
		if !strings.Contains(got, "urn:xmpp:delay") || !strings.Contains(got, `from="`+room+`"`) || !roomStanzaIDRe.MatchString(got) {
			t.Errorf("history message without delay from the room or stanza-id: %s", got)
		}
	}
	bob.Expect(mucWait, "<subject", "Weekly sync", `from="`+room+`/Alice"`)
}

// A member's other device catches up through the room's archive (XEP-0313), paging with RSM; the ids are the
// stanza-ids the live messages carried.
func TestMUCArchivePaging(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "r")
	bob := Dial(t, srv, "bob", "bob-secret", "phone")
	mucRequire(t, alice)
	room := "archive@" + mucService
	mucCreate(alice, room, "Alice", map[string]string{"muc#roomconfig_membersonly": "1", "muc#roomconfig_persistentroom": "1"})
	mucAdmin(alice, room, "m", `<item jid='bob@localhost' affiliation='member'/>`)
	mucJoin(bob, room, "Bob", "")
	var live []string
	for i := range 12 {
		mucSay(alice, room, fmt.Sprintf("a%d", i), fmt.Sprintf("archived %02d", i))
		got := bob.Expect(mucWait, fmt.Sprintf("archived %02d", i))
		m := roomStanzaIDRe.FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("live message without stanza-id: %s", got)
		}
		live = append(live, m[1])
	}

	laptop := Dial(t, srv, "bob", "bob-secret", "laptop") // not in the room
	var seen []string
	after := ""
	for page := 0; ; page++ {
		set := "<set xmlns='http://jabber.org/protocol/rsm'><max>5</max>"
		if after != "" {
			set += "<after>" + after + "</after>"
		}
		set += "</set>"
		laptop.Send(fmt.Sprintf(`<iq type='set' id='p%d' to='%s'><query xmlns='urn:xmpp:mam:2' queryid='q%d'>%s</query></iq>`,
			page, room, page, set))
		want := min(5, 12-len(seen))
		for range want {
			got := laptop.Expect(mucWait, "<result", fmt.Sprintf(`queryid="q%d"`, page), "archived")
			m := regexp.MustCompile(`<result[^>]*\bid="([^"]+)"`).FindStringSubmatch(got)
			if m == nil {
				t.Fatalf("result without id: %s", got)
			}
			seen = append(seen, m[1])
		}
		fin := laptop.Expect(mucWait, fmt.Sprintf(`id="p%d"`, page), "<fin")
		if !strings.Contains(fin, ">12</count>") {
			t.Errorf("fin without count 12: %s", fin)
		}
		if len(seen) == 12 {
			if !strings.Contains(fin, `complete="true"`) {
				t.Errorf("last page not complete: %s", fin)
			}
			break
		}
		if !strings.Contains(fin, `complete="false"`) {
			t.Fatalf("page %d complete early: %s", page, fin)
		}
		after = seen[len(seen)-1]
		if page > 4 {
			t.Fatal("too many pages")
		}
	}
	if strings.Join(seen, ",") != strings.Join(live, ",") {
		t.Errorf("archive ids %q\nlive stanza-ids %q", seen, live)
	}
	// Not a member, no archive.
	srv.AddUser("eve", "eve-secret")
	eve := Dial(t, srv, "eve", "eve-secret", "r")
	eve.Send(`<iq type='set' id='e' to='` + room + `'><query xmlns='urn:xmpp:mam:2'/></iq>`)
	eve.Expect(mucWait, `id="e"`, `type="error"`, "forbidden")
}

// A persistent room keeps its configuration, members, history and subject across a restart.
func TestMUCRoomSurvivesRestart(t *testing.T) {
	srv := Start(t, "")
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.AddUser(u, u+"-secret")
	}
	alice := Dial(t, srv, "alice", "alice-secret", "r")
	mucRequire(t, alice)
	room := "lasting@" + mucService
	mucCreate(alice, room, "Alice", map[string]string{"muc#roomconfig_membersonly": "1", "muc#roomconfig_persistentroom": "1",
		"muc#roomconfig_roomname": "Lasting", "muc#roomconfig_whois": "anyone"})
	mucAdmin(alice, room, "m", `<item jid='bob@localhost' affiliation='member'/>`)
	mucSay(alice, room, "x1", "before the restart")
	alice.Expect(mucWait, "before the restart")
	alice.Send(`<message to='` + room + `' type='groupchat' id='s'><subject>Still here</subject></message>`)
	alice.Expect(mucWait, "Still here")

	srv.Restart()
	bob := Dial(t, srv, "bob", "bob-secret", "r")
	carol := Dial(t, srv, "carol", "carol-secret", "r")
	mucJoinRefused(carol, room, "Carol", "registration-required")
	self := mucJoin(bob, room, "Bob", "")
	if !strings.Contains(self, `affiliation="member"`) || !strings.Contains(self, `code="100"`) {
		t.Errorf("after restart: %s", self)
	}
	bob.Expect(mucWait, "before the restart", "urn:xmpp:delay")
	bob.Expect(mucWait, "<subject", "Still here")
	bob.Send(`<iq type='get' id='info' to='` + room + `'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	bob.Expect(mucWait, `id="info"`, `name="Lasting"`, "muc_persistent", "muc_membersonly")
	alice = Dial(t, srv, "alice", "alice-secret", "r2")
	mucJoin(alice, room, "Alice", "<history maxchars='0'/>")
	bob.Expect(mucWait, `from="`+room+`/Alice"`, `affiliation="owner"`)
}

// XEP-0410 self-ping, private messages, a nick change, and a device that disconnects without leaving: with or
// without initial presence, the room sees it go.
func TestMUCSelfPingNickAndDisconnect(t *testing.T) {
	srv := Start(t, "")
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.AddUser(u, u+"-secret")
	}
	alice := Dial(t, srv, "alice", "alice-secret", "r")
	bob := Dial(t, srv, "bob", "bob-secret", "r")
	carol := Dial(t, srv, "carol", "carol-secret", "r")
	mucOnline(carol) // carol has initial presence, bob has not
	mucRequire(t, alice)
	room := "lobby@" + mucService
	mucCreate(alice, room, "Alice", nil)
	mucJoin(bob, room, "Bob", "")
	mucJoin(carol, room, "Carol", "")

	bob.Send(`<iq type='get' id='sp' to='` + room + `/Bob'><ping xmlns='urn:xmpp:ping'/></iq>`)
	bob.Expect(mucWait, `id="sp"`, `type="result"`)
	alice.Send(`<iq type='get' id='sp2' to='` + room + `/Nobody'><ping xmlns='urn:xmpp:ping'/></iq>`)
	alice.Expect(mucWait, `id="sp2"`, `type="error"`)

	bob.Send(`<message to='` + room + `/Alice' type='chat' id='pm'><body>just between us</body></message>`)
	got := alice.Expect(mucWait, "just between us")
	if !strings.Contains(got, `from="`+room+`/Bob"`) || !strings.Contains(got, nsMUCUser) {
		t.Errorf("private message: %s", got)
	}

	bob.Send(`<presence to='` + room + `/Robert'/>`)
	alice.Expect(mucWait, `type="unavailable"`, `from="`+room+`/Bob"`, `code="303"`, `nick="Robert"`)
	alice.Expect(mucWait, `from="`+room+`/Robert"`)

	bob.S.Close()
	alice.Expect(mucWait, `type="unavailable"`, `from="`+room+`/Robert"`)
	carol.S.Close()
	alice.Expect(mucWait, `type="unavailable"`, `from="`+room+`/Carol"`)
	bob2 := Dial(t, srv, "bob", "bob-secret", "r2")
	bob2.Send(`<iq type='get' id='sp3' to='` + room + `/Robert'><ping xmlns='urn:xmpp:ping'/></iq>`)
	bob2.Expect(mucWait, `id="sp3"`, `type="error"`, "not-acceptable")
}

// slixmpp's XEP-0045 plugin creates and configures a room; mellium clients join it and both sides exchange
// messages, with the room's stanza-id on each.
func TestMUCSlixmpp(t *testing.T) {
	requireSlixmpp(t)
	srv := Start(t, "")
	for _, u := range []string{"slix", "bob", "carol"} {
		srv.AddUser(u, u+"-secret")
	}
	bob := Dial(t, srv, "bob", "bob-secret", "mellium")
	carol := Dial(t, srv, "carol", "carol-secret", "mellium")
	mucRequire(t, bob)
	room := "polyglot@" + mucService
	script, _ := filepath.Abs(filepath.Join("peers", "muc_slixmpp.py"))
	p := startPeer(t, "slixmpp-muc", exec.Command(debianPython, script, "--jid", "slix@localhost", "--password", "slix-secret",
		"--port", port(t, srv.Addrs["c2s"]), "--ca", filepath.Join(srv.Dir, "tls", "localhost.crt"), "--room", room,
		"--nick", "slix", "--send", "hello from slixmpp", "--expect", "hello from mellium", "--timeout", "30"))
	p.waitLine(30*time.Second, "READY")

	mucJoin(bob, room, "bob", "")
	mucJoin(carol, room, "carol", "")
	bob.Expect(mucWait, `from="`+room+`/carol"`)
	mucSay(bob, room, "m1", "hello from mellium")
	carol.Expect(mucWait, "hello from mellium", `from="`+room+`/bob"`)
	p.waitLine(mucWait, "RECV bob hello from mellium")
	for _, c := range []*Client{bob, carol} {
		got := expectWhilePeer(c, p, mucWait, "hello from slixmpp")
		if !strings.Contains(got, `from="`+room+`/slix"`) || !roomStanzaIDRe.MatchString(got) {
			t.Errorf("%s got %s", c.JID, got)
		}
	}
	p.wait(30 * time.Second)
	out := p.Output()
	for _, want := range []string{"OK joined slix codes=110,170,201", "OK configured", "muc_persistent", "muc_nonanonymous",
		"OK reflected stanza-id=", "by=" + room, "DONE"} {
		if !strings.Contains(out, want) {
			t.Errorf("slixmpp did not print %q; stdout:\n%s", want, out)
		}
	}
	bob.Expect(mucWait, `type="unavailable"`, `from="`+room+`/slix"`)
}
