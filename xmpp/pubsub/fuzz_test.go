package pubsub

import (
	"bytes"
	"errors"
	"testing"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/stanza"
)

// FuzzParseRequest feeds arbitrary bytes to ParseRequest. It must not panic, must fail only with stanza
// errors, and what it accepts must hold: a node name, ids within limits, and publish payloads that are
// slices of the input which stand on their own, so that a notification built from them is valid XML.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		open_ + "<publish node='urn:xmpp:omemo:2:devices'><item id='current'><devices xmlns='urn:xmpp:omemo:2'><device id='1'/></devices></item></publish>" +
			"<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + NSPublishOptions +
			"</value></field><field var='pubsub#access_model'><value>open</value></field></x></publish-options>" + close_,
		open_ + "<publish node='n'><item><p xmlns='urn:p' xmlns:q='urn:q'><q:x a='&amp;'/><![CDATA[<]]></p></item></publish>" + close_,
		open_ + "<retract node='n' notify='1'><item id='a'/></retract>" + close_,
		open_ + "<items node='n' max_items='3'><item id='a'/></items>" + close_,
		open_ + "<subscribe node='n' jid='a@b'/>" + close_,
		open_ + "<create node='n'/><configure><x xmlns='jabber:x:data' type='submit'/></configure>" + close_,
		owner_ + "<configure node='n'><x xmlns='jabber:x:data' type='submit'><field var='pubsub#max_items'><value>max</value></field></x></configure>" + close_,
		owner_ + "<purge node='n'/>" + close_,
		"<ps:pubsub xmlns:ps='" + NS + "'><ps:items node='n'/></ps:pubsub>",
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxBytes: 4096, MaxDepth: 16, MaxIDs: 8, MaxIDLen: 64}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in := bytes.Clone(raw)
		r, err := ParseRequest(raw, lim)
		if !bytes.Equal(in, raw) {
			t.Fatalf("ParseRequest modified its input")
		}
		if err != nil {
			var se *stanza.Error
			if !errors.As(err, &se) || se.Condition == "" {
				t.Fatalf("error %v (%T) is not a stanza error", err, err)
			}
			return
		}
		if r.Op < OpPublish || r.Op > OpPurge {
			t.Fatalf("op %v", r.Op)
		}
		if r.Node == "" || len(r.Node) > lim.MaxIDLen || len(r.Items) > lim.MaxIDs {
			t.Fatalf("request outside the limits: %+v", r)
		}
		for _, it := range r.Items {
			if len(it.ID) > lim.MaxIDLen {
				t.Fatalf("id too long: %q", it.ID)
			}
		}
		if r.Op != OpPublish {
			return
		}
		if len(r.Items) != 1 {
			t.Fatalf("publish with %d items", len(r.Items))
		}
		p := r.Items[0].Payload
		if !bytes.Contains(raw, p) {
			t.Fatalf("payload %q is not a slice of the input", p)
		}
		ev := AppendItemsEvent(nil, r.Node, []storage.PubSubItem{{ID: r.Items[0].ID, Payload: p}}, true)
		el, ok := check(ev, len(ev), lim.MaxDepth+4)
		if !ok || el.NS != NSEvent || len(el.Inherited) > 0 {
			t.Fatalf("notification built from the payload is not a valid element:\n%s", ev)
		}
	})
}
