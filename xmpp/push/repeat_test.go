package push

import (
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// stamped is alice's message id to bob as the archive hands it on: with a XEP-0359 stanza-id it stamped.
func stamped(id, sid, body string) *stanza.Stanza {
	return stanza.New(stanza.Message, "chat", id, jid.MustParse(alice), jid.MustParse(bob),
		[]byte("<body>"+body+"</body><stanza-id xmlns='urn:xmpp:sid:0' by='"+bob+"' id='"+sid+"'/>"))
}

// Issue 19 item 8: a message pushed because the session it went to hibernates was pushed again when that session
// ended unresumed: its unacknowledged stanzas are routed again and reach the Undeliverable stage (with a new
// stanza-id from the archive), or another hibernating session. A message is announced at most once per
// registration; other messages still are, and a registration that was not told of it yet is.
func TestDefectPushedOnceWhenHibernatedSessionEndsUnresumed(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"throttling off", Config{MinInterval: -1}},
		{"default throttling", Config{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg, nil)
			h.mustIQ(bobPhone, enableA)
			phone := &fakeSession{jid: jid.MustParse(bobPhone), available: true, hibernating: true}
			h.router.bind(phone)

			h.stage(module.Inbound, bob, stamped("m1", "sid-1", "are you there"), phone)
			h.expectOne()
			h.clock.Advance(time.Minute) // past MinInterval: a repeat would be a notification of its own

			// The phone's session is not resumed: the message is routed again, stamped again by the archive.
			h.stage(module.Undeliverable, bob, stamped("m1", "sid-2", "are you there"))
			h.expectNone()
			// Or it reaches another of bob's sessions that hibernates too.
			tablet := &fakeSession{jid: jid.MustParse(bob + "/tablet"), available: true, hibernating: true}
			h.stage(module.Inbound, bob, stamped("m1", "sid-3", "are you there"), tablet)
			h.expectNone()
			h.clock.Advance(time.Minute)
			h.expectNone() // nothing was coalesced for later either

			// Another message is announced, as is the same one to a registration that has not seen it.
			h.stage(module.Undeliverable, bob, stamped("m2", "sid-4", "are you there"))
			if c, _ := h.expectOne().field("message-count"); c != "2" {
				t.Errorf("message-count %s after a repeat was skipped, want 2 (the repeat is not counted)", c)
			}
			h.clock.Advance(time.Minute)
			h.mustIQ(bob+"/tablet", `<enable xmlns='urn:xmpp:push:0' jid='push.example.org' node='node-b'/>`)
			h.stage(module.Undeliverable, bob, stamped("m1", "sid-5", "are you there"))
			if n := h.expectOne(); n.Publish.Node != "node-b" {
				t.Errorf("notified node %q, want only the new registration node-b", n.Publish.Node)
			}
		})
	}
}

// The memory of announcements is bounded in time (Config.Redelivery, c2s.resume_timeout, plus a minute) and
// in size.
func TestAnnouncementsExpireAndAreBounded(t *testing.T) {
	h := newHarness(t, Config{MinInterval: -1, Redelivery: time.Minute}, nil)
	h.mustIQ(bobPhone, enableA)
	phone := &fakeSession{jid: jid.MustParse(bobPhone), available: true, hibernating: true}
	h.stage(module.Inbound, bob, stamped("m1", "sid-1", "hi"), phone)
	h.expectOne()
	h.clock.Advance(2*time.Minute + time.Second)
	h.m.sweep(h.clock.Now())
	if n := len(h.m.announced.at); n != 0 {
		t.Fatalf("%d announcements kept past Redelivery plus a minute", n)
	}
	// Long after, an identical message is a new one.
	h.stage(module.Undeliverable, bob, stamped("m1", "sid-2", "hi"))
	h.expectOne()

	a := newAnnouncements(time.Hour)
	now := time.Now()
	for i := range maxAnnounced + 1000 {
		if !a.first(uint64(i), bob, regKey{"push.example.org", "n"}, now, true) {
			t.Fatalf("message %d reported as announced", i)
		}
	}
	if len(a.at) != maxAnnounced || len(a.order)-a.head != maxAnnounced {
		t.Fatalf("%d announcements (%d in order), want the bound %d", len(a.at), len(a.order)-a.head, maxAnnounced)
	}
	if a.first(uint64(maxAnnounced+999), bob, regKey{"push.example.org", "n"}, now, true) {
		t.Fatal("the newest announcement was forgotten")
	}
	if !a.first(0, bob, regKey{"push.example.org", "n"}, now, false) {
		t.Fatal("the oldest announcement was kept past the bound")
	}
}
