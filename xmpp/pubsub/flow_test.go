package pubsub

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"parley.im/parley/storage"
	"parley.im/parley/storage/sqlite"
)

// pep is the publish path a PEP module builds from this package and storage.PubSub, kept here so that the
// pieces are tested together: look the node up, check the publish-options, auto-create, publish, and build
// the notification and the retractions of what was trimmed.
func pep(t *testing.T, ps storage.PubSub, owner, raw string, lim storage.PubSubLimits) (event, retract []byte, err error) {
	t.Helper()
	req, err := ParseRequest([]byte(raw), Limits{})
	if err != nil {
		return nil, nil, err
	}
	if req.Op != OpPublish {
		t.Fatalf("not a publish: %v", req.Op)
	}
	ctx := t.Context()
	cur, exists := DefaultConfig(), false
	n, err := ps.Node(ctx, owner, req.Node)
	switch {
	case err == nil:
		if cur, err = ConfigOf(n); err != nil {
			return nil, nil, err
		}
		exists = true
	case !errors.Is(err, storage.ErrNotFound):
		return nil, nil, err
	}
	cfg, err := PublishConfig(cur, exists, req.Options, lim.MaxItems)
	if err != nil {
		return nil, nil, err
	}
	if !exists {
		if err := ps.CreateNode(ctx, cfg.Record(owner, req.Node), lim); err != nil {
			return nil, nil, StorageError(err)
		}
	}
	it := storage.PubSubItem{ID: req.Items[0].ID, Publisher: owner + "/dev", Time: time.Now(), Payload: req.Items[0].Payload}
	trimmed, err := ps.Publish(ctx, owner, req.Node, it, lim)
	if err != nil {
		return nil, nil, StorageError(err)
	}
	event = AppendItemsEvent(nil, req.Node, []storage.PubSubItem{it}, cfg.DeliverPayloads)
	if len(trimmed) > 0 && cfg.NotifyRetract {
		retract = AppendRetractEvent(nil, req.Node, trimmed)
	}
	return event, retract, nil
}

func TestPEPFlowOMEMO(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const alice = "alice@example.net"
	lim := storage.PubSubLimits{MaxNodes: 10, MaxItems: 50, MaxItemSize: 1 << 16}
	openOpts := "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" +
		NSPublishOptions + "</value></field><field var='pubsub#access_model'><value>open</value></field>" +
		"<field var='pubsub#max_items'><value>max</value></field></x></publish-options>"
	bundle := func(id, body string) string {
		return open_ + "<publish node='" + NodeOMEMOBundles + "'><item id='" + id + "'>" + body + "</item></publish>" +
			openOpts + close_
	}
	b1 := "<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>QQ==</spk>\n<ik>SUs=</ik></bundle>"
	ev, re, err := pep(t, st, alice, bundle("1001", b1), lim)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(ev, []byte("<item id='1001'>"+b1+"</item>")) || re != nil {
		t.Errorf("first publish: event %s, retract %s", ev, re)
	}
	n, err := st.Node(t.Context(), alice, NodeOMEMOBundles)
	if err != nil || n.AccessModel != "open" || n.MaxItems != MaxItemsMax {
		t.Errorf("auto-created node = %+v, %v", n, err)
	}
	// A second device: same options, so the precondition holds; nothing is trimmed from a "max" node.
	b2 := `<bundle xmlns="urn:xmpp:omemo:2"><spk id="7">Qg==</spk></bundle>`
	if _, re, err := pep(t, st, alice, bundle("2002", b2), lim); err != nil || re != nil {
		t.Fatalf("second device: retract %s, %v", re, err)
	}
	items, err := st.Items(t.Context(), alice, NodeOMEMOBundles, storage.PubSubItemQuery{})
	if err != nil {
		t.Fatal(err)
	}
	res := AppendItemsResult(nil, NodeOMEMOBundles, items)
	want := "<items node='" + NodeOMEMOBundles + "'><item id='1001'>" + b1 + "</item><item id='2002'>" + b2 + "</item></items>"
	if !bytes.Contains(res, []byte(want)) {
		t.Errorf("items result:\n%s\nwant to contain\n%s", res, want)
	}

	// Publishing to the node with options it does not have fails and stores nothing.
	presence := open_ + "<publish node='" + NodeOMEMOBundles + "'><item id='3003'><bundle xmlns='urn:xmpp:omemo:2'/></item></publish>" +
		"<publish-options><x xmlns='jabber:x:data' type='submit'><field var='pubsub#access_model'><value>presence</value></field></x></publish-options>" + close_
	if _, _, err := pep(t, st, alice, presence, lim); !errors.Is(err, ErrPreconditionNotMet) {
		t.Errorf("publish with mismatching options: %v, want precondition-not-met", err)
	}
	if items, _ := st.Items(t.Context(), alice, NodeOMEMOBundles, storage.PubSubItemQuery{IDs: []string{"3003"}}); len(items) != 0 {
		t.Errorf("a refused publish stored %+v", items)
	}

	// A default node (max_items 1) trims, and the module learns which ids to retract.
	nick := func(name string) string {
		return open_ + "<publish node='http://jabber.org/protocol/nick'><item id='" + name + "'><nick xmlns='http://jabber.org/protocol/nick'>" +
			name + "</nick></item></publish>" + close_
	}
	if _, _, err := pep(t, st, alice, nick("al"), lim); err != nil {
		t.Fatal(err)
	}
	_, re, err = pep(t, st, alice, nick("alice"), lim)
	if err != nil || string(re) != "<event xmlns='"+NSEvent+"'><items node='http://jabber.org/protocol/nick'><retract id='al'/></items></event>" {
		t.Errorf("second nick: retract %s, %v", re, err)
	}
	// Item size limit.
	big := open_ + "<publish node='x'><item><p xmlns='urn:p'>" + string(bytes.Repeat([]byte("a"), 1<<16)) + "</p></item></publish>" + close_
	_, _, err = pep(t, st, alice, big, lim)
	if cond, app := condition(t, err); cond != "not-acceptable" || app != "payload-too-big" {
		t.Errorf("large item: %v", err)
	}
}
