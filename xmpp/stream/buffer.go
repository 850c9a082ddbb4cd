package stream

import (
	"math/bits"
	"sync"
)

// Large read buffers are shared between Readers through pools, one per power-of-two size. A Reader holds a large
// buffer only while it reads a large element (and the next one, if it is already arriving), then returns it: idle
// sessions keep only their small buffer, and a peer sending one large element after another does not make every
// element allocate its buffer again (BenchmarkNextLarge: 261 KB and 8 allocations per 64 KiB element without).
var bufPools [48]sync.Pool

// getBuf returns a buffer of n bytes, a power of two.
func getBuf(n int) *[]byte {
	if p, ok := bufPools[bits.Len(uint(n))].Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, n)
	return &b
}

func putBuf(p *[]byte) {
	bufPools[bits.Len(uint(len(*p)))].Put(p)
}

// grow replaces the buffer with one at least twice as large (a power of two), up to what MaxElement can need,
// keeping buf[:end]. It reports false if the buffer cannot grow.
func (r *Reader) grow() bool {
	limit := 1 << bits.Len(uint(r.maxEl-1)) // MaxElement rounded up to a power of two
	n := 1 << bits.Len(uint(2*len(r.buf)-1))
	n = min(n, limit)
	if n <= len(r.buf) {
		return false
	}
	p := getBuf(n)
	copy(*p, r.buf[:r.end])
	r.release()
	r.buf, r.large = *p, p
	return true
}

// shrink goes back to a small buffer of its own, keeping buf[start:end].
func (r *Reader) shrink() {
	b := r.small
	if b == nil {
		b = make([]byte, r.idle)
	}
	n := copy(b, r.buf[r.start:r.end])
	r.base += int64(r.start)
	r.pos -= r.start
	r.start, r.end = 0, n
	r.release()
	r.buf, r.small = b, nil
}

// release returns the large buffer, if the Reader holds one, keeping the small one aside for shrink.
func (r *Reader) release() {
	if r.large != nil {
		putBuf(r.large)
		r.large = nil
	} else if len(r.buf) == r.idle {
		r.small = r.buf
	}
}

// Park gives the read buffer back to a pool when nothing is buffered, so that a session waiting for its client
// holds no buffer at all; the next read takes one again. Call it between elements, before waiting for the source
// to become readable (the element Next returned last becomes invalid). With bytes of an unfinished element
// buffered it keeps them, and the buffer.
func (r *Reader) Park() {
	r.discard()
	if r.start != r.end || r.buf == nil {
		return
	}
	r.base += int64(r.end)
	r.start, r.pos, r.end = 0, 0, 0
	r.release()
	if r.small != nil && pooled(len(r.small)) {
		b := r.small
		putBuf(&b)
	}
	r.buf, r.small = nil, nil
}

// pooled reports whether buffers of n bytes go to the pools: those hold powers of two only.
func pooled(n int) bool { return n > 0 && n&(n-1) == 0 }

// unpark gives a parked Reader its small buffer back.
func (r *Reader) unpark() {
	if pooled(r.idle) {
		r.buf = *getBuf(r.idle)
	} else {
		r.buf = make([]byte, r.idle)
	}
}
