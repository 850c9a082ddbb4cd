package pep

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/disco"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/presence"
	"parley.im/parley/xmpp/pubsub"
	"parley.im/parley/xmpp/stanza"
)

// benchEnv is an account with contacts contacts, each online with one resource whose caps carry
// devices+notify, on the fake router and a real SQLite store.
type benchEnv struct {
	h        *moduletest.Host
	m        *Module
	owner    *moduletest.Session
	contacts []*moduletest.Session
}

func newBenchEnv(b *testing.B, contacts int) *benchEnv {
	ctx := b.Context()
	store := moduletest.Store(b)
	m := New(Config{}, store, store)
	h := moduletest.New(b, presence.New(store, store), m)
	const owner = "alice@example.net"
	features := []string{disco.NSInfo, disco.NSCaps, pubsub.NodeOMEMODevices + "+notify"}
	ids := []module.Identity{{Category: "client", Type: "phone", Name: "Bench"}}
	c := "<c xmlns='" + disco.NSCaps + "' hash='sha-1' node='https://bench' ver='" + disco.CapsVer(ids, features) + "'/>"
	var info strings.Builder
	info.WriteString("<query xmlns='" + disco.NSInfo + "'><identity category='client' type='phone' name='Bench'/>")
	for _, f := range features {
		info.WriteString("<feature var='" + f + "'/>")
	}
	info.WriteString("</query>")
	answer := func(s *moduletest.Session) {
		for _, st := range moduletest.Only(s.Take(), stanza.IQ, "get") {
			h.Router.Route(ctx, stanza.New(stanza.IQ, "result", st.ID, s.JID(), st.From, []byte(info.String())))
		}
	}
	e := &benchEnv{h: h, m: m}
	for i := range contacts {
		bare := fmt.Sprintf("contact%d@example.net", i)
		for _, p := range [][2]string{{owner, bare}, {bare, owner}} {
			if _, err := store.PutRosterItem(ctx, p[0], storage.RosterItem{JID: p[1], Subscription: storage.SubBoth}); err != nil {
				b.Fatal(err)
			}
		}
	}
	e.owner = h.Connect(ctx, owner+"/phone")
	if err := h.SendPresence(ctx, e.owner, "", "", c); err != nil {
		b.Fatal(err)
	}
	answer(e.owner)
	for i := range contacts {
		s := h.Connect(ctx, fmt.Sprintf("contact%d@example.net/phone", i))
		if err := h.SendPresence(ctx, s, "", "", c); err != nil {
			b.Fatal(err)
		}
		answer(s)
		e.contacts = append(e.contacts, s)
	}
	return e
}

func (e *benchEnv) drain() int {
	n := len(events(e.owner.Take()))
	for _, s := range e.contacts {
		n += len(events(s.Take()))
	}
	return n
}

func events(ss []*stanza.Stanza) []*stanza.Stanza {
	return moduletest.Only(ss, stanza.Message, "headline")
}

// BenchmarkPublish100Contacts publishes an OMEMO device list (max_items 1: every publish also trims the previous
// item, a second notification) from the owner's resource with 100 contacts online whose caps ask for it: the
// whole IQ handling with its durable SQLite write, 202 notifications per op. It reports the CPU-bound part per
// notification (BenchmarkNotify100Contacts) separately; here p99-ms is the publish latency.
func BenchmarkPublish100Contacts(b *testing.B) {
	e := newBenchEnv(b, 100)
	ctx := b.Context()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		payload := "<pubsub xmlns='" + pubsub.NS + "'><publish node='" + pubsub.NodeOMEMODevices + "'><item id='" +
			fmt.Sprint(i) + "'><devices xmlns='urn:xmpp:omemo:2'><device id='" + fmt.Sprint(i) + "'/></devices></item></publish></pubsub>"
		start := time.Now()
		res := e.h.SendIQ(ctx, e.owner, "set", payload)
		lat = append(lat, time.Since(start))
		if res.Type != "result" {
			b.Fatalf("publish: %s", res.Raw)
		}
		b.StopTimer()
		if n := e.drain(); n < 101 {
			b.Fatalf("%d notifications, want at least 101", n)
		}
		b.StartTimer()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkNotify100Contacts is the notification fan-out alone, what a publish costs beyond its storage write:
// finding the recipients (the owner's roster read, the caps filter, the node's subscriptions) and routing one
// headline to each of 100 contacts and the owner's resource. ns/notification is ns/op over 101.
func BenchmarkNotify100Contacts(b *testing.B) {
	e := newBenchEnv(b, 100)
	ctx := b.Context()
	owner := jid.MustParse("alice@example.net")
	cfg := pubsub.DefaultConfig()
	if err := e.m.ps.CreateNode(ctx, cfg.Record(owner.String(), pubsub.NodeOMEMODevices), e.m.lim); err != nil {
		b.Fatal(err)
	}
	ev := pubsub.AppendItemsEvent(nil, pubsub.NodeOMEMODevices, []storage.PubSubItem{{ID: "current",
		Payload: []byte("<devices xmlns='urn:xmpp:omemo:2'><device id='1'/></devices>")}}, true)
	for b.Loop() {
		e.m.notify(ctx, module.Origin{}, owner, pubsub.NodeOMEMODevices, cfg, ev)
		b.StopTimer()
		if n := e.drain(); n != 101 {
			b.Fatalf("%d notifications, want 101", n)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/101, "ns/notification")
}
