package transport

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
	"time"

	"parley.im/parley/xmpp/internal/tcptest"
	"parley.im/parley/xmpp/stream"
)

// The sender writes to the socket itself while the client reads; once the client stops reading and the send
// buffer fills, writes go to a writer goroutine and the sender is never blocked.
func TestInlineWriteNeverBlocksTheSender(t *testing.T) {
	sc, cc := tcptest.Pair(t)
	sc.SetWriteBuffer(64 << 10)
	q := &Queue{conn: sc, Max: 64 << 20, Timeout: 5 * time.Second}
	q.room = SendRoom(Parkable(sc))
	if q.room == nil {
		t.Fatal("no send-buffer check on a TCP socket")
	}
	msg := bytes.Repeat([]byte("x"), 1000)

	// A reading client: the first stanza is on the wire when kick returns (written by this goroutine).
	ok, start := q.Enqueue(msg)
	if !ok || !start {
		t.Fatalf("enqueue on an idle queue: ok=%v start=%v", ok, start)
	}
	if !q.Kick() {
		t.Fatal("an idle socket with room was not written by the sender itself")
	}
	cc.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 4096)
	first, err := cc.Read(buf)
	if err != nil || first == 0 {
		t.Fatalf("nothing written inline: %d, %v", first, err)
	}

	// The client stops reading. The sender keeps sending; every kick returns at once even when the kernel's
	// buffer is full, because the check sends the rest to a writer goroutine.
	inlineSeen, handedOff := 0, 0
	for range 2000 {
		ok, start := q.Enqueue(msg)
		if !ok {
			t.Fatal("queue refused a stanza under its limit")
		}
		if !start {
			continue
		}
		t0 := time.Now()
		if q.Kick() {
			inlineSeen++
		} else {
			handedOff++
		}
		if d := time.Since(t0); d > 500*time.Millisecond {
			t.Fatalf("kick blocked the sender for %v with a client that does not read", d)
		}
	}
	if handedOff == 0 {
		t.Errorf("2 MB to a client that does not read and the queue never handed off to a writer goroutine (inline %d)", inlineSeen)
	}
	// Reading again drains everything, in order and complete.
	want := 2001 * len(msg)
	got := first
	cc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for got < want {
		n, err := cc.Read(buf)
		if err != nil {
			t.Fatalf("after %d of ~%d bytes: %v", got, want, err)
		}
		got += n
	}
}

// When epoll_wait fails, the poller resumes every connection parked in it and parks nothing more, so that
// Parker.Next falls back to a goroutine per idle connection instead of leaving connections unserved.
func TestPollerFailureResumesParked(t *testing.T) {
	sc, _ := tcptest.Pair(t)
	resumed := make(chan struct{}, 1)
	var pk Parker
	pk.Init(sc, func() { resumed <- struct{}{} })

	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(epfd)
	p := &poller{epfd: epfd, waiting: make(map[int32]*Parker)} // not the process's poller, and no run loop
	if !p.park(&pk) {
		t.Fatal("park refused a live socket")
	}
	if !p.parked(&pk) {
		t.Fatal("a parked connection is not in the poller")
	}
	p.fail(errors.New("test failure"))
	p.mu.Lock()
	left := len(p.waiting)
	p.mu.Unlock()
	if left != 0 {
		t.Fatalf("after the failure %d connections still wait", left)
	}
	select {
	case <-resumed:
	case <-time.After(5 * time.Second):
		t.Fatal("the failing poller did not resume the parked connection")
	}
	if p.park(&pk) {
		t.Fatal("a failed poller accepted a connection")
	}
}

// An idle connection parks in the process's poller: Next returns ErrParked with no goroutine left waiting, and
// Resume runs once the peer sends; closing the socket of a parked connection and waking it resumes it too.
func TestParkerParksAndResumes(t *testing.T) {
	sc, cc := tcptest.Pair(t)
	resumed := make(chan struct{}, 1)
	var pk Parker
	pk.Init(sc, func() { resumed <- struct{}{} })
	rd := stream.NewReader(sc, stream.Limits{})
	cc.Write([]byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"))
	if _, err := rd.Header(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if _, err := pk.Next(rd); err != ErrParked {
		t.Fatalf("Next on an idle connection: %v, want ErrParked", err)
	}
	if d := time.Since(t0); d < ParkAfter/2 {
		t.Fatalf("parked after %v, before ParkAfter/2", d)
	}
	if !pk.Parked() {
		t.Fatal("an idle connection is not in the poller")
	}
	cc.Write([]byte("<message id='m1'/>"))
	select {
	case <-resumed:
	case <-time.After(5 * time.Second):
		t.Fatal("input did not resume a parked connection")
	}
	el, err := pk.Next(rd)
	if err != nil || string(el.ID) != "m1" {
		t.Fatalf("after resuming: %v, %v", el, err)
	}
	if _, err := pk.Next(rd); err != ErrParked {
		t.Fatalf("Next on an idle connection: %v, want ErrParked", err)
	}
	sc.Close()
	pk.Wake()
	select {
	case <-resumed:
	case <-time.After(5 * time.Second):
		t.Fatal("Wake did not resume a parked connection whose socket was closed")
	}
	if pk.Parked() {
		t.Fatal("a woken connection is still in the poller")
	}
}
