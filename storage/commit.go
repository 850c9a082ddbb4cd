package storage

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// AsyncAppender is implemented by archives that can queue an append and report its commit later. A
// connection that receives a burst of messages then pays one commit for the whole burst instead of one each,
// and acknowledges them (XEP-0198 <a/>) once the callbacks have reported success.
type AsyncAppender interface {
	// AppendAsync queues items for owner and calls done with the commit's result. Items of one owner are
	// committed in the order they were queued, and after every item queued before them.
	AppendAsync(owner string, items []ArchiveItem, done func(error))
}

// ArchiveAppend is the items of one owner in one named archive of a store: one part of a unit of writes.
type ArchiveAppend struct {
	Archive string
	Owner   string
	Items   []ArchiveItem
}

// BatchAppender is what a storage driver implements for group commit; the loop around it is the Committer's.
type BatchAppender interface {
	// AppendBatch stores every unit of batch in one transaction, in order. A unit is the writes of one message
	// (its parts may name several archives and owners) and is stored whole or not at all: a unit with an id its
	// archive already holds for that owner, or one id twice, stores nothing and gets ErrConflict in errs at its
	// index, while the other units are stored. The returned error is the transaction's (begin, commit, a lost
	// connection) and concerns every unit. ctx bounds the whole transaction.
	AppendBatch(ctx context.Context, batch [][]ArchiveAppend, errs []error) error
}

const (
	// maxBatch bounds the number of units in one commit, so that one commit's latency stays bounded under a
	// flood.
	maxBatch = 512
	// maxQueued is how many queued units may wait before AppendAsync blocks its caller (back pressure).
	maxQueued = 10000
	// commitTimeout bounds one group commit, so that a stuck database fails the waiting calls instead of
	// holding them (and the committer) forever.
	commitTimeout = 30 * time.Second
)

// Committer is the group-commit loop of a store, shared by all its archives: appends (waited for or queued)
// wait in one queue, and one goroutine takes every unit waiting at that moment (up to 512) and commits them
// in one transaction through the driver's BatchAppender, then reports to each caller. There is no timer: units
// that arrive while a commit runs form the next batch, so a lone caller pays one commit and a crowd shares
// them. Batches commit one after the other in queue order, so a unit is committed after every unit queued
// before it, whatever the archives and owners.
type Committer struct {
	b         BatchAppender
	errClosed error

	mu      sync.Mutex
	work    sync.Cond // the queue is not empty, or the committer is closed
	space   sync.Cond // the queue has room for queued units
	queue   []*commitReq
	queued  int // units in queue from AppendAsync, bounded by maxQueued
	closed  bool
	stopped chan struct{}

	commits, batched atomic.Int64
}

// commitReq is one unit waiting for the committer.
type commitReq struct {
	ctx   context.Context // of a caller that waits; nil for a queued unit, which cannot give up
	parts []ArchiveAppend
	one   [1]ArchiveAppend // parts of a single-part unit, without an allocation of its own
	done  func(error)      // a queued unit's callback
	ch    chan error       // a waiting caller's answer; buffered: the committer never waits for the caller
}

func (r *commitReq) report(err error) {
	if r.ch != nil {
		r.ch <- err
		return
	}
	if r.done != nil {
		r.done(err)
	}
}

// NewCommitter starts the loop around b. Calls after Close fail with errClosed.
func NewCommitter(b BatchAppender, errClosed error) *Committer {
	if errClosed == nil {
		errClosed = errors.New("storage: store is closed")
	}
	c := &Committer{b: b, errClosed: errClosed, stopped: make(chan struct{})}
	c.work.L, c.space.L = &c.mu, &c.mu
	go c.loop()
	return c
}

// Append stores the unit and returns once it is committed, sharing the commit with the other units of the
// moment. If ctx ends first, Append returns its error; the items are then stored only if their batch had
// already begun (a retry with the same ids then gets ErrConflict).
func (c *Committer) Append(ctx context.Context, parts ...ArchiveAppend) error {
	r := &commitReq{ctx: ctx, ch: make(chan error, 1)}
	r.parts = parts
	return c.wait(ctx, r)
}

func (c *Committer) wait(ctx context.Context, r *commitReq) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.errClosed
	}
	// A waiting caller is not held back by maxQueued: it holds its goroutine anyway, and it can give up.
	c.queue = append(c.queue, r)
	c.work.Signal()
	c.mu.Unlock()
	select {
	case err := <-r.ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AppendAsync queues the unit and calls done with its commit's result, from the committer's goroutine: done
// must not block. It blocks its caller only while maxQueued queued units wait (back pressure).
func (c *Committer) AppendAsync(parts []ArchiveAppend, done func(error)) {
	c.enqueue(&commitReq{parts: parts, done: done})
}

func (c *Committer) enqueue(r *commitReq) {
	c.mu.Lock()
	for c.queued >= maxQueued && !c.closed {
		c.space.Wait()
	}
	if c.closed {
		c.mu.Unlock()
		r.report(c.errClosed)
		return
	}
	c.queue = append(c.queue, r)
	c.queued++
	c.work.Signal()
	c.mu.Unlock()
}

// Sync returns once every unit queued before it has been committed (or has failed), or when ctx ends.
func (c *Committer) Sync(ctx context.Context) error {
	return c.wait(ctx, &commitReq{ctx: ctx, ch: make(chan error, 1)})
}

// Stats returns how many transactions the committer ran and how many units they carried.
func (c *Committer) Stats() (commits, units int64) { return c.commits.Load(), c.batched.Load() }

// Close lets the running batch finish, fails the units still waiting, and stops the loop.
func (c *Committer) Close() {
	c.mu.Lock()
	c.closed = true
	c.work.Broadcast()
	c.space.Broadcast()
	c.mu.Unlock()
	<-c.stopped
}

func (c *Committer) loop() {
	defer close(c.stopped)
	var (
		batch []*commitReq
		live  []*commitReq
		units [][]ArchiveAppend
		errs  []error
	)
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.closed {
			c.work.Wait()
		}
		if c.closed {
			left := c.queue
			c.queue = nil
			c.mu.Unlock()
			for _, r := range left {
				r.report(c.errClosed)
			}
			return
		}
		n := min(len(c.queue), maxBatch)
		batch = append(batch[:0], c.queue[:n]...)
		rest := copy(c.queue, c.queue[n:])
		clear(c.queue[rest:])
		c.queue = c.queue[:rest]
		for _, r := range batch {
			if r.ctx == nil {
				c.queued--
			}
		}
		// Room for queued units before the commit, not after: a callback of this batch may wait for a caller
		// that is itself waiting for room.
		c.space.Broadcast()
		c.mu.Unlock()

		live, units = live[:0], units[:0]
		for _, r := range batch {
			if r.ctx != nil && r.ctx.Err() != nil {
				r.report(r.ctx.Err()) // gave up before its batch began: store nothing
				continue
			}
			live = append(live, r)
			if unitLen(r.parts) > 0 {
				units = append(units, r.parts)
			}
		}
		var err error
		if cap(errs) < len(units) {
			errs = make([]error, len(units), maxBatch)
		}
		errs = errs[:len(units)]
		clear(errs)
		if len(units) > 0 {
			// Not one caller's context: a caller that gives up must not abort the others' commit.
			ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
			err = c.b.AppendBatch(ctx, units, errs)
			cancel()
			c.commits.Add(1)
			c.batched.Add(int64(len(units)))
		}
		u := 0
		for _, r := range live {
			var e error
			if unitLen(r.parts) > 0 {
				e = errs[u]
				u++
			}
			if err != nil {
				e = err
			}
			r.report(e)
		}
		clear(batch) // drop the references to the callers' items
		clear(live)
		clear(units)
	}
}

func unitLen(parts []ArchiveAppend) int {
	n := 0
	for _, p := range parts {
		n += len(p.Items)
	}
	return n
}

// Queued is implemented by archives whose appends go through a Committer, so that writes to several archives
// of one store can be committed as one unit (see Group).
type Queued interface {
	// Queue returns the store's committer and the archive's name within the store.
	Queue() (c *Committer, archive string)
}

// Appender is the append side of an archive whose store commits through a Committer. Drivers embed it in their
// archive type.
type Appender struct {
	Committer *Committer
	Name      string // the archive's name within its store
}

// Append stores items for owner and returns once they are committed and durable. Within one call the items are
// committed together or not at all.
func (a Appender) Append(ctx context.Context, owner string, items ...ArchiveItem) error {
	if len(items) == 0 {
		return nil
	}
	r := &commitReq{ctx: ctx, ch: make(chan error, 1)}
	r.one[0] = ArchiveAppend{Archive: a.Name, Owner: owner, Items: items}
	r.parts = r.one[:]
	return a.Committer.wait(ctx, r)
}

// AppendAsync implements AsyncAppender.
func (a Appender) AppendAsync(owner string, items []ArchiveItem, done func(error)) {
	r := &commitReq{done: done}
	r.one[0] = ArchiveAppend{Archive: a.Name, Owner: owner, Items: items}
	r.parts = r.one[:]
	a.Committer.enqueue(r)
}

// Queue implements Queued.
func (a Appender) Queue() (*Committer, string) { return a.Committer, a.Name }

// Group collects the appends one message causes in archives of one store (the sender's archive, the
// recipient's archive, the offline queue), so that they are committed as one unit: all of them or none, and a
// crash cannot leave one store with the message and another without. It is safe for concurrent use.
type Group struct {
	mu    sync.Mutex
	c     *Committer
	parts []ArchiveAppend
	n     atomic.Int32
}

// Add adds items for owner in archive a and reports whether it could: a must be Queued, by the same committer
// as the group's other parts. A caller that gets false appends some other way.
func (g *Group) Add(a Archive, owner string, items []ArchiveItem) bool {
	q, ok := a.(Queued)
	if !ok {
		return false
	}
	c, name := q.Queue()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.c != nil && g.c != c {
		return false
	}
	g.c = c
	if g.parts == nil {
		g.parts = make([]ArchiveAppend, 0, 4) // a message has up to three copies: one allocation
	}
	g.parts = append(g.parts, ArchiveAppend{Archive: name, Owner: owner, Items: items})
	g.n.Add(1)
	return true
}

// Pending reports whether anything was added since the last Flush. It costs one atomic load, so that a
// connection can ask after every stanza.
func (g *Group) Pending() bool { return g.n.Load() > 0 }

// Flush queues what was added as one unit, with the callback track returns, and reports whether there was
// anything; track is not called when there was not.
func (g *Group) Flush(track func() func(error)) bool {
	g.mu.Lock()
	c, parts := g.c, g.parts
	g.c, g.parts = nil, nil
	g.n.Store(0)
	g.mu.Unlock()
	if len(parts) == 0 {
		return false
	}
	c.AppendAsync(parts, track())
	return true
}

var (
	_ AsyncAppender = Appender{}
	_ Queued        = Appender{}
)
