package muc

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// fanOutRoom returns a service with one room of n occupants whose router only counts, and a groupchat
// message from the first occupant.
func fanOutRoom(b *testing.B, n int, archive bool) (*env, *stanza.Stanza) {
	arch := newMemArchive()
	arch.off = !archive
	e := newEnvWith(b, Config{MaxOccupants: n}, newMemRooms(), arch)
	e.t = &testing.T{}
	e.r.got = nil // count only
	ctx := b.Context()
	must := func(raw string) *stanza.Stanza {
		s, err := stanza.Parse([]byte(raw))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	e.m.HandleStanza(ctx, module.Origin{}, must("<presence from='u0@localhost/r' to='"+roomJ+"/u0'><x xmlns='"+NS+"'/></presence>"))
	e.m.HandleStanza(ctx, module.Origin{}, must("<iq type='set' id='c' from='u0@localhost/r' to='"+roomJ+"'><query xmlns='"+NSOwner+
		"'><x xmlns='jabber:x:data' type='submit'/></query></iq>"))
	for i := 1; i < n; i++ {
		e.m.HandleStanza(ctx, module.Origin{}, must(fmt.Sprintf("<presence from='u%d@localhost/r' to='%s/u%d'><x xmlns='%s'>"+
			"<history maxstanzas='0'/></x></presence>", i, roomJ, i, NS)))
	}
	if got := e.m.Stats.Occupants.Load(); got != int64(n) {
		b.Fatalf("%d occupants, want %d", got, n)
	}
	msg := must("<message type='groupchat' id='bench' from='u0@localhost/r' to='" + roomJ + "'>" +
		"<body>A message of about the size people write in a group chat, with a link https://example.net/x</body>" +
		"<origin-id xmlns='urn:xmpp:sid:0' id='o-1'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
	return e, msg
}

// BenchmarkFanOut measures groupchat deliveries per second into a 100-occupant room: stanza-id stamping,
// the (in-memory) archive append, history, and one addressed copy routed per occupant.
func BenchmarkFanOut(b *testing.B) {
	for _, archive := range []bool{false, true} {
		b.Run(fmt.Sprintf("occupants=100/archive=%v", archive), func(b *testing.B) {
			e, msg := fanOutRoom(b, 100, archive)
			ctx := b.Context()
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				e.m.HandleStanza(ctx, module.Origin{}, msg)
			}
			el := time.Since(start)
			d := e.m.Stats.Deliveries.Load()
			b.ReportMetric(float64(d)/el.Seconds(), "deliveries/s")
			b.ReportMetric(float64(d)/float64(b.N), "deliveries/op")
		})
	}
	b.Run("occupants=100/senders=4", func(b *testing.B) {
		e, msg := fanOutRoom(b, 100, false)
		ctx := b.Context()
		b.ReportAllocs()
		b.SetParallelism(2) // 2 cores: 4 goroutines
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				e.m.HandleStanza(ctx, module.Origin{}, msg)
			}
		})
		el := time.Since(start)
		b.ReportMetric(float64(e.m.Stats.Deliveries.Load())/el.Seconds(), "deliveries/s")
	})
}

// TestNoRoutingUnderLock checks that nothing is routed while the room's lock, or the module's, is held
// (DESIGN.md: never hold a room lock while handing a stanza to a connection).
func TestNoRoutingUnderLock(t *testing.T) {
	e := newEnv(t, Config{})
	e.createRoom(alice, "Alice", map[string]string{"muc#roomconfig_membersonly": "1", "muc#roomconfig_persistentroom": "1"})
	r := e.m.live["room"]
	e.r.onRoute = func(s *stanza.Stanza) {
		if !r.mu.TryLock() {
			t.Errorf("routed with the room lock held: %s", s.Raw)
			return
		}
		r.mu.Unlock()
		if !e.m.mu.TryLock() {
			t.Errorf("routed with the module lock held: %s", s.Raw)
			return
		}
		e.m.mu.Unlock()
		for name, mu := range map[string]*sync.Mutex{"post": &r.postMu, "fan": &r.fanMu} {
			if !mu.TryLock() {
				t.Errorf("routed with the room's %s lock held: %s", name, s.Raw)
				return
			}
			mu.Unlock()
		}
	}
	e.in("<iq type='set' id='g' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item jid='bob@localhost' affiliation='member'/></query></iq>")
	e.join(bob, "Bob")
	e.in("<message type='groupchat' id='m' from='" + bob + "' to='" + roomJ + "'><body>x</body></message>")
	e.in("<message type='chat' id='p' from='" + bob + "' to='" + roomJ + "/Alice'><body>x</body></message>")
	e.in("<message from='" + alice + "' to='" + roomJ + "'><x xmlns='" + NSUser + "'><invite to='carol@localhost'/></x></message>")
	e.in("<presence from='" + bob + "' to='" + roomJ + "/Robert'/>")
	e.in("<iq type='set' id='k' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSAdmin + "'><item nick='Robert' role='none'/></query></iq>")
	e.join(bob, "Bob")
	e.in("<iq type='set' id='q' from='" + alice + "' to='" + roomJ + "'><query xmlns='urn:xmpp:mam:2'/></iq>")
	e.in("<iq type='set' id='c' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSOwner + "'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_roomname'><value>n</value></field></x></query></iq>")
	e.in("<iq type='set' id='d' from='" + alice + "' to='" + roomJ + "'><query xmlns='" + NSOwner + "'><destroy/></query></iq>")
	if e.r.n < 10 {
		t.Fatalf("only %d stanzas routed", e.r.n)
	}
}

// TestConcurrentRoomTraffic runs joins, leaves, messages and moderation at once; with -race it checks the
// locking.
func TestConcurrentRoomTraffic(t *testing.T) {
	e := newEnv(t, Config{MaxOccupants: 200})
	e.createRoom("owner@localhost/r", "owner", nil)
	e.r.got = nil
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 40 {
				full := fmt.Sprintf("u%d@localhost/r", w)
				nick := fmt.Sprintf("u%d", w)
				switch i % 5 {
				case 0:
					e.in(fmt.Sprintf("<presence from='%s' to='%s/%s'><x xmlns='%s'/></presence>", full, roomJ, nick, NS))
				case 1, 2:
					e.in(fmt.Sprintf("<message type='groupchat' id='m' from='%s' to='%s'><body>%d</body></message>", full, roomJ, i))
				case 3:
					e.in(fmt.Sprintf("<iq type='set' id='k' from='owner@localhost/r' to='%s'><query xmlns='%s'><item nick='u%d' role='none'/></query></iq>",
						roomJ, NSAdmin, (w+1)%8))
				case 4:
					e.in(fmt.Sprintf("<presence type='unavailable' from='%s' to='%s/%s'/>", full, roomJ, nick))
				}
			}
		})
	}
	wg.Wait()
	if e.m.Stats.Rooms.Load() != 1 {
		t.Fatalf("rooms = %d", e.m.Stats.Rooms.Load())
	}
}
