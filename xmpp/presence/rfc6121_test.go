package presence_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/presence"
	"parley.im/parley/xmpp/roster"
	"parley.im/parley/xmpp/stanza"
)

// These tests assert on what the sessions of each account end up receiving and on what leaves the server,
// not on whether the module writes to sessions itself or routes through the router: both are the same
// behaviour to a client.

func setup(t *testing.T) (*moduletest.Host, storage.Store) {
	t.Helper()
	st := moduletest.Store(t)
	return moduletest.New(t, roster.New(roster.Config{}, st, st), presence.New(st, st)), st
}

// befriend stores owner's roster item for contact with subscription sub.
func befriend(t *testing.T, st storage.Roster, owner, contact string, sub storage.Subscription) {
	t.Helper()
	if _, err := st.PutRosterItem(context.Background(), owner, storage.RosterItem{JID: contact, Subscription: sub}); err != nil {
		t.Fatal(err)
	}
}

func item(t *testing.T, st storage.Roster, owner, contact string) storage.RosterItem {
	t.Helper()
	it, err := st.RosterItem(context.Background(), owner, contact)
	if err != nil {
		t.Fatalf("%s's roster item for %s: %v", owner, contact, err)
	}
	return it
}

// presences returns "type from" for each presence in ss ("available" for an empty type).
func presences(ss []*stanza.Stanza) []string {
	var out []string
	for _, s := range moduletest.Only(ss, stanza.Presence, "*") {
		typ := s.Type
		if typ == "" {
			typ = "available"
		}
		out = append(out, typ+" "+s.From.String())
	}
	slices.Sort(out)
	return out
}

func same(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// leftTo returns "type from -> to" for each presence that left the server.
func leftTo(h *moduletest.Host) []string {
	var out []string
	for _, s := range moduletest.Only(h.Router.Left(), stanza.Presence, "*") {
		typ := s.Type
		if typ == "" {
			typ = "available"
		}
		out = append(out, typ+" "+s.From.String()+" -> "+s.To.String())
	}
	slices.Sort(out)
	return out
}

func mustPresence(t *testing.T, h *moduletest.Host, from *moduletest.Session, to, typ, inner string) {
	t.Helper()
	if err := h.SendPresence(t.Context(), from, to, typ, inner); err != nil {
		t.Fatalf("presence %q from %s to %q: %v", typ, from.JID(), to, err)
	}
}

func TestInitialPresenceGoesToSubscribersAndOwnResources(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t)
	const alice = "alice@example.net"
	// Rosters on both sides agree, as the subscription handshake leaves them.
	befriend(t, st, alice, "bob@example.net", storage.SubBoth)
	befriend(t, st, "bob@example.net", alice, storage.SubBoth)
	befriend(t, st, alice, "carol@example.net", storage.SubFrom) // carol sees alice, alice does not see carol
	befriend(t, st, "carol@example.net", alice, storage.SubTo)
	befriend(t, st, alice, "dave@example.net", storage.SubTo) // alice sees dave, dave does not see alice
	befriend(t, st, "dave@example.net", alice, storage.SubFrom)
	befriend(t, st, alice, "frank@example.net", storage.SubNone)
	befriend(t, st, alice, "erin@other.org", storage.SubFrom)

	bob := h.Online(ctx, "bob@example.net/a", 0)
	bobIdle := h.Connect(ctx, "bob@example.net/b") // bound, no initial presence yet
	carol := h.Online(ctx, "carol@example.net/c", 0)
	dave := h.Online(ctx, "dave@example.net/d", 0)
	frank := h.Online(ctx, "frank@example.net/f", 0)
	laptop := h.Online(ctx, alice+"/laptop", 0)
	phone := h.Connect(ctx, alice+"/phone")

	mustPresence(t, h, phone, "", "", "<show>away</show><priority>5</priority>")

	if !phone.Available() || phone.Priority() != 5 {
		t.Errorf("session after initial presence: available %v, priority %d; want true, 5", phone.Available(), phone.Priority())
	}
	from := "available " + alice + "/phone"
	same(t, "bob's available resource", presences(bob.Received()), from)
	same(t, "bob's resource without initial presence", presences(bobIdle.Received()))
	same(t, "carol (subscription from)", presences(carol.Received()), from)
	same(t, "dave (alice is subscribed to him, not he to her)", presences(dave.Received()))
	same(t, "frank (no subscription)", presences(frank.Received()))
	same(t, "alice's other resource", presences(laptop.Received()), from)
	same(t, "remote subscriber", leftTo(h), from+" -> erin@other.org")
	// The new session hears itself, and learns the presence of what it is subscribed to and of its siblings.
	same(t, "alice's new session", presences(phone.Received()), from,
		"available bob@example.net/a", "available dave@example.net/d", "available "+alice+"/laptop")

	for _, s := range bob.Received() {
		if !s.From.Equal(phone.JID()) {
			continue
		}
		var p struct {
			Show     string `xml:"show"`
			Priority int    `xml:"priority"`
		}
		moduletest.Decode(t, s, &p)
		if p.Show != "away" || p.Priority != 5 {
			t.Errorf("bob got %s, want alice's show and priority", s.Raw)
		}
	}
	var available []string
	for _, n := range h.Router.Notified() {
		if n.Event == module.Available {
			available = append(available, n.Session.JID().String())
		}
	}
	same(t, "sessions reported available", available, alice+"/phone")
}

func TestPresenceUpdateIsNotInitial(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t)
	befriend(t, st, "alice@example.net", "bob@example.net", storage.SubBoth)
	befriend(t, st, "bob@example.net", "alice@example.net", storage.SubBoth)
	bob := h.Online(ctx, "bob@example.net/a", 0)
	phone := h.Connect(ctx, "alice@example.net/phone")

	mustPresence(t, h, phone, "", "", "<priority>-1</priority>")
	if n := len(h.Router.Notified()); n != 0 {
		t.Errorf("initial presence with negative priority reported %d session events, want none", n)
	}
	phone.Take()
	bob.Take()
	mustPresence(t, h, phone, "", "", "<show>dnd</show><priority>1</priority>")
	same(t, "bob after the update", presences(bob.Received()), "available alice@example.net/phone")
	// An update does not repeat the contacts' presence to the sender.
	same(t, "alice after the update", presences(phone.Received()), "available alice@example.net/phone")
	if ns := h.Router.Notified(); len(ns) != 1 || ns[0].Event != module.Available || ns[0].Session != phone {
		t.Errorf("going from negative to non-negative priority: events %v, want Available for the session", ns)
	}

	err := h.SendPresence(ctx, phone, "", "", "<priority>200</priority>")
	if se := (*stanza.Error)(nil); !errors.As(err, &se) || se.Condition != "bad-request" {
		t.Errorf("priority 200: err %v, want bad-request", err)
	}
}

func TestProbeAnsweredForSubscribersOnly(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t)
	const alice = "alice@example.net"
	befriend(t, st, alice, "erin@other.org", storage.SubFrom)
	befriend(t, st, alice, "zed@other.org", storage.SubTo)
	h.Online(ctx, alice+"/phone", 3)
	h.Online(ctx, alice+"/laptop", 0)
	h.Connect(ctx, alice+"/idle")

	h.Router.Route(ctx, moduletest.Presence("erin@other.org/home", alice, "probe", ""))
	same(t, "answers to erin's probe", leftTo(h),
		"available "+alice+"/phone -> erin@other.org/home", "available "+alice+"/laptop -> erin@other.org/home")

	h.Router.Reset()
	h.Router.Route(ctx, moduletest.Presence("zed@other.org/x", alice, "probe", ""))
	h.Router.Route(ctx, moduletest.Presence("mallory@other.org/x", alice, "probe", ""))
	same(t, "answers to probes without subscription from", leftTo(h))
}

func TestSubscriptionHandshakeBetweenLocalAccounts(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t)
	alice := h.Online(ctx, "alice@example.net/phone", 0)
	alice.SetInterested()
	bob := h.Online(ctx, "bob@example.net/pc", 0)
	bob.SetInterested()

	mustPresence(t, h, alice, "bob@example.net", "subscribe", "")
	if it := item(t, st, "alice@example.net", "bob@example.net"); !it.AskOut || it.Subscription != storage.SubNone {
		t.Errorf("alice's item after subscribe: %+v, want none with ask", it)
	}
	got := moduletest.Only(bob.Take(), stanza.Presence, "subscribe")
	if len(got) != 1 || got[0].From.String() != "alice@example.net" {
		t.Fatalf("bob got %d subscribe requests %v, want one from alice's bare JID", len(got), got)
	}
	if pushes := moduletest.Only(alice.Take(), stanza.IQ, "set"); len(pushes) != 1 {
		t.Errorf("alice got %d roster pushes for her pending request, want 1", len(pushes))
	}

	mustPresence(t, h, bob, "alice@example.net", "subscribed", "")
	if it := item(t, st, "bob@example.net", "alice@example.net"); it.Subscription != storage.SubFrom {
		t.Errorf("bob's item after approving: %+v, want from", it)
	}
	if it := item(t, st, "alice@example.net", "bob@example.net"); it.Subscription != storage.SubTo || it.AskOut {
		t.Errorf("alice's item after approval: %+v, want to without ask", it)
	}
	same(t, "alice after bob's approval", presences(alice.Received()),
		"subscribed bob@example.net", "available bob@example.net/pc")
	if len(h.Router.Left()) != 0 {
		t.Errorf("a local handshake sent %d stanzas off the server", len(h.Router.Left()))
	}

	// Now bob's presence changes reach alice, and alice's do not reach bob.
	alice.Take()
	bob.Take()
	mustPresence(t, h, bob, "", "", "<show>away</show>")
	same(t, "alice after bob's update", presences(alice.Received()), "available bob@example.net/pc")
	bob.Take()
	mustPresence(t, h, alice, "", "", "<show>away</show>")
	same(t, "bob after alice's update", presences(bob.Received()))
}

func TestSubscribeWhileOfflineIsRedeliveredAtLogin(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t)
	h.Router.Route(ctx, moduletest.Presence("erin@other.org/home", "alice@example.net", "subscribe", "<status>hi</status>"))

	phone := h.Connect(ctx, "alice@example.net/phone")
	phone.SetInterested()
	mustPresence(t, h, phone, "", "", "")
	subs := moduletest.Only(phone.Received(), stanza.Presence, "subscribe")
	if len(subs) != 1 || subs[0].From.String() != "erin@other.org" {
		t.Fatalf("after login: %d subscribe requests %v, want erin's", len(subs), subs)
	}
	if !bytes.Contains(subs[0].Payload(), []byte("<status>hi</status>")) {
		t.Errorf("redelivered request %s lost its status", subs[0].Raw)
	}

	// Approving it makes erin a subscriber: she is told and gets the presence.
	mustPresence(t, h, phone, "erin@other.org", "subscribed", "")
	if it := item(t, st, "alice@example.net", "erin@other.org"); it.Subscription != storage.SubFrom {
		t.Errorf("alice's item after approving: %+v, want from", it)
	}
	same(t, "to erin", leftTo(h), "subscribed alice@example.net -> erin@other.org",
		"available alice@example.net/phone -> erin@other.org")

	// Answered once, not again at the next login.
	laptop := h.Connect(ctx, "alice@example.net/laptop")
	laptop.SetInterested()
	mustPresence(t, h, laptop, "", "", "")
	if n := len(moduletest.Only(laptop.Received(), stanza.Presence, "subscribe")); n != 0 {
		t.Errorf("an answered request was redelivered %d times", n)
	}
}

func TestPreApprovalAnswersTheLaterRequest(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t)
	phone := h.Online(ctx, "alice@example.net/phone", 0)
	phone.SetInterested()

	mustPresence(t, h, phone, "erin@other.org", "subscribed", "")
	if n := len(h.Router.Left()); n != 0 {
		t.Errorf("a pre-approval sent %d stanzas to the contact, want none (RFC 6121 3.4)", n)
	}
	if it := item(t, st, "alice@example.net", "erin@other.org"); !it.PreApproved || it.Subscription != storage.SubNone {
		t.Errorf("item after pre-approval: %+v", it)
	}
	pushes := moduletest.Only(phone.Take(), stanza.IQ, "set")
	if len(pushes) != 1 || !bytes.Contains(pushes[0].Payload(), []byte("approved='true'")) {
		t.Errorf("roster pushes after pre-approval: %v, want one with approved='true'", pushes)
	}

	h.Router.Route(ctx, moduletest.Presence("erin@other.org/home", "alice@example.net", "subscribe", ""))
	same(t, "answer to the pre-approved request", leftTo(h),
		"subscribed alice@example.net -> erin@other.org", "available alice@example.net/phone -> erin@other.org")
	if it := item(t, st, "alice@example.net", "erin@other.org"); it.PreApproved || it.Subscription != storage.SubFrom {
		t.Errorf("item after the request: %+v, want from, approval used up", it)
	}
	if n := len(moduletest.Only(phone.Received(), stanza.Presence, "subscribe")); n != 0 {
		t.Errorf("the user was asked about a pre-approved request %d times", n)
	}
}

func TestUnsubscribedRevokesAndContactSeesUnavailable(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t)
	befriend(t, st, "alice@example.net", "bob@example.net", storage.SubBoth)
	befriend(t, st, "bob@example.net", "alice@example.net", storage.SubBoth)
	alice := h.Online(ctx, "alice@example.net/phone", 0)
	bob := h.Online(ctx, "bob@example.net/pc", 0)

	mustPresence(t, h, alice, "bob@example.net", "unsubscribed", "")
	if it := item(t, st, "alice@example.net", "bob@example.net"); it.Subscription != storage.SubTo {
		t.Errorf("alice's item: %+v, want to", it)
	}
	if it := item(t, st, "bob@example.net", "alice@example.net"); it.Subscription != storage.SubFrom {
		t.Errorf("bob's item: %+v, want from", it)
	}
	same(t, "bob", presences(bob.Received()), "unsubscribed alice@example.net", "unavailable alice@example.net/phone")

	// Bob no longer hears alice.
	bob.Take()
	mustPresence(t, h, alice, "", "", "<show>away</show>")
	same(t, "bob after alice's update", presences(bob.Received()))
}

func TestInboundUnsubscribeEndsTheContactsSubscription(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t)
	befriend(t, st, "alice@example.net", "erin@other.org", storage.SubBoth)
	phone := h.Online(ctx, "alice@example.net/phone", 0)
	phone.SetInterested()

	h.Router.Route(ctx, moduletest.Presence("erin@other.org/x", "alice@example.net", "unsubscribe", ""))
	if it := item(t, st, "alice@example.net", "erin@other.org"); it.Subscription != storage.SubTo {
		t.Errorf("item after erin unsubscribed: %+v, want to", it)
	}
	got := phone.Received()
	same(t, "alice", presences(got), "unsubscribe erin@other.org")
	if n := len(moduletest.Only(got, stanza.IQ, "set")); n != 1 {
		t.Errorf("%d roster pushes, want 1", n)
	}
	// Erin is not a subscriber any more: alice's next presence does not go to her.
	mustPresence(t, h, phone, "", "", "<show>away</show>")
	same(t, "to erin", leftTo(h))
}

func TestUnsolicitedSubscribedIsIgnored(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t)
	befriend(t, st, "alice@example.net", "mallory@other.org", storage.SubNone)
	phone := h.Online(ctx, "alice@example.net/phone", 0)
	phone.SetInterested()
	h.Router.Route(ctx, moduletest.Presence("mallory@other.org/x", "alice@example.net", "subscribed", ""))
	if it := item(t, st, "alice@example.net", "mallory@other.org"); it.Subscription != storage.SubNone {
		t.Errorf("item after unsolicited subscribed: %+v, want none (RFC 6121 3.1.6)", it)
	}
	if got := phone.Received(); len(got) != 0 {
		t.Errorf("alice got %d stanzas for an unsolicited subscribed", len(got))
	}
}

func TestClosedSessionGoesUnavailableEverywhere(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t)
	befriend(t, st, "alice@example.net", "bob@example.net", storage.SubBoth)
	befriend(t, st, "bob@example.net", "alice@example.net", storage.SubBoth)
	befriend(t, st, "alice@example.net", "erin@other.org", storage.SubFrom)
	bob := h.Online(ctx, "bob@example.net/pc", 0)
	frank := h.Online(ctx, "frank@example.net/f", 0) // no subscription: gets directed presence only
	laptop := h.Online(ctx, "alice@example.net/laptop", 0)
	phone := h.Connect(ctx, "alice@example.net/phone")
	mustPresence(t, h, phone, "", "", "")
	mustPresence(t, h, phone, "frank@example.net/f", "", "")
	mustPresence(t, h, phone, "room@muc.other.org/alice", "", "")
	for _, s := range []*moduletest.Session{bob, frank, laptop} {
		s.Take()
	}
	h.Router.Reset()

	h.Close(ctx, phone)

	un := "unavailable alice@example.net/phone"
	same(t, "bob", presences(bob.Received()), un)
	same(t, "frank (directed presence)", presences(frank.Received()), un)
	same(t, "alice's other resource", presences(laptop.Received()), un)
	same(t, "off the server", leftTo(h), un+" -> erin@other.org", un+" -> room@muc.other.org/alice")
}

func TestDirectedPresence(t *testing.T) {
	ctx := t.Context()
	h, _ := setup(t)
	frank := h.Online(ctx, "frank@example.net/f", 0)
	gina := h.Online(ctx, "gina@example.net/g", 0)
	phone := h.Connect(ctx, "alice@example.net/phone")
	mustPresence(t, h, phone, "", "", "")

	mustPresence(t, h, phone, "frank@example.net/f", "", "<show>chat</show>")
	mustPresence(t, h, phone, "gina@example.net/g", "", "")
	mustPresence(t, h, phone, "gina@example.net/g", "unavailable", "")
	same(t, "frank", presences(frank.Received()), "available alice@example.net/phone")
	same(t, "gina", presences(gina.Received()), "available alice@example.net/phone", "unavailable alice@example.net/phone")
	if phone.Available() != true {
		t.Error("directed presence changed the session's own availability")
	}

	// Broadcast unavailable reaches frank, who had directed presence, and not gina, who was already told.
	frank.Take()
	gina.Take()
	mustPresence(t, h, phone, "", "unavailable", "")
	same(t, "frank after broadcast unavailable", presences(frank.Received()), "unavailable alice@example.net/phone")
	same(t, "gina after broadcast unavailable", presences(gina.Received()))
	if phone.Available() {
		t.Error("session still available after unavailable presence")
	}
}

func TestClosedSessionReplacedByNewOneStaysSilent(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t)
	befriend(t, st, "alice@example.net", "bob@example.net", storage.SubBoth)
	befriend(t, st, "bob@example.net", "alice@example.net", storage.SubBoth)
	bob := h.Online(ctx, "bob@example.net/pc", 0)
	old := h.Connect(ctx, "alice@example.net/phone")
	mustPresence(t, h, old, "", "", "")
	// A new connection binds the same resource: the old session is replaced in the table, then ends.
	h.Online(ctx, "alice@example.net/phone", 0)
	bob.Take()
	h.Router.Notify(ctx, module.Closed, old)
	same(t, "bob after the replaced session ended", presences(bob.Received()))
}

func TestSubscriptionWithoutToIsBadRequest(t *testing.T) {
	ctx := t.Context()
	h, _ := setup(t)
	phone := h.Online(ctx, "alice@example.net/phone", 0)
	err := h.SendPresence(ctx, phone, "", "subscribe", "")
	var se *stanza.Error
	if !errors.As(err, &se) || se.Condition != "bad-request" {
		t.Errorf("subscribe without to: %v, want bad-request", err)
	}
}

func TestCapsRecorded(t *testing.T) {
	ctx := t.Context()
	st := moduletest.Store(t)
	m := presence.New(st, st)
	h := moduletest.New(t, m)
	phone := h.Connect(ctx, "alice@example.net/phone")
	mustPresence(t, h, phone, "", "", "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org' ver='abc='/>")
	c, ok := m.CapsOf(phone.JID())
	if !ok || c != (presence.Caps{Node: "https://example.org", Ver: "abc=", Hash: "sha-1"}) {
		t.Errorf("caps = %+v, %v", c, ok)
	}
	h.Close(ctx, phone)
	if _, ok := m.CapsOf(phone.JID()); ok {
		t.Error("caps kept after the session closed")
	}
}

func TestSubscriptionRequestsGoToInterestedAvailableResources(t *testing.T) {
	ctx := t.Context()
	h, _ := setup(t)
	interested := h.Online(ctx, "alice@example.net/phone", 0)
	interested.SetInterested()
	uninterested := h.Online(ctx, "alice@example.net/watch", 0)
	unavailable := h.Connect(ctx, "alice@example.net/idle")
	unavailable.SetInterested()

	h.Router.Route(ctx, moduletest.Presence("erin@other.org/home", "alice@example.net", "subscribe", ""))
	same(t, "interested and available", presences(interested.Received()), "subscribe erin@other.org")
	same(t, "available, never asked for the roster", presences(uninterested.Received()))
	same(t, "interested, not available", presences(unavailable.Received()))
}

// A subscription request the user never answered was redelivered at every login even after the user removed
// the contact from the roster (RFC 6121 2.5.2: removal declines it). The contact is told unsubscribed, and the
// request is forgotten.
func TestDefectRemovedContactsPendingRequestForgotten(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t)
	befriend(t, st, "alice@example.net", "erin@other.org", storage.SubNone)
	h.Router.Route(ctx, moduletest.Presence("erin@other.org/home", "alice@example.net", "subscribe", ""))

	phone := h.Connect(ctx, "alice@example.net/phone")
	phone.SetInterested()
	mustPresence(t, h, phone, "", "", "")
	if n := len(moduletest.Only(phone.Received(), stanza.Presence, "subscribe")); n != 1 {
		t.Fatalf("after login: %d subscribe requests, want erin's", n)
	}
	h.Router.Reset()
	if r := h.SendIQ(ctx, phone, "set", "<query xmlns='jabber:iq:roster'><item jid='erin@other.org' subscription='remove'/></query>"); r.Type != "result" {
		t.Fatalf("remove: %s", r.Raw)
	}
	same(t, "to erin", leftTo(h), "unsubscribed alice@example.net -> erin@other.org")

	laptop := h.Connect(ctx, "alice@example.net/laptop")
	laptop.SetInterested()
	mustPresence(t, h, laptop, "", "", "")
	if n := len(moduletest.Only(laptop.Received(), stanza.Presence, "subscribe")); n != 0 {
		t.Errorf("the declined request was redelivered %d times after the contact's removal", n)
	}
}
