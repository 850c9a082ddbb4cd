package websocket

import (
	"strings"
	"testing"
)

// chatMessage is the 218-byte message of shared/MELLIUM.md, as the server sends it (no xmlns: the splitter
// adds xmlns='jabber:client').
const chatMessage = "<message from='juliet@example.com/balcony' to='romeo@example.net' type='chat' id='ktx72v49'>" +
	"<body>Art thou not Romeo, and a Montague?</body><origin-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4'/></message>"

// BenchmarkSplitter measures the outgoing framing of one stanza per write, as a drained queue of one.
func BenchmarkSplitter(b *testing.B) {
	s := newSplitter(maxOutgoing)
	emit := func([]byte) error { return nil }
	s.write([]byte(srvHeader), emit)
	msg := []byte(chatMessage)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.write(msg, emit); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSplitterCoalesced measures a 16 KiB write of back-to-back stanzas, as the c2s queue coalesces them.
func BenchmarkSplitterCoalesced(b *testing.B) {
	s := newSplitter(maxOutgoing)
	emit := func([]byte) error { return nil }
	s.write([]byte(srvHeader), emit)
	chunk := []byte(strings.Repeat(chatMessage, (16<<10)/len(chatMessage)))
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.write(chunk, emit); err != nil {
			b.Fatal(err)
		}
	}
}
