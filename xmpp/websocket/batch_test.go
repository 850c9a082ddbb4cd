package websocket

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts the writes to the connections it accepts (one per write(2)).
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, writes: &l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// A Write of many stanzas (a c2s chunk) reaches the network as one write, yet every stanza is its own
// message, in order.
func TestWriteBatched(t *testing.T) {
	const n = 50
	writes := make(chan int64, 1)
	var cl *countingListener // set before the server starts
	h, err := New(trusted(), func(nc net.Conn, _ string, _ bool) {
		defer nc.Close()
		if _, err := nc.Write([]byte(srvHeader)); err != nil {
			t.Error(err)
		}
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "<message id='m%d'><body>%s</body></message>", i, strings.Repeat("x", 200))
		}
		before := cl.writes.Load()
		if _, err := nc.Write([]byte(b.String())); err != nil {
			t.Error(err)
		}
		writes <- cl.writes.Load() - before
		nc.Read(make([]byte, 1)) // until the client is done
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewUnstartedServer(mux)
	cl = &countingListener{Listener: srv.Listener}
	srv.Listener = cl
	srv.Start()
	t.Cleanup(srv.Close)
	c := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http")+h.cfg.Path, nil)
	if got := recv(t, c); !strings.HasPrefix(got, "<open ") {
		t.Fatalf("first message %q", got)
	}
	for i := range n {
		want := fmt.Sprintf("<message xmlns='jabber:client' id='m%d'><body>", i)
		if got := recv(t, c); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "</message>") {
			t.Fatalf("message %d: %.80q, want %q…", i, got, want)
		}
	}
	if w := <-writes; w != 1 {
		t.Fatalf("%d stanzas in %d network writes, want 1", n, w)
	}
}

// A write to a client that does not read fails at the write deadline, and the connection is unusable after.
func TestWriteDeadline(t *testing.T) {
	result := make(chan string, 1)
	_, url := serve(t, trusted(), func(nc net.Conn, _ string, _ bool) {
		defer nc.Close()
		nc.Write([]byte(srvHeader))
		chunk := []byte(strings.Repeat("<message><body>"+strings.Repeat("x", 1000)+"</body></message>", 16))
		nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		var err error
		for start := time.Now(); err == nil && time.Since(start) < 5*time.Second; {
			_, err = nc.Write(chunk)
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			result <- "write: " + errString(err)
			return
		}
		nc.SetWriteDeadline(time.Time{})
		if _, err := nc.Write([]byte("<presence/>")); err == nil {
			result <- "write after the timeout succeeded"
			return
		}
		result <- "ok"
	})
	dial(t, url, nil) // never reads
	select {
	case got := <-result:
		if got != "ok" {
			t.Fatal(got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("write did not time out")
	}
}
