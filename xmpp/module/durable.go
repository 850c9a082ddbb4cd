package module

import (
	"context"

	"parley.im/parley/storage"
)

// Durability tracks writes a module made durable asynchronously on behalf of a stanza. The connection that
// received the stanza puts one in the context it routes with, and acknowledges stanzas to its client
// (XEP-0198 <a/>) only after every write tracked so far has committed.
type Durability interface {
	// Track registers a write that is under way and returns the function its commit must call.
	Track() (done func(error))
}

type durabilityKey struct{}

// WithDurability returns ctx carrying d.
func WithDurability(ctx context.Context, d Durability) context.Context {
	return context.WithValue(ctx, durabilityKey{}, d)
}

// Append stores items durably on behalf of the stanza being routed with ctx: queued, if the archive can queue
// and the context carries a Durability to wait for the commit; otherwise synchronously.
func Append(ctx context.Context, a storage.Archive, owner string, items ...storage.ArchiveItem) error {
	d, _ := ctx.Value(durabilityKey{}).(Durability)
	aa, ok := a.(storage.AsyncAppender)
	if d == nil || !ok {
		return a.Append(ctx, owner, items...)
	}
	aa.AppendAsync(owner, items, d.Track())
	return nil
}
