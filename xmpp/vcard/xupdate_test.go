package vcard_test

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"strings"
	"testing"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/pubsub"
	"parley.im/parley/xmpp/stanza"
	"parley.im/parley/xmpp/vcard"
)

// lastPresenceFrom returns the last available presence s received from from (a full JID), failing without one.
func lastPresenceFrom(t *testing.T, s *moduletest.Session, from string) *stanza.Stanza {
	t.Helper()
	var last *stanza.Stanza
	for _, p := range moduletest.Only(s.Take(), stanza.Presence, "") {
		if p.From.String() == from {
			last = p
		}
	}
	if last == nil {
		t.Fatalf("%s got no presence from %s", s.JID(), from)
	}
	return last
}

// photo returns the text of the x-update photo of p, and whether p has an x-update element.
func photo(p *stanza.Stanza) (string, bool) {
	x := moduletest.Child(p, vcard.NSUpdate, "x")
	if x == nil {
		return "", false
	}
	s := string(x)
	if strings.Contains(s, "<photo/>") {
		return "", true
	}
	i, j := strings.Index(s, "<photo>"), strings.Index(s, "</photo>")
	if i < 0 || j < i {
		return "<none>", true
	}
	return s[i+len("<photo>") : j], true
}

func sha(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

// XEP-0153: the server writes the avatar hash into the account's available presence, and re-broadcasts the
// presence when the avatar changes, by a vCard set or by a XEP-0084 publish.
func TestXUpdateHashInPresence(t *testing.T) {
	h, store := newHost(t)
	ctx := t.Context()
	for _, p := range [][2]string{{"alice@example.net", "bob@example.net"}, {"bob@example.net", "alice@example.net"}} {
		if _, err := store.PutRosterItem(ctx, p[0], storage.RosterItem{JID: p[1], Subscription: storage.SubBoth}); err != nil {
			t.Fatal(err)
		}
	}
	bob := h.Connect(ctx, "bob@example.net/pc")
	if err := h.SendPresence(ctx, bob, "", "", ""); err != nil {
		t.Fatal(err)
	}
	alice := h.Connect(ctx, "alice@example.net/pc")
	const A = "alice@example.net/pc"

	// No avatar, no x-update: the presence passes untouched.
	if err := h.SendPresence(ctx, alice, "", "", "<show>away</show>"); err != nil {
		t.Fatal(err)
	}
	p := lastPresenceFrom(t, bob, A)
	if _, ok := photo(p); ok || !strings.Contains(string(p.Raw), "<show>away</show>") {
		t.Fatalf("presence without avatar: %s", p.Raw)
	}
	// No avatar, but the client claims one: corrected to <photo/>, the rest kept.
	if err := h.SendPresence(ctx, alice, "", "", "<show>dnd</show><x xmlns='vcard-temp:x:update'><photo>deadbeef</photo></x>"); err != nil {
		t.Fatal(err)
	}
	p = lastPresenceFrom(t, bob, A)
	if got, ok := photo(p); !ok || got != "" || !strings.Contains(string(p.Raw), "<show>dnd</show>") ||
		strings.Count(string(p.Raw), vcard.NSUpdate) != 1 {
		t.Fatalf("presence with a wrong hash and no avatar: %s", p.Raw)
	}

	// A vCard PHOTO: bob hears alice's presence again, with the hash; her recorded presence has it too.
	card := "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>" + base64.StdEncoding.EncodeToString(img) + "</BINVAL></PHOTO></vCard>"
	if r := h.SendIQ(ctx, alice, "set", card); r.Type != "result" {
		t.Fatalf("vCard set: %s", r.Raw)
	}
	p = lastPresenceFrom(t, bob, A)
	if got, _ := photo(p); got != sha(img) || !strings.Contains(string(p.Raw), "<show>dnd</show>") {
		t.Fatalf("re-broadcast after the vCard set: %s (want photo %s)", p.Raw, sha(img))
	}
	if got, _ := photo(alice.Presence()); got != sha(img) {
		t.Errorf("alice's recorded presence: %s", alice.Presence().Raw)
	}

	// A presence without x-update gets the hash; one with the right hash passes byte for byte.
	if err := h.SendPresence(ctx, alice, "", "", ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := photo(lastPresenceFrom(t, bob, A)); got != sha(img) {
		t.Fatalf("presence without x-update: want photo %s", sha(img))
	}
	own := "<x xmlns='vcard-temp:x:update'><photo> " + sha(img) + " </photo></x>"
	if err := h.SendPresence(ctx, alice, "", "", own); err != nil {
		t.Fatal(err)
	}
	if p := lastPresenceFrom(t, bob, A); !strings.Contains(string(p.Raw), own) {
		t.Fatalf("the client's own correct hash was rewritten: %s", p.Raw)
	}

	// A XEP-0084 publish (data, then metadata): re-broadcast with the new hash.
	img2 := []byte("GIF89a another image")
	id2 := sha(img2)
	pub := func(node, payload string) {
		t.Helper()
		r := h.SendIQ(ctx, alice, "set", "<pubsub xmlns='"+pubsub.NS+"'><publish node='"+node+"'><item id='"+id2+"'>"+payload+"</item></publish></pubsub>")
		if r.Type != "result" {
			t.Fatalf("publish %s: %s", node, r.Raw)
		}
	}
	pub(vcard.NodeAvatarData, "<data xmlns='urn:xmpp:avatar:data'>"+base64.StdEncoding.EncodeToString(img2)+"</data>")
	pub(vcard.NodeAvatarMeta, "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='20' id='"+id2+"' type='image/gif'/></metadata>")
	if got, _ := photo(lastPresenceFrom(t, bob, A)); got != id2 {
		t.Fatalf("re-broadcast after the XEP-0084 publish: want photo %s, got %q", id2, got)
	}
}

// The hash is cached: a presence costs no storage read, so an avatar written behind the module's back (straight
// into storage) is not seen until an avatar change through PEP invalidates the cache.
func TestXUpdateHashCached(t *testing.T) {
	h, store := newHost(t)
	ctx := t.Context()
	alice := h.Connect(ctx, "alice@example.net/pc")
	if err := h.SendPresence(ctx, alice, "", "", ""); err != nil {
		t.Fatal(err)
	}
	lim := storage.PubSubLimits{MaxNodes: 10, MaxItems: 10, MaxItemSize: 1 << 20}
	for _, node := range []string{vcard.NodeAvatarData, vcard.NodeAvatarMeta} {
		if err := store.CreateNode(ctx, pubsub.DefaultConfig().Record("alice@example.net", node), lim); err != nil {
			t.Fatal(err)
		}
	}
	id := sha(img)
	if _, err := store.Publish(ctx, "alice@example.net", vcard.NodeAvatarData, storage.PubSubItem{ID: id,
		Payload: []byte("<data xmlns='urn:xmpp:avatar:data'>" + base64.StdEncoding.EncodeToString(img) + "</data>")}, lim); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Publish(ctx, "alice@example.net", vcard.NodeAvatarMeta, storage.PubSubItem{ID: id,
		Payload: []byte("<metadata xmlns='urn:xmpp:avatar:metadata'><info id='" + id + "' type='image/png' bytes='1'/></metadata>")}, lim); err != nil {
		t.Fatal(err)
	}
	if err := h.SendPresence(ctx, alice, "", "", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := photo(alice.Presence()); ok {
		t.Fatalf("presence read the avatar from storage instead of the cache: %s", alice.Presence().Raw)
	}
	// A retraction through PEP invalidates: the next presence reads storage (the metadata item is gone now,
	// so no hash; the client sent an x-update, so <photo/>).
	r := h.SendIQ(ctx, alice, "set", "<pubsub xmlns='"+pubsub.NS+"'><retract node='"+vcard.NodeAvatarMeta+"'><item id='"+id+"'/></retract></pubsub>")
	if r.Type != "result" {
		t.Fatalf("retract: %s", r.Raw)
	}
	if err := h.SendPresence(ctx, alice, "", "", "<x xmlns='vcard-temp:x:update'><photo>"+id+"</photo></x>"); err != nil {
		t.Fatal(err)
	}
	if got, ok := photo(alice.Presence()); !ok || got != "" {
		t.Fatalf("after the retraction: %s", alice.Presence().Raw)
	}
}

// The vCard a get answers with the photo of the XEP-0084 avatar must be well-formed: withPhoto used to cut the
// stored vCard's start tag before its '>' (stanza.StartTagEnd is the index of the '>', not past it), which gave
// <vCard xmlns='vcard-temp'<FN>... to every reader of a vCard with an avatar.
func TestDefectVCardWithPhotoWellFormed(t *testing.T) {
	for _, stored := range []string{"<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>", "<vCard xmlns='vcard-temp'/>"} {
		h, _ := newHost(t)
		ctx := t.Context()
		alice := h.Online(ctx, "alice@example.net/pc", 0)
		if r := h.SendIQ(ctx, alice, "set", stored); r.Type != "result" {
			t.Fatalf("set: %s", r.Raw)
		}
		b64 := base64.StdEncoding.EncodeToString(img)
		for _, node := range []struct{ name, payload string }{
			{vcard.NodeAvatarData, "<data xmlns='urn:xmpp:avatar:data'>" + b64 + "</data>"},
			{vcard.NodeAvatarMeta, "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='1' id='" + sha(img) + "' type='image/png'/></metadata>"},
		} {
			r := h.SendIQ(ctx, alice, "set", "<pubsub xmlns='"+pubsub.NS+"'><publish node='"+node.name+"'><item id='"+sha(img)+"'>"+node.payload+"</item></publish></pubsub>")
			if r.Type != "result" {
				t.Fatalf("publish: %s", r.Raw)
			}
		}
		r := h.SendIQ(ctx, alice, "get", "<vCard xmlns='vcard-temp'/>")
		var card struct {
			XMLName xml.Name `xml:"vcard-temp vCard"`
			FN      string   `xml:"FN"`
			Photo   struct {
				Type   string `xml:"TYPE"`
				BinVal string `xml:"BINVAL"`
			} `xml:"PHOTO"`
		}
		if err := xml.Unmarshal(r.Payload(), &card); err != nil || card.Photo.BinVal != b64 || card.Photo.Type != "image/png" ||
			(strings.Contains(stored, "FN") && card.FN != "Alice") {
			t.Errorf("stored %s: get answered %s (%+v, %v)", stored, r.Payload(), card, err)
		}
	}
}
