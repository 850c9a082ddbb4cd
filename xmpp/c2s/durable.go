package c2s

import (
	"sync"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
)

// pending counts the durable writes under way for the stanzas a session has handled. The session acknowledges
// stanzas (XEP-0198 <a/>, <resumed/>) only after waiting for it, so that an acknowledged message is committed
// while messages keep flowing in between: a burst pays one group commit, not one commit per message.
type pending struct {
	mu   sync.Mutex
	cond sync.Cond
	n    int
	err  error

	// group collects the writes made for the stanza being routed (module.Append), queued as one unit by flush
	// when its routing returns.
	group storage.Group
}

func newPending() *pending {
	p := &pending{}
	p.cond.L = &p.mu
	return p
}

// Track implements module.Durability.
func (p *pending) Track() func(error) {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
	return func(err error) {
		p.mu.Lock()
		p.n--
		if err != nil && p.err == nil {
			p.err = err
		}
		if p.n == 0 {
			p.cond.Broadcast()
		}
		p.mu.Unlock()
	}
}

// Group implements module.Grouper.
func (p *pending) Group() *storage.Group { return &p.group }

// flush queues the writes made for the stanza just routed as one unit. Without any, it costs an atomic load.
func (p *pending) flush() {
	if p.group.Pending() {
		p.group.Flush(p.Track)
	}
}

// wait blocks until every tracked write has committed and returns the first failure, if any: after a failure
// nothing may be acknowledged again.
func (p *pending) wait() error {
	p.flush() // a write made from another goroutine with the connection's context, after the last stanza
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.n > 0 {
		p.cond.Wait()
	}
	return p.err
}

var _ module.Grouper = (*pending)(nil)
