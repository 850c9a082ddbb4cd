package c2s

import (
	"bytes"
	"net"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-done
	t.Cleanup(func() { sc.Close(); cc.Close() })
	return sc.(*net.TCPConn), cc.(*net.TCPConn)
}

// The sender writes to the socket itself while the client reads; once the client stops reading and the send
// buffer fills, writes go to a writer goroutine and the sender is never blocked.
func TestInlineWriteNeverBlocksTheSender(t *testing.T) {
	sc, cc := tcpPair(t)
	sc.SetWriteBuffer(64 << 10)
	q := &outq{conn: sc, max: 64 << 20, timeout: 5 * time.Second}
	q.room = sendRoom(parkable(sc))
	if q.room == nil {
		t.Fatal("no send-buffer check on a TCP socket")
	}
	msg := bytes.Repeat([]byte("x"), 1000)

	// A reading client: the first stanza is on the wire when kick returns (written by this goroutine).
	ok, start := q.enqueue(msg)
	if !ok || !start {
		t.Fatalf("enqueue on an idle queue: ok=%v start=%v", ok, start)
	}
	if !q.kick() {
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
		ok, start := q.enqueue(msg)
		if !ok {
			t.Fatal("queue refused a stanza under its limit")
		}
		if !start {
			continue
		}
		t0 := time.Now()
		if q.kick() {
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
