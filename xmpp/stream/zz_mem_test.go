package stream

import (
	"bytes"
	"io"
	"runtime"
	"testing"
	"unsafe"
)

func TestZZIdleMemory(t *testing.T) {
	_, tls := transcript(t, "conversations.xml")
	const n = 2000
	readers := make([]*Reader, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range readers {
		r := NewReader(bytes.NewReader(tls), Limits{})
		for {
			if _, err := r.Header(); err != nil {
				t.Fatal(err)
			}
			var e *Element
			var err error
			for {
				if e, err = r.Next(); err != nil || restartAfterSASL(e) {
					break
				}
			}
			if err == io.EOF {
				break
			}
			r.Restart()
		}
		r.src = nil
		readers[i] = r
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("Reader struct %d bytes, attr %d, retained per idle reader %d bytes", unsafe.Sizeof(Reader{}), unsafe.Sizeof(attr{}), (after.HeapAlloc-before.HeapAlloc)/n)
	runtime.KeepAlive(readers)
}
