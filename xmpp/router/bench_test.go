package router

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/presence"
	"parley.im/parley/xmpp/stanza"
	"parley.im/parley/xmpp/stream"
)

// Router benchmarks. Each op routes one stanza from a bound session through RouteFrom, as the c2s read loop
// does, to sessions that only count what they are sent, so the figures are the router's own cost (plus the
// presence module's, for presence). The stanzas are real XML read with stanza.Parse; BenchmarkReadRouteMessage
// also frames the envelope with the stream scanner on every op. The whole read → route → write path with the
// real c2s session is BenchmarkReadRouteWrite in xmpp/c2s. Baselines: docs/bench/baseline/router.txt.

// benchChat is a chat message as the c2s listener hands it to the router: the client's bytes with from stamped
// in. %s is the recipient.
const benchChat = "<message from='alice@example.net/desk' to='%s' type='chat' id='ktx72v49' xml:lang='en'>" +
	"<body>Art thou not Romeo, and a Montague? Neither</body><origin-id xmlns='urn:xmpp:sid:0' id='ktx72v49'/></message>"

// benchSession is a module.Session that only counts what it is sent. Its state is atomic so that parallel
// benchmarks stay race-free without a lock the real session would not take.
type benchSession struct {
	jid       jid.JID
	prio      atomic.Int32
	available atomic.Bool
	presence  atomic.Pointer[stanza.Stanza]
	got       atomic.Int64
}

func newBenchSession(full string, prio int, available bool) *benchSession {
	s := &benchSession{jid: jid.MustParse(full)}
	s.prio.Store(int32(prio))
	s.available.Store(available)
	return s
}

func (s *benchSession) ID() string                { return "bench" }
func (s *benchSession) JID() jid.JID              { return s.jid }
func (s *benchSession) Send(*stanza.Stanza) error { s.got.Add(1); return nil }
func (s *benchSession) Presence() *stanza.Stanza  { return s.presence.Load() }
func (s *benchSession) Priority() int             { return int(s.prio.Load()) }
func (s *benchSession) Available() bool           { return s.available.Load() }
func (s *benchSession) Interested() bool          { return false }
func (s *benchSession) SetInterested()            {}
func (s *benchSession) Close(string, string)      {}
func (s *benchSession) Hibernating() bool         { return false }
func (s *benchSession) Describe() module.Resource {
	return module.Resource{JID: s.JID(), Available: s.Available(), Priority: s.Priority()}
}
func (s *benchSession) SetCarbons(bool) {}
func (s *benchSession) SetCaps(string)  {}
func (s *benchSession) SetPresence(p *stanza.Stanza, n int) {
	s.presence.Store(p)
	s.prio.Store(int32(n))
	s.available.Store(p != nil)
}

// stageHooks registers no-op hooks: Undeliverable takes the message (as offline storage does), and with all set
// Outbound and Inbound hooks let it continue (as archive and carbons do when they have nothing to do), so the
// Delivery the stages see is built.
type stageHooks struct{ all bool }

func (stageHooks) Name() string { return "bench-hooks" }
func (m stageHooks) Register(h *module.Host) error {
	h.OnMessage(module.Undeliverable, func(context.Context, *module.Delivery) (module.Verdict, error) {
		return module.Handled, nil
	})
	if m.all {
		pass := func(context.Context, *module.Delivery) (module.Verdict, error) { return module.Continue, nil }
		h.OnMessage(module.Outbound, pass)
		h.OnMessage(module.Inbound, pass)
	}
	return nil
}

func newBenchRouter(tb testing.TB, mods ...module.Module) *Router {
	tb.Helper()
	reg := module.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := New(jid.MustParse("example.net"), reg, nil, log)
	if err := reg.Register(mods, r, jid.MustParse("example.net"), log); err != nil {
		tb.Fatal(err)
	}
	r.Start()
	return r
}

func mustParse(tb testing.TB, raw string) *stanza.Stanza {
	tb.Helper()
	s, err := stanza.Parse([]byte(raw))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// bindBench binds a session and returns it.
func bindBench(r *Router, full string, prio int, available bool) *benchSession {
	s := newBenchSession(full, prio, available)
	r.Bind(s)
	return s
}

// messageCase is one recipient situation of RFC 6121 8.5.
type messageCase struct {
	name string
	to   string
	// setup binds the recipient's sessions and returns the one(s) expected to get the message (nil: none).
	setup func(r *Router) []*benchSession
}

var messageCases = []messageCase{
	{"to=full", "bob@example.net/phone", func(r *Router) []*benchSession {
		bindBench(r, "bob@example.net/desk", 5, true)
		return []*benchSession{bindBench(r, "bob@example.net/phone", 0, true)}
	}},
	{"to=bare-1", "bob@example.net", func(r *Router) []*benchSession {
		return []*benchSession{bindBench(r, "bob@example.net/phone", 0, true)}
	}},
	// RFC 6121 8.5.2.1.1: only the highest non-negative priority gets a message to the bare JID.
	{"to=bare-3", "bob@example.net", func(r *Router) []*benchSession {
		bindBench(r, "bob@example.net/phone", 1, true)
		bindBench(r, "bob@example.net/laptop", 3, true)
		return []*benchSession{bindBench(r, "bob@example.net/desk", 5, true)}
	}},
	// A bare JID over 32 bytes: the router's string conversions of it no longer fit the compiler's stack buffer.
	{"to=full-long", "benvolio.montague.of.verona@example.net/Conversations.Xk3p", func(r *Router) []*benchSession {
		return []*benchSession{bindBench(r, "benvolio.montague.of.verona@example.net/Conversations.Xk3p", 0, true)}
	}},
	// No session: the Undeliverable stage takes it (a no-op here; offline storage in the server).
	{"to=offline", "carol@example.net", func(*Router) []*benchSession { return nil }},
}

// BenchmarkRouteMessage routes a parsed chat message from a local session to a local account: the router alone.
func BenchmarkRouteMessage(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, mods []module.Module, c messageCase) {
		r := newBenchRouter(b, mods...)
		alice := bindBench(r, "alice@example.net/desk", 0, true)
		want := c.setup(r)
		st := mustParse(b, fmt.Sprintf(benchChat, c.to))
		b.ReportAllocs()
		for b.Loop() {
			r.RouteFrom(ctx, originOf(alice), st)
		}
		checkDelivered(b, want, alice)
	}
	for _, c := range messageCases {
		b.Run(c.name, func(b *testing.B) { run(b, []module.Module{stageHooks{}}, c) })
	}
	// With a pass-through hook in Outbound and Inbound, as when archive and carbons are registered.
	b.Run("to=full/stages", func(b *testing.B) { run(b, []module.Module{stageHooks{all: true}}, messageCases[0]) })
}

func checkDelivered(b *testing.B, want []*benchSession, sender *benchSession) {
	b.Helper()
	for _, s := range want {
		if s.got.Load() == 0 {
			b.Fatalf("%s got nothing", s.jid)
		}
	}
	if n := sender.got.Load(); n != 0 {
		b.Fatalf("sender got %d stanzas (errors?)", n)
	}
}

// loopReader sends head once and then el forever, in reads of up to 4 KiB as a busy socket does.
type loopReader struct {
	head []byte
	buf  []byte
	off  int
}

func newLoopReader(head, el string) *loopReader {
	return &loopReader{head: []byte(head), buf: []byte(strings.Repeat(el, max(1, 8192/len(el))))}
}

func (l *loopReader) Read(p []byte) (int, error) {
	if len(l.head) > 0 {
		n := copy(p, l.head)
		l.head = l.head[n:]
		return n, nil
	}
	n := copy(p[:min(len(p), 4096)], l.buf[l.off:])
	if l.off += n; l.off == len(l.buf) {
		l.off = 0
	}
	return n, nil
}

const benchHeader = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.net' version='1.0'>"

// BenchmarkReadRouteMessage frames each message with the stream scanner, builds the stanza from its envelope
// (a copy of the bytes, the id, the interned type, the to JID from a one-entry cache) as the c2s read loop does,
// and routes it.
func BenchmarkReadRouteMessage(b *testing.B) {
	ctx := context.Background()
	for _, c := range messageCases[:3] { // full, bare-1, bare-3
		b.Run(c.name, func(b *testing.B) {
			r := newBenchRouter(b, stageHooks{})
			alice := bindBench(r, "alice@example.net/desk", 0, true)
			want := c.setup(r)
			rd := stream.NewReader(newLoopReader(benchHeader, fmt.Sprintf(benchChat, c.to)), stream.Limits{})
			if _, err := rd.Header(); err != nil {
				b.Fatal(err)
			}
			var lastToRaw []byte
			var lastTo jid.JID
			b.ReportAllocs()
			for b.Loop() {
				el, err := rd.Next()
				if err != nil {
					b.Fatal(err)
				}
				if string(el.To) != string(lastToRaw) {
					if lastTo, err = jid.Parse(string(el.To)); err != nil {
						b.Fatal(err)
					}
					lastToRaw = append(lastToRaw[:0], el.To...)
				}
				typ := "chat"
				if string(el.Type) != typ {
					typ = string(el.Type)
				}
				st := &stanza.Stanza{Kind: stanza.KindOf(el.Local), Type: typ, ID: string(el.ID), From: alice.jid,
					To: lastTo, Raw: append([]byte(nil), el.Raw...), InnerStart: el.InnerStart, InnerEnd: el.InnerEnd}
				r.RouteFrom(ctx, originOf(alice), st)
			}
			checkDelivered(b, want, alice)
		})
	}
}

// BenchmarkRouteMessageParallel routes from GOMAXPROCS*2 goroutines at once: all to one recipient (one shard's
// lock, one session), or spread over 1,000 accounts (64 shards). With churn, every 16th op on each goroutine
// also binds and unbinds a second session of one of the accounts, so routing meets copy-on-write updates.
func BenchmarkRouteMessageParallel(b *testing.B) {
	ctx := context.Background()
	for _, bc := range []struct {
		name       string
		recipients int
		churn      bool
	}{{"recipients=1", 1, false}, {"recipients=1000", 1000, false}, {"recipients=1000/churn", 1000, true}} {
		b.Run(bc.name, func(b *testing.B) {
			r := newBenchRouter(b, stageHooks{})
			alice := bindBench(r, "alice@example.net/desk", 0, true)
			msgs := make([]*stanza.Stanza, bc.recipients)
			extra := make([]*benchSession, bc.recipients)
			for i := range msgs {
				bare := fmt.Sprintf("u%d@example.net", i)
				bindBench(r, bare+"/phone", 0, true)
				extra[i] = newBenchSession(bare+"/churn", -1, false)
				msgs[i] = mustParse(b, fmt.Sprintf(benchChat, bare))
			}
			var seq atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(2)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seq.Add(7919)) // a different starting account per goroutine
				for n := 0; pb.Next(); n++ {
					i++
					r.RouteFrom(ctx, originOf(alice), msgs[i%len(msgs)])
					if bc.churn && n%16 == 0 {
						s := extra[(i*31)%len(extra)]
						r.Bind(s)
						r.Unbind(s)
					}
				}
			})
			if n := alice.got.Load(); n != 0 {
				b.Fatalf("sender got %d stanzas (errors?)", n)
			}
		})
	}
}

// BenchmarkBindUnbind binds and unbinds a session of an account that has two other sessions: the copy-on-write
// cost of a login and a logout. The parallel variant uses one account per goroutine.
func BenchmarkBindUnbind(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		r := newBenchRouter(b)
		bindBench(r, "bob@example.net/desk", 0, true)
		bindBench(r, "bob@example.net/phone", 0, true)
		s := newBenchSession("bob@example.net/laptop", 0, true)
		b.ReportAllocs()
		for b.Loop() {
			r.Bind(s)
			r.Unbind(s)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		r := newBenchRouter(b)
		var seq atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			bare := fmt.Sprintf("user%d@example.net", seq.Add(1))
			bindBench(r, bare+"/desk", 0, true)
			bindBench(r, bare+"/phone", 0, true)
			s := newBenchSession(bare+"/laptop", 0, true)
			for pb.Next() {
				r.Bind(s)
				r.Unbind(s)
			}
		})
	})
}

// benchRoster is a storage.Roster whose owners all have the same items, and a storage.KV with nothing in it.
type benchRoster struct{ items []storage.RosterItem }

func (m *benchRoster) Roster(context.Context, string) ([]storage.RosterItem, int64, error) {
	return m.items, 1, nil
}
func (m *benchRoster) RosterItem(context.Context, string, string) (storage.RosterItem, error) {
	return storage.RosterItem{}, storage.ErrNotFound
}
func (m *benchRoster) PutRosterItem(context.Context, string, storage.RosterItem) (int64, error) {
	return 0, nil
}
func (m *benchRoster) DeleteRosterItem(context.Context, string, string) (int64, error) { return 0, nil }
func (m *benchRoster) Value(context.Context, string, string) ([]byte, error) {
	return nil, storage.ErrNotFound
}
func (m *benchRoster) PutValue(context.Context, string, string, []byte) error { return nil }
func (m *benchRoster) DeleteValue(context.Context, string, string) error      { return nil }
func (m *benchRoster) Keys(context.Context, string, string) ([]string, error) { return nil, nil }

// BenchmarkRoutePresence routes presence through the router to the presence module (the router has no
// broadcast of its own). broadcast: alice, with three resources and 10 local contacts (subscription both, one
// session each), changes her availability: 13 deliveries per op, the presence module's XML decoding of show,
// priority and caps included. inbound: a presence from a contact to bob's bare JID with three available
// resources: 3 deliveries per op.
func BenchmarkRoutePresence(b *testing.B) {
	ctx := context.Background()
	b.Run("broadcast/contacts=10", func(b *testing.B) {
		ros := &benchRoster{}
		var contacts []*benchSession
		for i := range 10 {
			ros.items = append(ros.items, storage.RosterItem{JID: fmt.Sprintf("c%d@example.net", i), Subscription: storage.SubBoth})
		}
		r := newBenchRouter(b, presence.New(ros, ros))
		for i := range 10 {
			contacts = append(contacts, bindBench(r, fmt.Sprintf("c%d@example.net/phone", i), 0, true))
		}
		alice := bindBench(r, "alice@example.net/desk", 0, false)
		bindBench(r, "alice@example.net/phone", 0, true)
		bindBench(r, "alice@example.net/laptop", 0, true)
		p := mustParse(b, "<presence from='alice@example.net/desk'><show>away</show><priority>5</priority>"+
			"<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://conversations.im' ver='Np8FkG9MoSxk3rQYsYw0eEkgtqA='/></presence>")
		r.RouteFrom(ctx, originOf(alice), p) // initial presence; the loop measures updates
		b.ReportAllocs()
		for b.Loop() {
			r.RouteFrom(ctx, originOf(alice), p)
		}
		for _, c := range contacts {
			if c.got.Load() == 0 {
				b.Fatalf("%s got no presence", c.jid)
			}
		}
	})
	b.Run("inbound/to=bare-3", func(b *testing.B) {
		ros := &benchRoster{}
		r := newBenchRouter(b, presence.New(ros, ros))
		var bob []*benchSession
		for _, res := range []string{"desk", "phone", "laptop"} {
			bob = append(bob, bindBench(r, "bob@example.net/"+res, 0, true))
		}
		p := mustParse(b, "<presence from='carol@example.net/phone' to='bob@example.net'><show>dnd</show></presence>")
		b.ReportAllocs()
		for b.Loop() {
			r.Route(ctx, p)
		}
		for _, s := range bob {
			if s.got.Load() == 0 {
				b.Fatalf("%s got no presence", s.jid)
			}
		}
	})
}

var (
	_ module.Session = (*benchSession)(nil)
	_ storage.Roster = (*benchRoster)(nil)
	_ storage.KV     = (*benchRoster)(nil)
)
