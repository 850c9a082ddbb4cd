package pubsub

import (
	"bytes"
	"encoding/xml"
	"testing"
	"time"

	"parley.im/parley/storage"
)

// wellFormed fails the test unless b is one well-formed element in namespace ns.
func wellFormed(t *testing.T, b []byte, local, ns string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	tok, err := d.Token()
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	se, ok := tok.(xml.StartElement)
	if !ok || se.Name.Local != local || se.Name.Space != ns {
		t.Errorf("%s: root %v, want {%s}%s", b, tok, ns, local)
	}
	if err := d.Skip(); err != nil {
		t.Errorf("%s: %v", b, err)
	}
	if _, err := d.Token(); err == nil {
		t.Errorf("%s: more than one element", b)
	}
}

func TestBuilders(t *testing.T) {
	payload := "<devices xmlns=\"urn:xmpp:omemo:2\">\n <device id='1' label='&amp;'/></devices>"
	items := []storage.PubSubItem{
		{ID: "a'1", Publisher: "alice@example.net/x", Time: time.Now(), Payload: []byte(payload)},
		{ID: "b", Payload: []byte("<p xmlns='urn:p'/>")},
	}
	for _, c := range []struct {
		name      string
		got       []byte
		local, ns string
		want      string
	}{
		{"items result", AppendItemsResult([]byte("prefix:"), "n&1", items)[len("prefix:"):], "pubsub", NS,
			"<pubsub xmlns='" + NS + "'><items node='n&amp;1'><item id='a&apos;1'>" + payload +
				"</item><item id='b'><p xmlns='urn:p'/></item></items></pubsub>"},
		{"empty items result", AppendItemsResult(nil, "n", nil), "pubsub", NS,
			"<pubsub xmlns='" + NS + "'><items node='n'></items></pubsub>"},
		{"publish result", AppendPublishResult(nil, "n", "id<1>"), "pubsub", NS,
			"<pubsub xmlns='" + NS + "'><publish node='n'><item id='id&lt;1&gt;'/></publish></pubsub>"},
		{"items event", AppendItemsEvent(nil, NodeOMEMODevices, items[:1], true), "event", NSEvent,
			"<event xmlns='" + NSEvent + "'><items node='" + NodeOMEMODevices + "'><item id='a&apos;1'>" + payload +
				"</item></items></event>"},
		{"items event without payloads", AppendItemsEvent(nil, "n", items, false), "event", NSEvent,
			"<event xmlns='" + NSEvent + "'><items node='n'><item id='a&apos;1'/><item id='b'/></items></event>"},
		{"retract event", AppendRetractEvent(nil, "n", []string{"a", "b&"}), "event", NSEvent,
			"<event xmlns='" + NSEvent + "'><items node='n'><retract id='a'/><retract id='b&amp;'/></items></event>"},
		{"purge event", AppendPurgeEvent(nil, "n"), "event", NSEvent,
			"<event xmlns='" + NSEvent + "'><purge node='n'/></event>"},
		{"delete event", AppendDeleteEvent(nil, "n"), "event", NSEvent,
			"<event xmlns='" + NSEvent + "'><delete node='n'/></event>"},
		{"subscription", AppendSubscription(nil, "n", storage.PubSubSubscription{JID: "b@x/r", SubID: "s", State: "subscribed"}),
			"pubsub", NS, "<pubsub xmlns='" + NS + "'><subscription node='n' jid='b@x/r' subid='s' subscription='subscribed'/></pubsub>"},
	} {
		if string(c.got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, c.got, c.want)
		}
		wellFormed(t, c.got, c.local, c.ns)
	}
}

// TestPublishToEventByteForByte follows an OMEMO bundle from a publish request to the notification: the
// payload bytes in the event are the ones the client sent.
func TestPublishToEventByteForByte(t *testing.T) {
	payload := `<bundle xmlns='urn:xmpp:omemo:2'><spk id='0'>BQ==</spk><spks>c2ln&#10;</spks>` +
		`<ik>aWs=</ik><prekeys><pk id="1">cGsx</pk>  <pk id='2'>cGsy</pk></prekeys></bundle>`
	r, err := ParseRequest([]byte(open_+"<publish node='"+NodeOMEMOBundles+"'><item id='31415'>"+payload+
		"</item></publish>"+close_), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	it := storage.PubSubItem{ID: r.Items[0].ID, Payload: r.Items[0].Payload}
	ev := AppendItemsEvent(nil, r.Node, []storage.PubSubItem{it}, true)
	if !bytes.Contains(ev, []byte("<item id='31415'>"+payload+"</item>")) {
		t.Errorf("event does not carry the payload byte for byte:\n%s", ev)
	}
	wellFormed(t, ev, "event", NSEvent)
}
