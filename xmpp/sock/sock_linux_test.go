package sock

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"parley.im/parley/xmpp/internal/tcptest"
)

// Conn reads and writes like the TCPConn it wraps: data both ways, the read deadline, end of stream.
func TestConnReadWrite(t *testing.T) {
	sc, cc := tcptest.Pair(t)
	s := Wrap(sc, time.Second)
	if _, ok := s.(*Conn); !ok {
		t.Fatal("a TCP connection was not wrapped")
	}
	s.SetDeadline(time.Now().Add(-time.Second)) // a passed negotiation deadline: reads fail, writes go on
	if _, err := s.Write([]byte("to the client")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	cc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := io.ReadAtLeast(cc, buf, len("to the client")); err != nil || string(buf[:n]) != "to the client" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}
	cc.Write([]byte("to the server"))
	if _, err := s.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past SetDeadline: %v, want a deadline error", err)
	}
	s.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := io.ReadAtLeast(s, buf, len("to the server")); err != nil || string(buf[:n]) != "to the server" {
		t.Fatalf("server read %q, %v", buf[:n], err)
	}
	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := s.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v, want a deadline error", err)
	}
	s.SetReadDeadline(time.Time{})
	cc.Close()
	if _, err := s.Read(buf); err != io.EOF {
		t.Fatalf("read after the client closed: %v, want io.EOF", err)
	}
	if _, err := s.Write(bytes.Repeat([]byte("x"), 1<<20)); err == nil {
		t.Fatal("writing 1 MiB to a closed client succeeded")
	}
}

// A write that has to wait for a client that does not read fails after the write timeout, and only a write
// that waited leaves a deadline behind it: writes that fit never fail because of an earlier one's.
func TestConnWriteTimeout(t *testing.T) {
	sc, _ := tcptest.Pair(t)
	sc.SetWriteBuffer(64 << 10)
	s := Wrap(sc, 300*time.Millisecond).(*Conn)
	if _, err := s.Write([]byte("fits")); err != nil || s.armed {
		t.Fatalf("small write: %v, deadline armed %v", err, s.armed)
	}
	time.Sleep(400 * time.Millisecond) // longer than the timeout: a deadline set by that write would have passed
	if _, err := s.Write([]byte("fits too")); err != nil {
		t.Fatalf("second small write: %v", err)
	}
	start := time.Now()
	_, err := s.Write(bytes.Repeat([]byte("x"), 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("64 MiB to a client that does not read: %v, want a deadline error", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Fatalf("the blocked write failed after %v, want about the 300 ms timeout", d)
	}
}

// A deadline set with SetWriteDeadline holds across writes that had to wait and armed their own.
func TestConnExplicitWriteDeadline(t *testing.T) {
	sc, cc := tcptest.Pair(t)
	sc.SetWriteBuffer(64 << 10)
	s := Wrap(sc, 5*time.Second).(*Conn)
	// A write that waits for the client, which then reads everything.
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(cc, 4<<20))
		done <- b
	}()
	s.SetWriteDeadline(time.Now().Add(time.Hour))
	if _, err := s.Write(bytes.Repeat([]byte("y"), 4<<20)); err != nil {
		t.Fatal(err)
	}
	if b := <-done; len(b) != 4<<20 {
		t.Fatalf("client got %d bytes", len(b))
	}
	if s.armed {
		t.Fatal("a finished write left its deadline armed")
	}
	// The explicit deadline, now in the past, still applies.
	s.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := s.Write([]byte("late")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write after its explicit deadline: %v", err)
	}
}
