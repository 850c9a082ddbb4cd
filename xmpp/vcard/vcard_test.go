package vcard_test

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/pep"
	"parley.im/parley/xmpp/presence"
	"parley.im/parley/xmpp/pubsub"
	"parley.im/parley/xmpp/vcard"
)

func newHost(t *testing.T) (*moduletest.Host, storage.Store) {
	store := moduletest.Store(t)
	p := pep.New(pep.Config{}, store, store)
	return moduletest.New(t, presence.New(store, store), p, vcard.New(vcard.Config{}, store, store, p)), store
}

var img = []byte("\x89PNG\r\n\x1a\nnot really a png")

func TestVCardRoundTripAndAccess(t *testing.T) {
	h, _ := newHost(t)
	ctx := t.Context()
	alice := h.Online(ctx, "alice@example.net/pc", 0)
	bob := h.Online(ctx, "bob@example.net/pc", 0)
	if r := h.SendIQ(ctx, alice, "get", "<vCard xmlns='vcard-temp'/>"); r.Type != "result" || !strings.Contains(string(r.Raw), "<vCard xmlns='vcard-temp'/>") {
		t.Fatalf("empty vCard: %s", r.Raw)
	}
	card := "<vCard xmlns='vcard-temp'><FN>Alice</FN><NICKNAME>al</NICKNAME></vCard>"
	if r := h.SendIQ(ctx, alice, "set", card); r.Type != "result" {
		t.Fatalf("set: %s", r.Raw)
	}
	if r := h.SendIQTo(ctx, bob, "alice@example.net", "get", "<vCard xmlns='vcard-temp'/>"); !strings.Contains(string(r.Raw), card) {
		t.Fatalf("bob reads alice's vCard: %s", r.Raw)
	}
	if r := h.SendIQTo(ctx, bob, "alice@example.net", "set", card); moduletest.ErrorCondition(r) != "forbidden" {
		t.Errorf("bob sets alice's vCard: %s", r.Raw)
	}
	if !strings.Contains(strings.Join(h.Registry.Features(module.Account), " "), vcard.NSConversion) {
		t.Error("conversion feature not advertised")
	}
}

// XEP-0398 both ways: a vCard photo becomes the XEP-0084 avatar; a XEP-0084 avatar is the vCard's photo.
func TestAvatarConversion(t *testing.T) {
	h, store := newHost(t)
	ctx := t.Context()
	alice := h.Online(ctx, "alice@example.net/pc", 0)
	b64 := base64.StdEncoding.EncodeToString(img)
	sum := sha1.Sum(img)
	id := hex.EncodeToString(sum[:])
	card := "<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>" + b64[:10] + "\n" + b64[10:] + "</BINVAL></PHOTO></vCard>"
	if r := h.SendIQ(ctx, alice, "set", card); r.Type != "result" {
		t.Fatalf("set: %s", r.Raw)
	}
	meta, err := store.Items(ctx, "alice@example.net", vcard.NodeAvatarMeta, storage.PubSubItemQuery{})
	if err != nil || len(meta) != 1 || meta[0].ID != id || !strings.Contains(string(meta[0].Payload), fmt.Sprintf("bytes='%d'", len(img))) {
		t.Fatalf("metadata %+v, %v", meta, err)
	}
	data, err := store.Items(ctx, "alice@example.net", vcard.NodeAvatarData, storage.PubSubItemQuery{IDs: []string{id}})
	if err != nil || len(data) != 1 || !strings.Contains(string(data[0].Payload), b64) {
		t.Fatalf("data %+v, %v", data, err)
	}

	// A XEP-0084 client publishes a new avatar: the vCard's photo follows.
	img2 := []byte("GIF89a another image")
	b2 := base64.StdEncoding.EncodeToString(img2)
	s2 := sha1.Sum(img2)
	id2 := hex.EncodeToString(s2[:])
	pub := func(node, payload string) {
		t.Helper()
		r := h.SendIQ(ctx, alice, "set", "<pubsub xmlns='"+pubsub.NS+"'><publish node='"+node+"'><item id='"+id2+"'>"+payload+"</item></publish></pubsub>")
		if r.Type != "result" {
			t.Fatalf("publish %s: %s", node, r.Raw)
		}
	}
	pub(vcard.NodeAvatarData, "<data xmlns='urn:xmpp:avatar:data'>"+b2+"</data>")
	pub(vcard.NodeAvatarMeta, "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='20' id='"+id2+"' type='image/gif'/></metadata>")
	bob := h.Online(ctx, "bob@example.net/pc", 0)
	r := h.SendIQTo(ctx, bob, "alice@example.net", "get", "<vCard xmlns='vcard-temp'/>")
	got := string(r.Raw)
	if !strings.Contains(got, "<FN>Alice</FN>") || !strings.Contains(got, "<PHOTO><TYPE>image/gif</TYPE><BINVAL>"+b2+"</BINVAL></PHOTO>") ||
		strings.Count(got, "<PHOTO>") != 1 {
		t.Fatalf("vCard after a XEP-0084 publish: %s", got)
	}
	if r := h.SendIQ(ctx, alice, "set", "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>!!not base64</BINVAL></PHOTO></vCard>"); moduletest.ErrorCondition(r) != "bad-request" {
		t.Errorf("bad BINVAL: %s", r.Raw)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (vcard.Config{MaxSize: -1}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "vcard.max_size") {
		t.Errorf("Validate = %v", err)
	}
}
