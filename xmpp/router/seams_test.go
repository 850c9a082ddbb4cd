package router

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/presence"
	"parley.im/parley/xmpp/stanza"
)

// memRoster is an in-memory storage.Roster and storage.KV, enough for the presence module.
type memRoster struct {
	mu    sync.Mutex
	items map[string][]storage.RosterItem // owner -> items
	kv    map[string][]byte               // owner + "\x00" + key -> value
}

func newMemRoster() *memRoster {
	return &memRoster{items: make(map[string][]storage.RosterItem), kv: make(map[string][]byte)}
}

// subscribe makes a and b subscribed to each other (both).
func (m *memRoster) subscribe(a, b string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items[a] = append(m.items[a], storage.RosterItem{JID: b, Subscription: storage.SubBoth})
	m.items[b] = append(m.items[b], storage.RosterItem{JID: a, Subscription: storage.SubBoth})
}

func (m *memRoster) Roster(_ context.Context, owner string) ([]storage.RosterItem, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]storage.RosterItem(nil), m.items[owner]...), 1, nil
}

func (m *memRoster) RosterItem(_ context.Context, owner, contact string) (storage.RosterItem, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, it := range m.items[owner] {
		if it.JID == contact {
			return it, nil
		}
	}
	return storage.RosterItem{}, storage.ErrNotFound
}

func (m *memRoster) PutRosterItem(_ context.Context, owner string, it storage.RosterItem) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, o := range m.items[owner] {
		if o.JID == it.JID {
			m.items[owner][i] = it
			return 2, nil
		}
	}
	m.items[owner] = append(m.items[owner], it)
	return 2, nil
}

func (m *memRoster) DeleteRosterItem(_ context.Context, owner, contact string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	items := m.items[owner]
	for i, o := range items {
		if o.JID == contact {
			m.items[owner] = append(items[:i:i], items[i+1:]...)
			return 2, nil
		}
	}
	return 0, storage.ErrNotFound
}

func (m *memRoster) Value(_ context.Context, owner, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.kv[owner+"\x00"+key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return v, nil
}

func (m *memRoster) PutValue(_ context.Context, owner, key string, v []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kv[owner+"\x00"+key] = v
	return nil
}

func (m *memRoster) DeleteValue(_ context.Context, owner, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.kv, owner+"\x00"+key)
	return nil
}

func (m *memRoster) Keys(_ context.Context, owner, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.kv {
		if o, key, _ := strings.Cut(k, "\x00"); o == owner && strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
	}
	return keys, nil
}

// clusterDirectory is a Local directory that also places some resources on other nodes, as a cluster
// directory would.
type clusterDirectory struct {
	*Local
	remote map[string][]module.Resource // bare JID -> resources elsewhere
}

func (d *clusterDirectory) Lookup(bare jid.JID) module.Resources {
	return module.Resources{Local: d.Sessions(bare), Remote: d.remote[bare.String()]}
}

// left is one stanza handed to the Remote route.
type left struct {
	node, to string
	kind     stanza.Kind
	typ      string
	origin   module.OriginKind
}

func (l left) String() string {
	return fmt.Sprintf("%s type=%q to %s on %q (origin %s)", l.kind, l.typ, l.to, l.node, l.origin)
}

// recordingRemote records what leaves the process.
type recordingRemote struct {
	mu  sync.Mutex
	got []left
}

func (rm *recordingRemote) Forward(_ context.Context, o module.Origin, node string, to jid.JID, s *stanza.Stanza) error {
	rm.mu.Lock()
	rm.got = append(rm.got, left{node: node, to: to.String(), kind: s.Kind, typ: s.Type, origin: o.Kind})
	rm.mu.Unlock()
	return nil
}

func (rm *recordingRemote) take() []left {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	got := rm.got
	rm.got = nil
	return got
}

// TestContactOnAnotherNodeGoesThroughRemote is acceptance item 2 of the routing seams: alice (local) and bob,
// whom the directory places on node2, are subscribed to each other; carol is local. A message, alice's presence
// broadcast and her login probe to bob each reach Remote exactly once, addressed to node2, and nothing else
// does: local contacts are answered from the local directory.
func TestContactOnAnotherNodeGoesThroughRemote(t *testing.T) {
	ros := newMemRoster()
	ros.subscribe("alice@example.net", "bob@example.net")
	ros.subscribe("alice@example.net", "carol@example.net")
	r := newTestRouter(t, presence.New(ros, ros))
	bobPhone := jid.MustParse("bob@example.net/phone")
	dir := &clusterDirectory{Local: NewLocal(), remote: map[string][]module.Resource{
		// Two resources on node2: presence for bob's bare JID goes to node2 once, the message to the one with
		// the highest priority.
		"bob@example.net": {
			{JID: bobPhone, Node: "node2", Available: true, Priority: 1},
			{JID: jid.MustParse("bob@example.net/tablet"), Node: "node2", Available: true, Priority: 0},
		},
	}}
	r.SetDirectory(dir)
	rm := &recordingRemote{}
	r.SetRemote(rm)
	ctx := context.Background()

	carol := session(r, "carol@example.net/desk", 0, false)
	carolPresence := stanza.New(stanza.Presence, "", "", carol.jid, jid.JID{}, nil)
	r.RouteFrom(ctx, originOf(carol), carolPresence) // carol is online first: her probe to alice finds nobody
	if got := rm.take(); len(got) != 0 {
		// carol's only contact is alice, local and offline: nothing may leave.
		t.Fatalf("carol's login sent %v to Remote, want nothing", got)
	}
	alice := session(r, "alice@example.net/desk", 0, false)
	carol.mu.Lock()
	carol.got = nil
	carol.mu.Unlock()

	// Initial presence: a broadcast to bob and carol, a probe to each.
	r.RouteFrom(ctx, originOf(alice), stanza.New(stanza.Presence, "", "", alice.jid, jid.JID{}, nil))
	got := rm.take()
	want := map[string]int{"presence \"\" to bob@example.net on \"node2\"": 1, "presence \"probe\" to bob@example.net on \"node2\"": 1}
	if len(got) != 2 {
		t.Fatalf("initial presence sent %d stanzas to Remote, want 2 (broadcast and probe to bob): %v", len(got), got)
	}
	for _, l := range got {
		k := fmt.Sprintf("%s %q to %s on %q", l.kind, l.typ, l.to, l.node)
		if want[k] == 0 {
			t.Errorf("unexpected stanza to Remote: %v", l)
		}
		want[k]--
		if l.origin != module.OriginSession {
			t.Errorf("%v: origin %s, want session", l, l.origin)
		}
	}
	// The local contact was answered from the local directory, in both directions.
	if cg := carol.received(); len(cg) != 1 || !cg[0].From.Equal(alice.jid) || cg[0].Type != "" {
		t.Errorf("carol got %v, want alice's presence once", cg)
	}
	var fromCarol, fromAlice int
	for _, s := range alice.received() {
		switch {
		case s.From.Equal(carol.jid) && s.Kind == stanza.Presence:
			fromCarol++
		case s.From.Equal(alice.jid) && s.Kind == stanza.Presence:
			fromAlice++
		}
	}
	if fromCarol != 1 || fromAlice != 1 {
		t.Errorf("alice got carol's presence %d times and her own %d times, want 1 and 1", fromCarol, fromAlice)
	}

	// A message to bob's bare JID goes to his resource on node2.
	for _, f := range []*fakeSession{alice, carol} {
		f.mu.Lock()
		f.got = nil
		f.mu.Unlock()
	}
	r.RouteFrom(ctx, originOf(alice), msg("alice@example.net/desk", "bob@example.net", "chat", "hi"))
	got = rm.take()
	if len(got) != 1 || got[0].kind != stanza.Message || got[0].node != "node2" || got[0].to != bobPhone.String() {
		t.Fatalf("message to bob: Remote got %v, want one message to %s on node2", got, bobPhone)
	}
	if n := len(alice.received()) + len(carol.received()); n != 0 {
		t.Errorf("the message to bob also reached %d local stanzas (an error bounce?)", n)
	}
}

// TestNoRemoteBounces checks the default Remote: messages and IQ requests to another server bounce with
// remote-server-not-found; presence there is dropped; nothing answers an error.
func TestNoRemoteBounces(t *testing.T) {
	r := newTestRouter(t)
	alice := session(r, "alice@example.net/a", 0, true)
	ctx := context.Background()
	r.RouteFrom(ctx, originOf(alice), msg("alice@example.net/a", "dave@elsewhere.example", "chat", "hi"))
	r.RouteFrom(ctx, originOf(alice), stanza.New(stanza.IQ, "get", "q", alice.jid, jid.MustParse("elsewhere.example"),
		[]byte("<ping xmlns='urn:xmpp:ping'/>")))
	r.RouteFrom(ctx, originOf(alice), msg("alice@example.net/a", "dave@elsewhere.example", "error", ""))
	r.Route(ctx, stanza.New(stanza.Presence, "", "", alice.jid, jid.MustParse("dave@elsewhere.example"), nil))
	got := alice.received()
	if len(got) != 2 {
		t.Fatalf("alice got %d stanzas, want 2 bounces", len(got))
	}
	for _, s := range got {
		if s.Type != "error" || !strings.Contains(string(s.Raw), "remote-server-not-found") {
			t.Errorf("got %s, want a remote-server-not-found error", s.Raw)
		}
	}
	if got[0].Kind != stanza.Message || got[1].Kind != stanza.IQ {
		t.Errorf("bounces are %s and %s, want message and iq", got[0].Kind, got[1].Kind)
	}
}

// TestTargetsAcrossNodes checks that resources on other nodes compete with local ones for a message to the bare
// JID (RFC 6121 8.5.2.1.1: the highest priority wins), and that an IQ or a message to a full JID on another node
// goes to Remote, not bounced.
func TestTargetsAcrossNodes(t *testing.T) {
	r := newTestRouter(t)
	tablet := jid.MustParse("bob@example.net/tablet")
	dir := &clusterDirectory{Local: NewLocal(), remote: map[string][]module.Resource{
		"bob@example.net": {{JID: tablet, Node: "node3", Available: true, Priority: 3}},
	}}
	r.SetDirectory(dir)
	rm := &recordingRemote{}
	r.SetRemote(rm)
	ctx := context.Background()
	alice := session(r, "alice@example.net/a", 0, true)
	desk := session(r, "bob@example.net/desk", 5, true)

	r.RouteFrom(ctx, originOf(alice), msg("alice@example.net/a", "bob@example.net", "chat", "1"))
	if got := rm.take(); len(got) != 0 || len(desk.received()) != 1 {
		t.Fatalf("local priority 5 over remote 3: Remote got %v, desk %d, want nothing and 1", got, len(desk.received()))
	}
	desk.SetPresence(stanza.New(stanza.Presence, "", "", desk.jid, jid.JID{}, nil), 1)
	r.RouteFrom(ctx, originOf(alice), msg("alice@example.net/a", "bob@example.net", "chat", "2"))
	if got := rm.take(); len(got) != 1 || got[0].to != tablet.String() || got[0].node != "node3" || len(desk.received()) != 1 {
		t.Fatalf("remote priority 3 over local 1: Remote got %v, desk %d, want the tablet once and still 1",
			got, len(desk.received()))
	}
	r.RouteFrom(ctx, originOf(alice), stanza.New(stanza.IQ, "get", "v", alice.jid, tablet,
		[]byte("<query xmlns='jabber:iq:version'/>")))
	r.RouteFrom(ctx, originOf(alice), msg("alice@example.net/a", tablet.String(), "chat", "3"))
	got := rm.take()
	if len(got) != 2 || got[0].kind != stanza.IQ || got[1].kind != stanza.Message || got[0].to != tablet.String() {
		t.Fatalf("to the tablet's full JID: Remote got %v, want the iq and the message", got)
	}
	if n := len(alice.received()); n != 0 {
		t.Errorf("alice got %d stanzas (a bounce?), want none", n)
	}
}

// TestBounceToRemoteSenderLeaves checks that the error answering a stanza from another server goes back through
// Remote (once, and is not answered again when Remote refuses it).
func TestBounceToRemoteSenderLeaves(t *testing.T) {
	r := newTestRouter(t)
	rm := &recordingRemote{}
	r.SetRemote(rm)
	r.RouteFrom(context.Background(), module.Origin{Kind: module.OriginRemoteServer, Peer: "elsewhere.example"},
		msg("dave@elsewhere.example/x", "nobody@example.net/gone", "groupchat", "hi"))
	got := rm.take()
	if len(got) != 1 || got[0].typ != "error" || got[0].to != "dave@elsewhere.example/x" {
		t.Fatalf("Remote got %v, want one error to dave", got)
	}
	r.SetRemote(NoRemote{})
	r.RouteFrom(context.Background(), module.Origin{Kind: module.OriginRemoteServer, Peer: "elsewhere.example"},
		msg("dave@elsewhere.example/x", "nobody@example.net/gone", "groupchat", "hi"))
	if n := r.Stats.Errors.Load(); n != 2 {
		t.Errorf("%d errors generated, want 2 (one bounce each, the refused bounce not bounced again)", n)
	}
}

// TestFromAnotherNodeStaysLocal checks that what another node hands over is delivered to this node's sessions
// only: a message and a presence for bob, who also has a resource on the sending node, never go back to Remote.
func TestFromAnotherNodeStaysLocal(t *testing.T) {
	ros := newMemRoster()
	r := newTestRouter(t, presence.New(ros, ros))
	dir := &clusterDirectory{Local: NewLocal(), remote: map[string][]module.Resource{
		"bob@example.net": {{JID: jid.MustParse("bob@example.net/phone"), Node: "node2", Available: true, Priority: 9}},
	}}
	r.SetDirectory(dir)
	rm := &recordingRemote{}
	r.SetRemote(rm)
	desk := session(r, "bob@example.net/desk", 0, true)
	node2 := module.Origin{Kind: module.OriginNode, Peer: "node2"}
	ctx := context.Background()
	r.RouteFrom(ctx, node2, msg("alice@example.net/a", "bob@example.net", "chat", "hi"))
	r.RouteFrom(ctx, node2, stanza.New(stanza.Presence, "", "", jid.MustParse("alice@example.net/a"),
		jid.MustParse("bob@example.net"), nil))
	r.RouteFrom(ctx, node2, msg("alice@example.net/a", "bob@example.net/phone", "chat", "to phone"))
	if got := rm.take(); len(got) != 0 {
		t.Fatalf("stanzas from node2 went back to Remote: %v", got)
	}
	if got := desk.received(); len(got) != 3 {
		// The message to the phone, not on this node, falls back to the bare JID (RFC 6121 8.5.3.2.1).
		t.Fatalf("desk got %d stanzas, want the message, the presence and the fallback", len(got))
	}
}
