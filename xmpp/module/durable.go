package module

import (
	"context"

	"parley.im/parley/storage"
)

// Durability tracks writes a module made durable asynchronously on behalf of a stanza. The connection that
// received the stanza puts one in the Origin it routes with (Origin.Durability), and acknowledges stanzas to its
// client (XEP-0198 <a/>) only after every write tracked so far has committed.
type Durability interface {
	// Track registers a write that is under way and returns the function its commit must call.
	Track() (done func(error))
}

// Grouper is a Durability that commits the writes made for one stanza as one unit: the copies of a message in
// the sender's archive, the recipient's and the offline queue are stored together or not at all, so that a crash
// cannot leave one of them without the others (a retry would be taken for a duplicate and never completed). The
// connection queues the group when the stanza's routing returns.
type Grouper interface {
	Durability
	Group() *storage.Group
}

// Append stores items durably on behalf of a stanza whose origin tracks durable writes with d (Origin.Durability,
// nil if none): queued, if the archive can queue and d is not nil (in the stanza's unit of writes if d is a
// Grouper); otherwise synchronously.
func Append(ctx context.Context, d Durability, a storage.Archive, owner string, items ...storage.ArchiveItem) error {
	aa, ok := a.(storage.AsyncAppender)
	if d == nil || !ok {
		return a.Append(ctx, owner, items...)
	}
	if g, ok := d.(Grouper); ok && g.Group().Add(a, owner, items) {
		return nil
	}
	aa.AppendAsync(owner, items, d.Track())
	return nil
}

// AppendThen stores items like Append, alone, and then calls then with the commit's result: from the
// committer's goroutine if the archive queues (then must not block), before AppendThen returns otherwise. The
// stanza whose origin tracks durable writes with d (nil if none) is acknowledged only after that commit.
func AppendThen(ctx context.Context, d Durability, a storage.Archive, owner string, items []storage.ArchiveItem, then func(error)) {
	aa, ok := a.(storage.AsyncAppender)
	if !ok {
		then(a.Append(ctx, owner, items...))
		return
	}
	track := func(error) {}
	if d != nil {
		track = d.Track()
	}
	aa.AppendAsync(owner, items, func(err error) {
		track(err)
		then(err)
	})
}
