package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"parley.im/parley/storage"
	"parley.im/parley/storage/sqlite"
)

// A sender streams 10,000 messages with stream management while the server is killed with SIGKILL and
// restarted. Every message is delivered exactly once by offline delivery, and archived once: those the server
// acknowledged (<a/>), and those it did not, which the client sends again with the same origin-id after the
// restart. (Before issue 19 item 9 was fixed, a few retries were found in the archive only.)
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test streams 10,000 messages")
	}
	total, crashAt := 10000, 3000
	if n, err := strconv.Atoi(os.Getenv("PARLEY_CRASH_TOTAL")); err == nil {
		total, crashAt = n, n*3/10
	}
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")

	body := func(i int) string { return fmt.Sprintf("crash-%05d", i) }
	msg := func(i int) string {
		return fmt.Sprintf(`<message to='bob@localhost' type='chat' id='c%d'><body>%s</body><origin-id xmlns='urn:xmpp:sid:0' id='crash-origin-%05d'/></message>`, i, body(i), i)
	}

	alice := loginSM(t, srv, "alice", "alice-secret")
	alice.bindAndEnableNoPresence()
	var acked atomic.Int64
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		ackRe := regexp.MustCompile(`<a xmlns='urn:xmpp:sm:3' h='(\d+)'/>`)
		b := make([]byte, 64<<10)
		var acc string
		for {
			alice.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			n, err := alice.conn.Read(b)
			acc += string(b[:n])
			for _, m := range ackRe.FindAllStringSubmatch(acc, -1) {
				h, _ := strconv.Atoi(m[1])
				if int64(h) > acked.Load() {
					acked.Store(int64(h))
				}
			}
			if i := strings.LastIndex(acc, "/>"); i >= 0 {
				acc = acc[i+2:]
			}
			if err != nil {
				return
			}
		}
	}()
	sent := 0
	killed := make(chan struct{})
	go func() {
		for acked.Load() < int64(crashAt) {
			time.Sleep(5 * time.Millisecond)
		}
		srv.Kill()
		close(killed)
	}()
	for ; sent < total; sent++ {
		var s string
		s = msg(sent)
		if sent%50 == 49 {
			s += `<r xmlns='urn:xmpp:sm:3'/>`
		}
		if _, err := alice.conn.Write([]byte(s)); err != nil {
			break
		}
	}
	<-killed
	<-readDone
	ackedAtCrash := int(acked.Load())
	if ackedAtCrash < crashAt || ackedAtCrash >= total {
		t.Fatalf("acknowledged %d messages before the crash; the test wants the crash mid-stream", ackedAtCrash)
	}
	t.Logf("server killed after %d of %d messages were acknowledged (%d written)", ackedAtCrash, total, sent)

	// After the restart the client sends again everything it has no ack for, with the same origin-ids.
	srv.StartAgain()
	alice2 := loginSM(t, srv, "alice", "alice-secret")
	alice2.bindAndEnableNoPresence()
	resend := total - ackedAtCrash
	var batch strings.Builder
	for i := ackedAtCrash; i < total; i++ {
		batch.WriteString(msg(i))
		if batch.Len() > 32<<10 {
			alice2.send(batch.String())
			batch.Reset()
		}
	}
	batch.WriteString(`<r xmlns='urn:xmpp:sm:3'/>`)
	alice2.send(batch.String())
	alice2.await(fmt.Sprintf(`<a xmlns='urn:xmpp:sm:3' h='%d'/>`, resend), 120*time.Second)

	// bob logs in: offline delivery, then his archive.
	bob := Dial(t, srv, "bob", "bob-secret", "")
	bob.Send(`<presence/>`)
	offline := make([]int, total)
	bodyRe := regexp.MustCompile(`>crash-(\d{5})</body>`)
	for quiet := time.After(3 * time.Second); ; {
		select {
		case s := <-bob.In:
			if m := bodyRe.FindStringSubmatch(s); m != nil && !strings.Contains(s, "urn:xmpp:mam:2") {
				i, _ := strconv.Atoi(m[1])
				offline[i]++
				quiet = time.After(3 * time.Second)
			}
			continue
		case <-quiet:
		}
		break
	}
	archived := make([]int, total)
	after := ""
	for page := 0; page < 100; page++ {
		bob.Send(fmt.Sprintf(`<iq type='set' id='mam%d'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>250</max>%s</set></query></iq>`,
			page, map[bool]string{true: "", false: "<after>" + after + "</after>"}[after == ""]))
		for {
			s := bob.Expect(30*time.Second, "")
			if strings.Contains(s, fmt.Sprintf(`id="mam%d"`, page)) {
				if strings.Contains(s, `complete="true"`) {
					page = 100
				} else if m := regexp.MustCompile(`<last[^>]*>([^<]+)</last>`).FindStringSubmatch(s); m != nil {
					after = m[1]
				}
				break
			}
			if m := bodyRe.FindStringSubmatch(s); m != nil && strings.Contains(s, "urn:xmpp:mam:2") {
				i, _ := strconv.Atoi(m[1])
				archived[i]++
			}
		}
	}
	lost, dupOffline, dupArchive, archiveOnly := 0, 0, 0, 0
	for i := 0; i < total; i++ {
		// Issue 19, item 9: a message that reached the archive and not the offline queue is lost to a client
		// without MAM. One message's copies commit together, and a retry completes the missing one.
		if offline[i] == 0 && archived[i] > 0 {
			archiveOnly++
			if archiveOnly < 5 {
				t.Errorf("message %d is in bob's archive only, never delivered offline (acknowledged: %v)", i,
					i < ackedAtCrash)
			}
		}
		if offline[i] > 1 {
			dupOffline++
		}
		if archived[i] > 1 {
			dupArchive++
		}
		if offline[i] == 0 && archived[i] == 0 {
			lost++
			if lost < 5 {
				t.Errorf("message %d never reached bob (acknowledged: %v)", i, i < ackedAtCrash)
			}
		}
	}
	if lost > 0 || dupOffline > 0 || dupArchive > 0 || archiveOnly > 0 {
		t.Fatalf("lost %d, delivered offline twice %d, archived twice %d, in the archive only %d", lost, dupOffline,
			dupArchive, archiveOnly)
	}
}

// Regression test (issue 19, item 9): a retry after a crash was acknowledged and never delivered offline. The
// crash had left the recipient's archive copy committed and its offline copy not; the retry (same origin-id)
// was taken for a duplicate of what the archive held. The state the crash left is made directly in the
// database while the server is down; the retry must then complete the offline copy, without a second archive
// copy.
func TestDefectRetryAfterCrashCompletesOfflineCopy(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	srv.Stop()
	st, err := sqlite.Open(t.Context(), filepath.Join(srv.Dir, "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	msg := `<message to='bob@localhost' type='chat' id='r1'><body>retried after crash</body><origin-id xmlns='urn:xmpp:sid:0' id='retry-origin-1'/></message>`
	stored := `<message xmlns='jabber:client' from='alice@localhost/phone' to='bob@localhost' type='chat' id='r1'><body>retried after crash</body><origin-id xmlns='urn:xmpp:sid:0' id='retry-origin-1'/><stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='crash-archived-1'/></message>`
	err = st.Archive("mam").Append(t.Context(), "bob@localhost", storage.ArchiveItem{ID: "crash-archived-1",
		With: "alice@localhost", Time: time.Now().UTC(), OriginID: "retry-origin-1", Data: []byte(stored)})
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	srv.StartAgain()

	alice := loginSM(t, srv, "alice", "alice-secret")
	alice.bindAndEnableNoPresence()
	alice.send(msg + `<r xmlns='urn:xmpp:sm:3'/>`)
	alice.await(`<a xmlns='urn:xmpp:sm:3' h='1'/>`, 10*time.Second)

	bob := Dial(t, srv, "bob", "bob-secret", "")
	bob.Send(`<presence/>`)
	got := bob.Expect(5*time.Second, "retried after crash")
	if !strings.Contains(got, "urn:xmpp:delay") {
		t.Errorf("message did not come from offline storage: %s", got)
	}
	bob.ExpectNone(500*time.Millisecond, "retried after crash")
	ids, _ := mamIDs(t, bob, "q1", "")
	if len(ids) != 1 || ids[0] != "crash-archived-1" {
		t.Errorf("bob's archive holds %q, want the one copy crash-archived-1", ids)
	}
}
