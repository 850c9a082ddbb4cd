package stanza

import (
	"crypto/rand"
	"encoding/base32"
	"strconv"
	"sync/atomic"
	"time"
)

var idSeq atomic.Uint64

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns a unique, roughly time-ordered id for the ids the server hands out (XEP-0359 stanza-ids,
// archive and offline items): the time in milliseconds, a process counter and 40 random bits, so ids from
// several nodes do not collide.
func NewID() string {
	var b [5]byte
	rand.Read(b[:])
	id := strconv.AppendInt(make([]byte, 0, 24), time.Now().UnixMilli(), 36)
	id = strconv.AppendUint(id, idSeq.Add(1)%1679616, 36)
	return string(idEncoding.AppendEncode(id, b[:]))
}
