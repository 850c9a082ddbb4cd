package storagetest

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"parley.im/parley/storage"
)

// BenchmarkArchiveAppend measures durable Archive.Append of one message per call, the shape of the hot path
// (one stanza acknowledged after its commit). "serial" appends from one goroutine, so every call waits for
// its own commit; "parallel" appends from 16 goroutines per CPU at once, so that group commit can share one
// commit between many callers. ns/op is per call in both; the ratio is what group commit buys.
//
// open must return a fresh, empty store; BenchmarkArchiveAppend closes it.
func BenchmarkArchiveAppend(b *testing.B, open func(b *testing.B) storage.Store) {
	data := []byte("<message xmlns='jabber:client' type='chat' to='bob@localhost' from='alice@localhost/phone'" +
		" id='a1b2c3d4'><body>Shall we meet at the usual place around seven?</body>" +
		"<origin-id xmlns='urn:xmpp:sid:0' id='a1b2c3d4'/><active xmlns='http://jabber.org/protocol/chatstates'/>" +
		"</message>")
	run := func(b *testing.B, parallel bool) {
		s := open(b)
		b.Cleanup(func() {
			if err := s.Close(); err != nil {
				b.Errorf("Close: %v", err)
			}
		})
		a := s.Archive("mam")
		var seq atomic.Int64
		item := func() storage.ArchiveItem {
			n := seq.Add(1)
			return storage.ArchiveItem{ID: fmt.Sprintf("bench-%d", n), With: "bob@localhost", Time: time.Now(),
				OriginID: fmt.Sprintf("o-%d", n), Data: data}
		}
		owners := []string{"alice@localhost", "carol@localhost", "dave@localhost", "erin@localhost"}
		b.ReportAllocs()
		if !parallel {
			for i := 0; b.Loop(); i++ {
				if err := a.Append(b.Context(), owners[i%len(owners)], item()); err != nil {
					b.Fatal(err)
				}
			}
			return
		}
		b.SetParallelism(16)
		var worker atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			owner := owners[int(worker.Add(1))%len(owners)]
			for pb.Next() {
				if err := a.Append(b.Context(), owner, item()); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.Run("serial", func(b *testing.B) { run(b, false) })
	b.Run("parallel", func(b *testing.B) { run(b, true) })
}
