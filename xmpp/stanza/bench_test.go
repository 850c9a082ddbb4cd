package stanza

import (
	"testing"

	"mellium.im/xmpp/jid"
)

// Benchmarks of what the server does to stanzas it forwards or writes itself. Baselines:
// docs/bench/baseline/stanza.txt.

// benchMessage is the 218-byte chat message of the stream benchmarks, with from stamped in as c2s does.
const benchMessage = "<message from='romeo@montague.lit/orchard' to='juliet@capulet.lit/balcony' type='chat' id='ktx72v49' xml:lang='en'>" +
	"<body>Art thou not Romeo, and a Montague? Neither</body><origin-id xmlns='urn:xmpp:sid:0' id='ktx72v49'/></message>"

func benchStanza(b *testing.B) *Stanza {
	s, err := Parse([]byte(benchMessage))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkParse reads the envelope of a stored stanza (offline delivery, archive query results): a new scanner,
// the header, one element and two JIDs parsed with PRECIS per call.
func BenchmarkParse(b *testing.B) {
	for _, c := range []struct{ name, raw string }{
		{"message", benchMessage},
		{"presence", "<presence from='juliet@capulet.lit/balcony' to='romeo@montague.lit'><show>away</show></presence>"},
		{"iq", "<iq from='juliet@capulet.lit/balcony' type='get' id='r1'><query xmlns='jabber:iq:roster' ver='ver7'/></iq>"},
	} {
		b.Run(c.name, func(b *testing.B) {
			raw := []byte(c.raw)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNew builds a stanza the server sends itself (a message with a body, addresses escaped).
func BenchmarkNew(b *testing.B) {
	from, to := jid.MustParse("capulet.lit"), jid.MustParse("juliet@capulet.lit/balcony")
	body := []byte("<body>Welcome to the server.</body>")
	b.ReportAllocs()
	for b.Loop() {
		New(Message, "headline", "w1", from, to, body)
	}
}

// BenchmarkErrorReply answers a message with service-unavailable: the router's bounce.
func BenchmarkErrorReply(b *testing.B) {
	s := benchStanza(b)
	b.ReportAllocs()
	for b.Loop() {
		ErrorReply(s, jid.JID{}, ErrServiceUnavailable)
	}
}

// BenchmarkResult answers an iq with an empty result: every ping.
func BenchmarkResult(b *testing.B) {
	req := New(IQ, "get", "p1", jid.MustParse("juliet@capulet.lit/balcony"), jid.MustParse("capulet.lit"),
		[]byte("<ping xmlns='urn:xmpp:ping'/>"))
	b.ReportAllocs()
	for b.Loop() {
		Result(req, nil)
	}
}

// BenchmarkNewID makes a stanza-id / archive id: one per archived message.
func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		NewID()
	}
}

// BenchmarkAppendWithNS adds xmlns='jabber:client' to a message nested in a forward (carbons, MAM results),
// into a reused buffer; Embed is the allocating form.
func BenchmarkAppendWithNS(b *testing.B) {
	s := benchStanza(b)
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, 512)
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendWithNS(buf[:0], s.Raw, "jabber:client")
		}
	})
	b.Run("embed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Embed()
		}
	})
}

// BenchmarkAppendChild stamps a XEP-0359 stanza-id into a message: once per archived message.
func BenchmarkAppendChild(b *testing.B) {
	s := benchStanza(b)
	child := []byte("<stanza-id xmlns='urn:xmpp:sid:0' by='juliet@capulet.lit' id='1732355040000a1B2C3D4E5F6G7H'/>")
	b.ReportAllocs()
	for b.Loop() {
		s.AppendChild(child)
	}
}

// BenchmarkWithTo readdresses a stanza (directed presence on logout, carbons).
func BenchmarkWithTo(b *testing.B) {
	s := benchStanza(b)
	to := jid.MustParse("juliet@capulet.lit/phone")
	b.ReportAllocs()
	for b.Loop() {
		s.WithTo(to)
	}
}

// BenchmarkFirstChild finds the payload element of an iq: the router's IQ dispatch.
func BenchmarkFirstChild(b *testing.B) {
	inner := []byte("<query xmlns='jabber:iq:roster' ver='ver7'/>")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, ok := FirstChild(inner); !ok {
			b.Fatal("no child")
		}
	}
}

// BenchmarkOriginID finds the sender's origin-id: the archive's and offline store's de-duplication key.
func BenchmarkOriginID(b *testing.B) {
	s := benchStanza(b)
	b.ReportAllocs()
	for b.Loop() {
		if OriginID(s) != "ktx72v49" {
			b.Fatal("origin-id not found")
		}
	}
}

// BenchmarkAppendEscape escapes a full JID and a text with markup into a reused buffer: every attribute the
// server writes (MUC fan-out addresses each copy), and error texts.
func BenchmarkAppendEscape(b *testing.B) {
	for _, c := range []struct{ name, s string }{
		{"jid", "juliet@capulet.lit/balcony-7f3a9c"},
		{"text", "Art thou not Romeo, & a <Montague>? 'Neither', fair maid"},
	} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendEscape(buf[:0], c.s)
			}
		})
	}
}
