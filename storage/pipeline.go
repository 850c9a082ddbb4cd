package storage

import (
	"context"
	"sync"
)

// AsyncAppender is implemented by archives that can queue an append and report its commit later. A
// connection that receives a burst of messages then pays one commit for the whole burst instead of one each,
// and acknowledges them (XEP-0198 <a/>) once the callbacks have reported success.
type AsyncAppender interface {
	// AppendAsync queues items for owner and calls done with the commit's result. Items of one owner are
	// committed in the order they were queued, and after every item queued before them.
	AppendAsync(owner string, items []ArchiveItem, done func(error))
}

// Pipeline wraps an archive so that appends are queued in order and committed in batches: each round takes
// everything queued, appends each owner's items with one call (concurrently, so the driver's group commit
// puts them in one transaction), then reports to every caller. Append on the wrapper is AppendAsync plus a
// wait, so synchronous and queued appends keep one order.
type Pipeline struct {
	Archive
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []asyncReq
	running bool
	max     int
}

type asyncReq struct {
	owner string
	items []ArchiveItem
	done  func(error)
}

// NewPipeline wraps a; at most maxQueued requests wait before AppendAsync blocks its caller (back pressure).
func NewPipeline(a Archive, maxQueued int) *Pipeline {
	if maxQueued <= 0 {
		maxQueued = 10000
	}
	p := &Pipeline{Archive: a, max: maxQueued}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// AppendAsync implements AsyncAppender.
func (p *Pipeline) AppendAsync(owner string, items []ArchiveItem, done func(error)) {
	p.mu.Lock()
	for len(p.queue) >= p.max {
		p.cond.Wait()
	}
	p.queue = append(p.queue, asyncReq{owner, items, done})
	start := !p.running
	p.running = true
	p.mu.Unlock()
	if start {
		go p.run()
	}
}

// Append queues and waits, so that it is ordered with queued appends.
func (p *Pipeline) Append(ctx context.Context, owner string, items ...ArchiveItem) error {
	ch := make(chan error, 1)
	p.AppendAsync(owner, items, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Pipeline) run() {
	for {
		p.mu.Lock()
		batch := p.queue
		p.queue = nil
		if len(batch) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.cond.Broadcast()
		p.mu.Unlock()
		p.commit(batch)
	}
}

// commit appends one round: per owner, one call with that owner's items in queue order.
func (p *Pipeline) commit(batch []asyncReq) {
	type group struct {
		items []ArchiveItem
		reqs  []int
	}
	var order []string
	groups := make(map[string]*group)
	for i, r := range batch {
		g := groups[r.owner]
		if g == nil {
			g = &group{}
			groups[r.owner] = g
			order = append(order, r.owner)
		}
		g.items = append(g.items, r.items...)
		g.reqs = append(g.reqs, i)
	}
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	for _, owner := range order {
		g := groups[owner]
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.Archive.Append(context.Background(), owner, g.items...)
			for _, i := range g.reqs {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	for i, r := range batch {
		r.done(errs[i])
	}
}

var _ AsyncAppender = (*Pipeline)(nil)
