package conformance

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// mamIDs runs one MAM query (inner XML of <query/>) and returns the result ids in order and the <fin/> IQ.
func mamIDs(t *testing.T, c *Client, id, inner string) ([]string, string) {
	t.Helper()
	c.Send(fmt.Sprintf(`<iq type='set' id='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'>%s</query></iq>`, id, id, inner))
	var ids []string
	re := regexp.MustCompile(`<result xmlns="urn:xmpp:mam:2"[^>]* id="([^"]+)"`)
	for {
		s := c.Expect(10*time.Second, "")
		if strings.Contains(s, `id="`+id+`"`) && strings.Contains(s, "<iq") {
			return ids, s
		}
		if m := re.FindStringSubmatch(s); m != nil {
			ids = append(ids, m[1])
		}
	}
}

func form(fields ...string) string {
	var b strings.Builder
	b.WriteString(`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>`)
	for i := 0; i+1 < len(fields); i += 2 {
		fmt.Fprintf(&b, `<field var='%s'><value>%s</value></field>`, fields[i], fields[i+1])
	}
	b.WriteString(`</x>`)
	return b.String()
}

// Receipts and chat markers pass through untouched and are archived (XEP-0184, XEP-0333); chat states are
// delivered but not archived. MAM #extended: after-id, before-id, ids, flip-page; metadata; preferences.
func TestReceiptsMarkersAndMAMExtended(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "")
	bob := Dial(t, srv, "bob", "bob-secret", "")
	for _, c := range []*Client{alice, bob} {
		c.Send(`<presence/>`)
		c.Expect(5*time.Second, "<presence")
	}
	for i := 0; i < 5; i++ {
		alice.Send(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='b%d'><body>m%d</body><request xmlns='urn:xmpp:receipts'/><markable xmlns='urn:xmpp:chat-markers:0'/></message>`, i, i))
		bob.Expect(5*time.Second, fmt.Sprintf(">m%d</body>", i), "urn:xmpp:receipts")
	}
	bob.Send(`<message to='` + alice.JID.String() + `' id='r1'><received xmlns='urn:xmpp:receipts' id='b4'/></message>`)
	bob.Send(`<message to='alice@localhost' type='chat' id='d1'><displayed xmlns='urn:xmpp:chat-markers:0' id='b4'/></message>`)
	bob.Send(`<message to='alice@localhost' type='chat' id='c1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	alice.Expect(5*time.Second, `<received xmlns="urn:xmpp:receipts"`, `id="b4"`)
	alice.Expect(5*time.Second, `<displayed xmlns="urn:xmpp:chat-markers:0"`)
	alice.Expect(5*time.Second, `composing`)
	time.Sleep(500 * time.Millisecond) // archive appends commit in the background

	all, fin := mamIDs(t, alice, "all", "")
	if !strings.Contains(fin, `complete="true"`) {
		t.Fatalf("fin: %s", fin)
	}
	// alice's archive: 5 sent messages, the receipt and the marker; not the chat state.
	if len(all) != 7 {
		t.Fatalf("alice's archive has %d items, want 7 (5 messages, receipt, marker)", len(all))
	}
	after, _ := mamIDs(t, alice, "after", form("after-id", all[2]))
	if strings.Join(after, ",") != strings.Join(all[3:], ",") {
		t.Errorf("after-id %s gave %v, want %v", all[2], after, all[3:])
	}
	before, _ := mamIDs(t, alice, "before", form("before-id", all[2]))
	if strings.Join(before, ",") != strings.Join(all[:2], ",") {
		t.Errorf("before-id gave %v, want %v", before, all[:2])
	}
	ids, _ := mamIDs(t, alice, "ids", form("ids", all[1])+"")
	if len(ids) != 1 || ids[0] != all[1] {
		t.Errorf("ids gave %v, want [%s]", ids, all[1])
	}
	flip, _ := mamIDs(t, alice, "flip", `<set xmlns='http://jabber.org/protocol/rsm'><max>3</max><before/></set><flip-page/>`)
	if len(flip) != 3 || flip[0] != all[6] || flip[2] != all[4] {
		t.Errorf("flip-page of the last 3 gave %v, want %v reversed", flip, all[4:])
	}
	alice.Send(`<iq type='get' id='meta'><metadata xmlns='urn:xmpp:mam:2'/></iq>`)
	meta := alice.Expect(5*time.Second, `id="meta"`)
	if !strings.Contains(meta, `id="`+all[0]+`"`) || !strings.Contains(meta, `id="`+all[6]+`"`) {
		t.Errorf("metadata %s does not name first %s and last %s", meta, all[0], all[6])
	}
	// Preferences: never archive with bob.
	alice.Send(`<iq type='set' id='p1'><prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never><jid>bob@localhost</jid></never></prefs></iq>`)
	alice.Expect(5*time.Second, `id="p1"`, `type="result"`)
	alice.Send(`<message to='bob@localhost' type='chat'><body>off the record</body></message>`)
	bob.Expect(5*time.Second, "off the record")
	time.Sleep(500 * time.Millisecond)
	again, _ := mamIDs(t, alice, "again", "")
	if len(again) != 7 {
		t.Errorf("a message to a 'never' JID was archived: %d items", len(again))
	}
}

// Archive retention: messages older than archive.retention are deleted by the sweep; retention 0 turns
// archiving off.
func TestArchiveRetention(t *testing.T) {
	srv := Start(t, "archive:\n  retention: 2s\n  sweep_interval: 500ms\n")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "")
	alice.Send(`<message to='bob@localhost' type='chat'><body>short-lived</body></message>`)
	time.Sleep(500 * time.Millisecond)
	if ids, _ := mamIDs(t, alice, "q1", ""); len(ids) != 1 {
		t.Fatalf("archive has %d items right after sending, want 1", len(ids))
	}
	time.Sleep(3 * time.Second)
	if ids, _ := mamIDs(t, alice, "q2", ""); len(ids) != 0 {
		t.Fatalf("archive still has %d items after the retention", len(ids))
	}

	off := Start(t, "archive:\n  retention: 0s\n")
	off.AddUser("carol", "carol-secret")
	carol := Dial(t, off, "carol", "carol-secret", "")
	carol.Send(`<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'/></iq>`)
	if got := carol.Expect(5*time.Second, `id="q"`); !strings.Contains(got, "service-unavailable") {
		t.Fatalf("with archiving off a MAM query got %s, want service-unavailable", got)
	}
}
