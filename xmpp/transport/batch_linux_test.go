package transport

import (
	"bytes"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"parley.im/parley/xmpp/internal/tcptest"
)

// inlineCounter counts the writes made by a goroutine other than a queue's writer goroutine or the hand-off
// goroutine of a spent budget: those the releasing sender made itself.
type inlineCounter struct {
	net.Conn
	inline, handed, handOff *atomic.Int64
}

func (c *inlineCounter) Write(p []byte) (int, error) {
	buf := make([]byte, 8<<10)
	st := buf[:runtime.Stack(buf, false)]
	switch {
	case bytes.Contains(st, []byte("transport.handOff")):
		c.handOff.Add(1)
		c.handed.Add(1)
	case bytes.Contains(st, []byte("(*Queue).drain")):
		c.handed.Add(1)
	default:
		c.inline.Add(1)
	}
	return c.Conn.Write(p)
}

// One burst that queued a stanza to each of many idle recipients whose sockets all have room (a room message
// to its occupants): the sender writes at most the budget's recipients, or bytes, inline; writer goroutines
// write the rest, and every recipient gets its stanza.
func TestBatchInlineWriteBudget(t *testing.T) {
	for _, tc := range []struct {
		name          string
		recipients    int
		size          int
		budget        Budget
		maxInline     int
		wantAllInline bool
	}{
		{"room of 100, default budget", 100, 300, Budget{}, DefaultBudget.Recipients, false},
		{"4 recipients, default budget", 4, 300, Budget{}, 4, true},
		{"10 of 16 KiB, byte budget", 10, 16 << 10, Budget{Recipients: 100, Bytes: 64 << 10}, 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var inline, handed, handOff atomic.Int64
			msg := bytes.Repeat([]byte("x"), tc.size)
			b := &Batch{Budget: tc.budget}
			clients := make([]net.Conn, tc.recipients)
			b.Hold()
			for i := range tc.recipients {
				sc, cc := tcptest.Pair(t)
				clients[i] = cc
				q := &Queue{Max: 1 << 20, conn: &inlineCounter{Conn: sc, inline: &inline, handed: &handed, handOff: &handOff}}
				if q.SetRoom(SendRoom(Parkable(sc))); q.room == nil {
					t.Fatal("no send-buffer check on a TCP socket")
				}
				ok, start := q.Enqueue(msg)
				if !ok || !start {
					t.Fatalf("enqueue on an idle queue: ok=%v start=%v", ok, start)
				}
				if !b.Add(q) {
					t.Fatal("a held batch refused a queue")
				}
			}
			b.Release()
			got := inline.Load()
			if got > int64(tc.maxInline) {
				t.Errorf("the sender wrote %d of %d recipients' sockets inline, budget %d", got, tc.recipients, tc.maxInline)
			}
			if got == 0 {
				t.Error("no inline write at all: the budget disabled inline writes")
			}
			if tc.wantAllInline && got != int64(tc.recipients) {
				t.Errorf("%d recipients within the budget, %d written inline", tc.recipients, got)
			}
			buf := make([]byte, 64<<10)
			for i, cc := range clients {
				cc.SetReadDeadline(time.Now().Add(5 * time.Second))
				for n := 0; n < len(msg); {
					k, err := cc.Read(buf)
					if err != nil {
						t.Fatalf("recipient %d: after %d of %d bytes: %v", i, n, len(msg), err)
					}
					n += k
				}
			}
			if total := inline.Load() + handed.Load(); total < int64(tc.recipients) {
				t.Errorf("%d writes for %d recipients", total, tc.recipients)
			}
			// Past the budget, one hand-off goroutine writes the rest (every socket here has room), not a
			// writer goroutine per recipient.
			if rest := int64(tc.recipients) - inline.Load(); tc.name == "room of 100, default budget" && handOff.Load() < rest {
				t.Errorf("the hand-off wrote %d of the %d recipients past the budget", handOff.Load(), rest)
			}
		})
	}
}
