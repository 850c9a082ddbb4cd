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

// Append stores items durably on behalf of a stanza whose origin tracks durable writes with d (Origin.Durability,
// nil if none): queued, if the archive can queue and d is not nil; otherwise synchronously.
func Append(ctx context.Context, d Durability, a storage.Archive, owner string, items ...storage.ArchiveItem) error {
	aa, ok := a.(storage.AsyncAppender)
	if d == nil || !ok {
		return a.Append(ctx, owner, items...)
	}
	aa.AppendAsync(owner, items, d.Track())
	return nil
}
