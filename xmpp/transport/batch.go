package transport

import (
	"math"
	"sync"
)

// Budget bounds the inline writes of one burst: how many recipients' sockets, and how many bytes, the goroutine
// that releases a Batch writes itself before it hands the remaining queues to their writer goroutines. An inline
// write saves a goroutine start and wake per recipient, but each costs the sender a system call (and a TLS
// seal): without a bound, one room message to 100 occupants made its sender do 100 socket writes before it read
// its next stanza.
type Budget struct {
	Recipients int // queues written inline per burst
	Bytes      int // bytes written inline per burst
}

// DefaultBudget is the budget of a Batch whose Budget is zero: a chat message, its carbons and a room of up to
// 64 occupants go out inline; the rest of a larger room's fan-out goes to one hand-off goroutine. The bound is
// set from the load generator's A/B (docs/BENCHMARKS.md): handing off costs a goroutine start and the wake-up
// of an idle P (futex), about a tenth more server CPU per delivery in a 50-occupant room with 16 recipients
// inline, while writing 64 sockets inline delays the sender's next stanza by well under a millisecond.
var DefaultBudget = Budget{Recipients: 64, Bytes: 64 << 10}

// Batch collects the queues whose writers a connection's reader started while it handled a burst of its
// client's stanzas; Release starts them together at the end of the burst, each writing everything queued by
// then in one write, inline within the Budget. Other goroutines may add to it (what holds a batch can outlive
// the burst): while no burst is under way, Add refuses and the caller starts the writer itself.
type Batch struct {
	// Budget bounds Release's inline writes; zero means DefaultBudget.
	Budget Budget

	mu     sync.Mutex
	active bool
	qs     []*Queue
	spare  []*Queue
}

// WriteBatch marks a Batch as the write batch that the router passes through from the reader's stanzas to the
// sessions it delivers to (module.WriteBatch, which this package does not import).
func (*Batch) WriteBatch() {}

// Add defers starting q's writer to Release; false if no burst is under way (or b is nil).
func (b *Batch) Add(q *Queue) bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.active {
		return false
	}
	b.qs = append(b.qs, q)
	return true
}

// Hold starts a burst.
func (b *Batch) Hold() {
	b.mu.Lock()
	b.active = true
	b.mu.Unlock()
}

// Release ends the burst and starts the writers deferred during it: the first ones that fit in the Budget are
// written by the caller where their sockets have room (Queue.Kick), the rest by writer goroutines. Only the
// reader calls it.
func (b *Batch) Release() {
	b.mu.Lock()
	if !b.active {
		b.mu.Unlock()
		return
	}
	b.active = false
	qs := b.qs
	b.qs, b.spare = b.spare[:0], nil
	budget := b.Budget
	b.mu.Unlock()
	if budget == (Budget{}) {
		budget = DefaultBudget
	}
	recipients, bytes := budget.Recipients, budget.Bytes
	for i, q := range qs {
		if recipients <= 0 || bytes <= 0 {
			// The budget is spent: one goroutine writes the rest, as the sender would have. A writer goroutine
			// per remaining recipient would cost a goroutine start and wake-up each (most of a large room's
			// fan-out), where one hand-off costs one.
			rest := make([]*Queue, len(qs)-i)
			copy(rest, qs[i:])
			clear(qs[i:])
			go handOff(rest)
			break
		}
		// Within the budget the queue is written inline if its socket has room; what would overrun the byte
		// budget goes to a writer goroutine.
		wrote, n := q.kick(bytes)
		if wrote {
			recipients--
			bytes -= n
		}
		qs[i] = nil
	}
	b.mu.Lock()
	b.spare = qs[:0]
	b.mu.Unlock()
}

// handOff writes the queues a Release had no budget left for: each inline where its socket has room, the
// others through their writer goroutines.
func handOff(qs []*Queue) {
	for _, q := range qs {
		q.kick(math.MaxInt)
	}
}
