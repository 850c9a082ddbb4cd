package conformance

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Carbons: bob has two devices with carbons enabled; what he receives on one and sends from the other shows on
// both (XEP-0280).
func TestCarbonsCopyToOtherResources(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "")
	phone := Dial(t, srv, "bob", "bob-secret", "")
	laptop := Dial(t, srv, "bob", "bob-secret", "")
	for _, c := range []*Client{alice, phone, laptop} {
		c.Send(`<presence/>`)
	}
	for _, c := range []*Client{phone, laptop} {
		c.Send(`<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>`)
		c.Expect(5*time.Second, `id="c1"`, `type="result"`)
	}
	// alice writes to bob's phone: the laptop gets a received carbon.
	alice.Send(fmt.Sprintf(`<message to='%s' type='chat'><body>to the phone</body></message>`, phone.JID))
	phone.Expect(5*time.Second, "to the phone")
	got := laptop.Expect(5*time.Second, "to the phone")
	if !strings.Contains(got, `<received xmlns="urn:xmpp:carbons:2"`) || !strings.Contains(got, `urn:xmpp:forward:0`) {
		t.Fatalf("laptop got %s, want a received carbon", got)
	}
	// bob answers from the laptop: the phone gets a sent carbon.
	laptop.Send(`<message to='alice@localhost' type='chat'><body>from the laptop</body></message>`)
	alice.Expect(5*time.Second, "from the laptop")
	if got := phone.Expect(5*time.Second, "from the laptop"); !strings.Contains(got, `<sent xmlns="urn:xmpp:carbons:2"`) {
		t.Fatalf("phone got %s, want a sent carbon", got)
	}
	// A private message is not copied.
	laptop.Send(`<message to='alice@localhost' type='chat'><body>secret</body><private xmlns='urn:xmpp:carbons:2'/></message>`)
	alice.Expect(5*time.Second, "secret")
	phone.ExpectNone(500*time.Millisecond, "secret")
}

var stanzaIDRe = regexp.MustCompile(`<stanza-id xmlns="urn:xmpp:sid:0"[^>]* by="bob@localhost" id="([^"]+)"`)

// MAM: 500 messages are archived with the stanza-id the recipient saw, and page back with RSM.
func TestMAMPagesThrough500Messages(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "")
	bob := Dial(t, srv, "bob", "bob-secret", "")
	bob.Send(`<presence/>`)
	bob.Expect(5*time.Second, "<presence")
	const n = 500
	seen := make([]string, 0, n)
	for i := 0; i < n; i++ {
		alice.Send(fmt.Sprintf(`<message to='bob@localhost' type='chat' id='m%d'><body>archived %d</body></message>`, i, i))
	}
	for i := 0; i < n; i++ {
		got := bob.Expect(10*time.Second, fmt.Sprintf(">archived %d</body>", i))
		m := stanzaIDRe.FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("message %d has no stanza-id by bob's archive: %s", i, got)
		}
		seen = append(seen, m[1])
	}
	// Archive appends are committed in the background (the sender's acks wait for them, live delivery does not):
	// wait until the archive holds all 500, as a client that connects later would find it.
	for try := 0; ; try++ {
		bob.Send(fmt.Sprintf(`<iq type='set' id='cnt%d'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set></query></iq>`, try))
		got := bob.Expect(10*time.Second, fmt.Sprintf(`id="cnt%d"`, try))
		if strings.Contains(got, fmt.Sprintf("<count>%d</count>", n)) || strings.Contains(got, fmt.Sprintf(`>%d</count>`, n)) {
			break
		}
		if try > 50 {
			t.Fatalf("archive never reached %d messages: %s", n, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Page backwards from the end, 100 at a time, as a client catching up does.
	var ids []string
	before := ""
	for page := 0; ; page++ {
		if page > 10 {
			t.Fatal("paging did not finish")
		}
		q := fmt.Sprintf(`<iq type='set' id='q%d'><query xmlns='urn:xmpp:mam:2' queryid='p%d'><set xmlns='http://jabber.org/protocol/rsm'><max>100</max><before>%s</before></set></query></iq>`, page, page, before)
		bob.Send(q)
		var pageIDs []string
		for {
			got := bob.Expect(10*time.Second, "")
			if strings.Contains(got, fmt.Sprintf(`id="q%d"`, page)) {
				if !strings.Contains(got, `<fin xmlns="urn:xmpp:mam:2"`) {
					t.Fatalf("no fin: %s", got)
				}
				complete := strings.Contains(got, `complete="true"`)
				ids = append(pageIDs, ids...)
				if len(pageIDs) > 0 {
					before = pageIDs[0]
				}
				if complete {
					goto done
				}
				break
			}
			if m := regexp.MustCompile(`<result xmlns="urn:xmpp:mam:2"[^>]* id="([^"]+)"`).FindStringSubmatch(got); m != nil {
				pageIDs = append(pageIDs, m[1])
			}
		}
	}
done:
	if len(ids) != n {
		t.Fatalf("MAM returned %d messages, want %d", len(ids), n)
	}
	for i := range ids {
		if ids[i] != seen[i] {
			t.Fatalf("MAM item %d has id %s, but the live message had stanza-id %s", i, ids[i], seen[i])
		}
	}
}

// A client retry with the same origin-id is delivered and archived once (XEP-0359).
func TestOriginIDRetryIsDeliveredOnce(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "")
	bob := Dial(t, srv, "bob", "bob-secret", "")
	bob.Send(`<presence/>`)
	bob.Expect(5*time.Second, "<presence") // available before alice writes, or the message goes offline
	msg := `<message to='bob@localhost' type='chat' id='x'><body>only once</body><origin-id xmlns='urn:xmpp:sid:0' id='5f1b6c1e-retry-test'/></message>`
	alice.Send(msg)
	alice.Send(msg)
	bob.Expect(5*time.Second, "only once")
	bob.ExpectNone(time.Second, "only once")
}
