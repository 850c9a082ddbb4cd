package stream

import (
	"io"
	"strings"
	"testing"
)

// chatMessage is the 218-byte message the hot-path figures in ../shared/MELLIUM.md were measured with.
const chatMessage = "<message xmlns='jabber:client' to='juliet@capulet.lit/balcony' type='chat' id='ktx72v49' xml:lang='en'>" +
	"<body>Art thou not Romeo, and a Montague? Neither</body><origin-id xmlns='urn:xmpp:sid:0' id='ktx72v49'/></message>"

// loopReader sends head once and then el forever, in reads of up to 4 KiB as a busy socket does.
type loopReader struct {
	head []byte
	buf  []byte // many copies of el
	off  int
}

func newLoopReader(head, el string) *loopReader {
	return &loopReader{head: []byte(head), buf: []byte(strings.Repeat(el+"\n", max(1, 8192/(len(el)+1))))}
}

func (l *loopReader) Read(p []byte) (int, error) {
	if len(l.head) > 0 {
		n := copy(p, l.head)
		l.head = l.head[n:]
		return n, nil
	}
	if len(p) > 4096 {
		p = p[:4096]
	}
	n := copy(p, l.buf[l.off:])
	if l.off += n; l.off == len(l.buf) {
		l.off = 0
	}
	return n, nil
}

func benchNext(b *testing.B, el string) {
	r := NewReader(newLoopReader(hdr, el), Limits{})
	if _, err := r.Header(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(el)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNext frames the 218-byte chat message, envelope included.
func BenchmarkNext(b *testing.B) {
	if len(chatMessage) != 218 {
		b.Fatalf("message is %d bytes", len(chatMessage))
	}
	benchNext(b, chatMessage)
}

// BenchmarkNextLarge frames a 64 KiB message (a large OMEMO or XHTML payload): throughput of the content scanner.
func BenchmarkNextLarge(b *testing.B) {
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit &amp; sed do eiusmod. ", 840)
	benchNext(b, "<message xmlns='jabber:client' to='juliet@capulet.lit' type='chat' id='big1'><body>"+body+"</body></message>")
}

// BenchmarkNextSession frames the Conversations session after TLS, restarts included.
func BenchmarkNextSession(b *testing.B) {
	_, tls := transcript(b, "conversations.xml")
	b.SetBytes(int64(len(tls)))
	b.ReportAllocs()
	for b.Loop() {
		if res := readAllQuiet(NewReader(&chunkReader{data: tls, sizes: []int{1500}}, Limits{})); res != nil {
			b.Fatal(res)
		}
	}
}

// readAllQuiet reads a whole stream, restarting after SASL, and returns only the final error (nil at the close tag).
func readAllQuiet(r *Reader) error {
	for {
		if _, err := r.Header(); err != nil {
			return err
		}
		for {
			e, err := r.Next()
			if err != nil {
				if err == io.EOF {
					return nil
				}
				return err
			}
			if restartAfterSASL(e) {
				r.Restart()
				break
			}
		}
	}
}
