package module_test

import (
	"context"
	"sync"
	"testing"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
)

// recorder is a storage.BatchAppender that records the units it was given.
type recorder struct {
	mu    sync.Mutex
	units [][]storage.ArchiveAppend
}

func (r *recorder) AppendBatch(_ context.Context, units [][]storage.ArchiveAppend, _ []error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.units = append(r.units, units...)
	return nil
}

// queuedArchive is an archive of a store that commits through c; only its append side is used.
type queuedArchive struct {
	storage.Archive
	storage.Appender
}

func (a queuedArchive) Append(ctx context.Context, owner string, items ...storage.ArchiveItem) error {
	return a.Appender.Append(ctx, owner, items...)
}

// grouper is the Durability a connection passes: it counts tracked writes and collects a stanza's unit.
type grouper struct {
	wg    sync.WaitGroup
	group storage.Group
}

func (g *grouper) Track() func(error) {
	g.wg.Add(1)
	return func(error) { g.wg.Done() }
}

func (g *grouper) Group() *storage.Group { return &g.group }

// Regression test (issue 19, item 9): the archive copy and the offline copy of one message were queued, and
// could be committed, apart. Under a Grouper, module.Append adds them to the stanza's unit, queued as one.
func TestDefectMessageCopiesQueuedAsOneUnit(t *testing.T) {
	rec := &recorder{}
	c := storage.NewCommitter(rec, nil)
	defer c.Close()
	mam := queuedArchive{Appender: storage.Appender{Committer: c, Name: "mam"}}
	off := queuedArchive{Appender: storage.Appender{Committer: c, Name: "offline"}}
	g := &grouper{}
	ctx := context.Background()
	item := []storage.ArchiveItem{{ID: "1", OriginID: "o1", Data: []byte("<message/>")}}
	for _, w := range []struct {
		a     storage.Archive
		owner string
	}{{mam, "alice@x"}, {mam, "bob@x"}, {off, "bob@x"}} {
		if err := module.Append(ctx, g, w.a, w.owner, item...); err != nil {
			t.Fatal(err)
		}
	}
	if !g.group.Flush(g.Track) {
		t.Fatal("the stanza's unit is empty: module.Append did not add to it")
	}
	g.wg.Wait()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.units) != 1 || len(rec.units[0]) != 3 {
		t.Fatalf("committed %d units %v, want one of three parts", len(rec.units), rec.units)
	}
	for i, want := range []string{"mam/alice@x", "mam/bob@x", "offline/bob@x"} {
		if p := rec.units[0][i]; p.Archive+"/"+p.Owner != want {
			t.Errorf("part %d is %s/%s, want %s", i, p.Archive, p.Owner, want)
		}
	}
}
