package offline_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/presence"
	"parley.im/parley/xmpp/stanza"

	"parley.im/parley/offline"
)

type env struct {
	h     *moduletest.Host
	m     *offline.Module
	store storage.Archive
	st    storage.Store
}

func setup(t *testing.T, cfg offline.Config) env {
	t.Helper()
	st := moduletest.Store(t)
	e := env{st: st, store: st.Archive("offline")}
	e.m = offline.New(cfg, e.store)
	e.h = moduletest.New(t, e.m)
	return e
}

func (e env) stored(t *testing.T, owner string) []storage.ArchiveItem {
	t.Helper()
	items, _, err := e.store.Query(context.Background(), owner, storage.ArchiveQuery{})
	if err != nil {
		t.Fatal(err)
	}
	return items
}

type received struct {
	From  string `xml:"from,attr"`
	Body  string `xml:"body"`
	Delay []struct {
		From  string `xml:"from,attr"`
		Stamp string `xml:"stamp,attr"`
	} `xml:"urn:xmpp:delay delay"`
}

func bodies(t *testing.T, ss []*stanza.Stanza) []string {
	t.Helper()
	var out []string
	for _, s := range ss {
		var r received
		moduletest.Decode(t, s, &r)
		out = append(out, r.Body)
	}
	return out
}

func TestStoredWhenUndeliverableAndDeliveredWithDelayOnAvailable(t *testing.T) {
	ctx := t.Context()
	e := setup(t, offline.Config{})
	before := time.Now().UTC().Add(-time.Second)
	for i := range 3 {
		e.h.Router.Route(ctx, moduletest.Message("bob@other.org/x", "alice@example.net", "chat", "<body>"+strconv.Itoa(i)+"</body>"))
	}
	if left := e.h.Router.Left(); len(left) != 0 {
		t.Fatalf("the sender got %d bounces for stored messages", len(left))
	}
	if n := len(e.stored(t, "alice@example.net")); n != 3 {
		t.Fatalf("stored %d messages, want 3", n)
	}

	phone := e.h.Online(ctx, "alice@example.net/phone", 0)
	e.h.Notify(ctx, module.Available, phone)

	got := phone.Received()
	if b := bodies(t, got); !slices.Equal(b, []string{"0", "1", "2"}) {
		t.Fatalf("delivered %q, want the three messages oldest first", b)
	}
	for _, s := range got {
		var r received
		moduletest.Decode(t, s, &r)
		if r.From != "bob@other.org/x" || len(r.Delay) != 1 || r.Delay[0].From != "example.net" {
			t.Fatalf("delivered %s, want bob's message with one delay from the server", s.Raw)
		}
		at, err := time.Parse(time.RFC3339Nano, r.Delay[0].Stamp)
		if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
			t.Errorf("delay stamp %q (%v), want when the server took the message", r.Delay[0].Stamp, err)
		}
	}
	if n := len(e.stored(t, "alice@example.net")); n != 0 {
		t.Errorf("%d messages still stored after delivery", n)
	}
	if e.m.Stored.Load() != 3 || e.m.Delivered.Load() != 3 {
		t.Errorf("counters stored %d delivered %d, want 3 and 3", e.m.Stored.Load(), e.m.Delivered.Load())
	}

	// Delivered once: the next resource to become available gets nothing.
	laptop := e.h.Online(ctx, "alice@example.net/laptop", 0)
	e.h.Notify(ctx, module.Available, laptop)
	if n := len(laptop.Received()); n != 0 {
		t.Errorf("a second resource got %d already delivered messages", n)
	}
}

func TestDeliveredWhenInitialPresenceIsHandled(t *testing.T) {
	ctx := t.Context()
	st := moduletest.Store(t)
	h := moduletest.New(t, presence.New(st, st), offline.New(offline.Config{}, st.Archive("offline")))
	h.Router.Route(ctx, moduletest.Message("bob@other.org/x", "alice@example.net", "chat", "<body>while away</body>"))

	phone := h.Connect(ctx, "alice@example.net/phone")
	if err := h.SendPresence(ctx, phone, "", "", "<priority>-1</priority>"); err != nil {
		t.Fatal(err)
	}
	if n := len(moduletest.Only(phone.Received(), stanza.Message, "*")); n != 0 {
		t.Errorf("a session with negative priority got %d offline messages (RFC 6121 8.5.2.1.1)", n)
	}
	if err := h.SendPresence(ctx, phone, "", "", "<priority>1</priority>"); err != nil {
		t.Fatal(err)
	}
	if b := bodies(t, moduletest.Only(phone.Received(), stanza.Message, "*")); !slices.Equal(b, []string{"while away"}) {
		t.Errorf("after available presence: %q, want the stored message", b)
	}
}

func TestMessagesNotWorthStoring(t *testing.T) {
	ctx := t.Context()
	e := setup(t, offline.Config{})
	for _, c := range []struct{ name, typ, inner string }{
		{"chat state", "chat", "<composing xmlns='http://jabber.org/protocol/chatstates'/>"},
		{"no-store hint", "chat", "<body>x</body><no-store xmlns='urn:xmpp:hints'/>"},
		{"headline", "headline", "<body>x</body>"},
		{"groupchat", "groupchat", "<body>x</body>"},
	} {
		res := e.h.Undeliverable(ctx, moduletest.Message("bob@other.org/x", "alice@example.net", c.typ, c.inner))
		if res.Verdict != module.Handled || res.Err != nil {
			t.Errorf("%s: %+v, want it dropped silently", c.name, res)
		}
	}
	if n := len(e.stored(t, "alice@example.net")); n != 0 {
		t.Errorf("stored %d messages, want none", n)
	}
	// What is worth keeping besides a body.
	for _, inner := range []string{"<received xmlns='urn:xmpp:receipts' id='r'/>", "<store xmlns='urn:xmpp:hints'/>",
		"<x xmlns='jabber:x:conference' jid='room@muc.example.net'/>"} {
		e.h.Undeliverable(ctx, moduletest.Message("bob@other.org/x", "alice@example.net", "", inner))
	}
	if n := len(e.stored(t, "alice@example.net")); n != 3 {
		t.Errorf("stored %d of a receipt, a store hint and an invitation, want 3", n)
	}
}

func TestCapBouncesToTheSender(t *testing.T) {
	ctx := t.Context()
	e := setup(t, offline.Config{MaxPerAccount: 2})
	for i := range 3 {
		e.h.Router.Route(ctx, moduletest.Message("bob@other.org/x", "alice@example.net", "chat", "<body>"+strconv.Itoa(i)+"</body>"))
	}
	if n := len(e.stored(t, "alice@example.net")); n != 2 {
		t.Errorf("stored %d messages with a cap of 2", n)
	}
	left := e.h.Router.Left()
	if len(left) != 1 || left[0].To.String() != "bob@other.org/x" || moduletest.ErrorCondition(left[0]) != "resource-constraint" {
		t.Fatalf("to the sender: %v, want one resource-constraint error", left)
	}
	// Once delivered, there is room again.
	phone := e.h.Online(ctx, "alice@example.net/phone", 0)
	e.h.Notify(ctx, module.Available, phone)
	e.h.Close(ctx, phone)
	res := e.h.Undeliverable(ctx, moduletest.Message("bob@other.org/x", "alice@example.net", "chat", "<body>3</body>"))
	if res.Err != nil || res.Verdict != module.Handled {
		t.Errorf("after delivery: %+v, want it stored", res)
	}
}

func TestExpiredMessagesAreDeleted(t *testing.T) {
	ctx := t.Context()
	e := setup(t, offline.Config{Retention: time.Hour, SweepInterval: time.Millisecond})
	old := storage.ArchiveItem{ID: "old", With: "bob@other.org", Time: time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Microsecond),
		Data: moduletest.Message("bob@other.org/x", "alice@example.net", "chat", "<body>old</body>").Raw}
	if err := e.store.Append(ctx, "alice@example.net", old); err != nil {
		t.Fatal(err)
	}
	e.h.Undeliverable(ctx, moduletest.Message("bob@other.org/x", "alice@example.net", "chat", "<body>new</body>"))

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { e.m.Run(runCtx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for e.m.Expired.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if e.m.Expired.Load() != 1 {
		t.Fatalf("expired %d messages, want 1", e.m.Expired.Load())
	}
	phone := e.h.Online(ctx, "alice@example.net/phone", 0)
	e.h.Notify(ctx, module.Available, phone)
	if b := bodies(t, phone.Received()); !slices.Equal(b, []string{"new"}) {
		t.Errorf("delivered %q after the sweep, want only the message within retention", b)
	}
}

func TestRetryIsStoredOnce(t *testing.T) {
	ctx := t.Context()
	e := setup(t, offline.Config{})
	m := moduletest.Message("bob@other.org/x", "alice@example.net", "chat", "<body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='o-1'/>")
	e.h.Undeliverable(ctx, m)
	if res := e.h.Undeliverable(ctx, m); res.Verdict != module.Handled || res.Err != nil {
		t.Errorf("retry: %+v, want it handled", res)
	}
	if n := len(e.stored(t, "alice@example.net")); n != 1 {
		t.Errorf("stored %d copies, want 1", n)
	}
}

func TestFailedSendKeepsTheRest(t *testing.T) {
	ctx := t.Context()
	e := setup(t, offline.Config{})
	for i := range 2 {
		e.h.Undeliverable(ctx, moduletest.Message("bob@other.org/x", "alice@example.net", "chat", "<body>"+strconv.Itoa(i)+"</body>"))
	}
	gone := e.h.Online(ctx, "alice@example.net/gone", 0)
	gone.FailSends(errors.New("session closed"))
	e.h.Notify(ctx, module.Available, gone)
	if n := len(e.stored(t, "alice@example.net")); n != 2 {
		t.Fatalf("%d messages stored after a session that could not take them, want 2", n)
	}
	phone := e.h.Online(ctx, "alice@example.net/phone", 0)
	e.h.Notify(ctx, module.Available, phone)
	if b := bodies(t, phone.Received()); !slices.Equal(b, []string{"0", "1"}) {
		t.Errorf("next session got %q, want both", b)
	}
}

func TestExistingDelayIsKept(t *testing.T) {
	ctx := t.Context()
	e := setup(t, offline.Config{})
	e.h.Undeliverable(ctx, moduletest.Message("bob@other.org/x", "alice@example.net", "chat",
		"<body>x</body><delay xmlns='urn:xmpp:delay' from='other.org' stamp='2020-01-01T00:00:00Z'/>"))
	phone := e.h.Online(ctx, "alice@example.net/phone", 0)
	e.h.Notify(ctx, module.Available, phone)
	var r received
	moduletest.Decode(t, phone.Received()[0], &r)
	if len(r.Delay) != 1 || r.Delay[0].From != "other.org" {
		t.Errorf("delays %+v, want the original one only", r.Delay)
	}
	if fs := e.h.Registry.Features(module.Server); !slices.Contains(fs, offline.NS) {
		t.Errorf("server features %v lack %s", fs, offline.NS)
	}
}
