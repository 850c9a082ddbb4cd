package conformance

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

const streamHeader = `<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`

// rawTLS opens a connection, negotiates STARTTLS by hand and returns the TLS connection after the restart
// header, with the post-TLS features read.
func rawTLS(t *testing.T, srv *Server) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addrs["c2s"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := newTranscript(t, "raw", nc)
	c.Write([]byte(streamHeader))
	readUntil(t, c, "</stream:features>", 5*time.Second)
	c.Write([]byte(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`))
	readUntil(t, c, "<proceed", 5*time.Second)
	tc := tls.Client(nc, srv.TLSConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	tt := newTranscript(t, "raw-tls", tc)
	tt.Write([]byte(streamHeader))
	readUntil(t, tt, "</stream:features>", 5*time.Second)
	return tt
}

// loginRaw authenticates with PLAIN over TLS and binds, returning the connection ready for stanzas.
func loginRaw(t *testing.T, srv *Server, user, password string) net.Conn {
	t.Helper()
	c := rawTLS(t, srv)
	c.Write([]byte(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + plainB64(user, password) + `</auth>`))
	readUntil(t, c, "<success", 5*time.Second)
	c.Write([]byte(streamHeader))
	readUntil(t, c, "</stream:features>", 5*time.Second)
	c.Write([]byte(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`))
	readUntil(t, c, "</iq>", 5*time.Second)
	return c
}

func TestBadInputGetsStreamErrorsAndSparesOthers(t *testing.T) {
	srv := Start(t, "c2s:\n  max_stanza: 20000\n")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := Dial(t, srv, "bob", "bob-secret", "watch")
	bob.Send(`<presence/>`)

	cases := []struct {
		name, send, want string
	}{
		{"not well-formed", `<message to='bob@localhost'><body>x</bodyy></message>`, "<not-well-formed"},
		{"oversized stanza", `<message to='bob@localhost'><body>` + strings.Repeat("x", 30000) + `</body></message>`, "<policy-violation"},
		{"restricted xml comment", `<!-- hi --><message/>`, "<restricted-xml"},
		{"unknown top-level element", `<foo xmlns='urn:x'/>`, "<unsupported-stanza-type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := loginRaw(t, srv, "alice", "alice-secret")
			c.Write([]byte(tc.send))
			got := readUntil(t, c, "</stream:stream>", 5*time.Second)
			if !strings.Contains(got, tc.want) {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			// Every other session keeps working.
			a := Dial(t, srv, "alice", "alice-secret", "after-"+strings.ReplaceAll(tc.name, " ", "-"))
			a.Send(`<message to='` + bob.JID.String() + `' type='chat'><body>still here</body></message>`)
			bob.Expect(5*time.Second, "still here")
		})
	}
}

func TestStanzaBeforeAuthIsNotAuthorized(t *testing.T) {
	srv := Start(t, "")
	c := rawTLS(t, srv)
	c.Write([]byte(`<message to='bob@localhost'><body>sneaky</body></message>`))
	got := readUntil(t, c, "</stream:stream>", 5*time.Second)
	if !strings.Contains(got, "<not-authorized") {
		t.Fatalf("got %s", got)
	}
}

func TestWrongDomainIsHostUnknown(t *testing.T) {
	srv := Start(t, "")
	nc, err := net.Dial("tcp", srv.Addrs["c2s"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte(strings.Replace(streamHeader, "to='localhost'", "to='example.org'", 1)))
	if got := readUntil(t, nc, "</stream:stream>", 5*time.Second); !strings.Contains(got, "<host-unknown") {
		t.Fatalf("got %s", got)
	}
}

func TestIdleUnauthenticatedConnectionIsClosed(t *testing.T) {
	srv := Start(t, "c2s:\n  negotiation_timeout: 1s\n")
	nc, err := net.Dial("tcp", srv.Addrs["c2s"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte(streamHeader))
	got := readUntil(t, nc, "</stream:stream>", 5*time.Second)
	if !strings.Contains(got, "<connection-timeout") {
		t.Fatalf("got %s", got)
	}
}

func TestConnectionLimitPerIP(t *testing.T) {
	srv := Start(t, "c2s:\n  max_conns_per_ip: 2\n")
	var conns []net.Conn
	for i := 0; i < 2; i++ {
		nc, err := net.Dial("tcp", srv.Addrs["c2s"])
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		conns = append(conns, nc)
		nc.Write([]byte(streamHeader))
		readUntil(t, nc, "</stream:features>", 5*time.Second)
	}
	nc, err := net.Dial("tcp", srv.Addrs["c2s"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := readUntil(t, nc, "</stream:stream>", 5*time.Second); !strings.Contains(got, "<policy-violation") {
		t.Fatalf("third connection got %s", got)
	}
	// Closing one makes room again.
	conns[0].Close()
	time.Sleep(200 * time.Millisecond)
	nc2, err := net.Dial("tcp", srv.Addrs["c2s"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	nc2.Write([]byte(streamHeader))
	readUntil(t, nc2, "</stream:features>", 5*time.Second)
}
