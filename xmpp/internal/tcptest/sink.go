package tcptest

import "sync/atomic"

// BenchStanza is the 218-byte chat message of the write-path benchmarks as delivered: from stamped in.
var BenchStanza = []byte("<message from='alice@example.net/desk' to='bob@example.net/phone' type='chat' id='ktx72v49' xml:lang='en'>" +
	"<body>Art thou not Romeo, and a Montague? Neither</body><origin-id xmlns='urn:xmpp:sid:0' id='ktx72v49'/></message>")

// Sink counts the stanza bytes that reached a benchmark's client and wakes the benchmark when what it expects
// arrived.
type Sink struct {
	got, want atomic.Int64
	done      chan struct{}
}

// NewSink returns an empty Sink.
func NewSink() *Sink { return &Sink{done: make(chan struct{}, 1)} }

// Add records n bytes that arrived.
func (s *Sink) Add(n int) {
	got := s.got.Add(int64(n))
	if want := s.want.Load(); got >= want && got-int64(n) < want {
		s.done <- struct{}{}
	}
}

// Expect adds n bytes to what must arrive.
func (s *Sink) Expect(n int) { s.want.Add(int64(n)) }

// Wait blocks until the expected bytes have arrived. It has no timeout of its own (a timer per wait would
// count in allocs/op): a writer that loses bytes hangs the benchmark until go test's -timeout.
func (s *Sink) Wait() { <-s.done }
