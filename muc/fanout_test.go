package muc

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"parley.im/parley/storage"
)

// heldArchive queues appends (storage.AsyncAppender) and commits a room's appends only when the test releases
// them, reporting from a goroutine of its own as a store's committer does.
type heldArchive struct {
	*memArchive
	mu   sync.Mutex
	held map[string][]func(error) // by room: commits waiting for release, in queue order
	hold map[string]bool
}

func (a *heldArchive) AppendAsync(owner string, items []storage.ArchiveItem, done func(error)) {
	commit := func(err error) {
		if err == nil {
			err = a.memArchive.Append(context.Background(), owner, items...)
		}
		done(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hold[owner] {
		a.held[owner] = append(a.held[owner], commit)
		return
	}
	go commit(nil)
}

// release commits the room's held appends in the order given (indexes into the held list), with err.
func (a *heldArchive) release(owner string, err error, order ...int) {
	a.mu.Lock()
	held := a.held[owner]
	a.mu.Unlock()
	for _, i := range order {
		held[i](err)
	}
}

// bodies waits until n groupchat bodies have been routed to to and returns them in order.
func (e *env) bodies(to string, n int) []string {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.r.mu.Lock()
		var got []string
		for _, s := range e.r.got[to] {
			if raw := string(s.Raw); strings.Contains(raw, "<body>") {
				got = append(got, raw[strings.Index(raw, "<body>")+6:strings.Index(raw, "</body>")])
			}
		}
		e.r.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A room message is fanned out only once its queued archive append has committed, the room's messages in the
// order they were posted whatever order their commits report in, while another room's messages go on; a
// failed commit answers the sender with an error and reflects nothing.
func TestRoomMessageFannedOutAfterItsCommit(t *testing.T) {
	mem := newMemArchive()
	arch := &heldArchive{memArchive: mem, held: map[string][]func(error){}, hold: map[string]bool{roomJ: true}}
	e := newEnvArchive(t, Config{}, newMemRooms(), mem, arch)
	e.createRoom(alice, "Alice", nil)
	e.join(bob, "Bob")
	const other = "other@conference.localhost"
	e.in("<presence from='" + carol + "' to='" + other + "/Carol'><x xmlns='" + NS + "'/></presence>")
	e.in("<iq type='set' id='cfg2' from='" + carol + "' to='" + other + "'><query xmlns='" + NSOwner +
		"'><x xmlns='jabber:x:data' type='submit'/></query></iq>")
	e.expect(carol, "type='result'", "id='cfg2'")
	e.clear()

	for _, b := range []string{"one", "two", "three"} {
		e.in("<message type='groupchat' id='" + b + "' from='" + alice + "' to='" + roomJ + "'><body>" + b + "</body></message>")
	}
	// Not archived, so not reflected; the other room's message is not held behind them.
	e.in("<message type='groupchat' id='x' from='" + carol + "' to='" + other + "'><body>elsewhere</body></message>")
	if got := e.bodies(carol, 1); len(got) != 1 || got[0] != "elsewhere" {
		t.Fatalf("other room: carol got %q, want [elsewhere] while this room's commits are held", got)
	}
	if got := e.bodies(bob, 0); len(got) != 0 {
		t.Fatalf("bob got %q before any commit", got)
	}
	arch.release(roomJ, nil, 2, 1) // three and two commit first: they wait for one
	time.Sleep(50 * time.Millisecond)
	if got := e.bodies(bob, 0); len(got) != 0 {
		t.Fatalf("bob got %q before the first message committed", got)
	}
	arch.release(roomJ, nil, 0)
	if got := strings.Join(e.bodies(bob, 3), " "); got != "one two three" {
		t.Fatalf("bob got %q, want one two three in order", got)
	}

	e.in("<message type='groupchat' id='four' from='" + alice + "' to='" + roomJ + "'><body>four</body></message>")
	arch.release(roomJ, errors.New("disk full"), 3)
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.r.mu.Lock()
		n := 0
		for _, s := range e.r.got[alice] {
			if strings.Contains(string(s.Raw), "id='four'") && strings.Contains(string(s.Raw), "type='error'") {
				n++
			}
		}
		e.r.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no error to the sender of a message whose commit failed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if got := e.bodies(bob, 3); len(got) != 3 {
		t.Errorf("bob got %q after a failed commit, want the three committed messages only", got)
	}
}

var _ storage.AsyncAppender = (*heldArchive)(nil)
