package conformance

import (
	"bytes"
	"context"
	"encoding/xml"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// Client is a mellium client session with every received stanza collected as raw XML.
type Client struct {
	t   *testing.T
	S   *xmpp.Session
	JID jid.JID
	In  chan string
	tr  *transcript
}

// Dial logs user in over STARTTLS with the given SASL mechanisms (SCRAM-SHA-256 when none) and binds a resource.
func Dial(t *testing.T, srv *Server, user, password, resource string, mechs ...sasl.Mechanism) *Client {
	t.Helper()
	c, err := DialErr(t, srv, user, password, resource, mechs...)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// DialErr is Dial returning the login error instead of failing the test.
func DialErr(t *testing.T, srv *Server, user, password, resource string, mechs ...sasl.Mechanism) (*Client, error) {
	t.Helper()
	if len(mechs) == 0 {
		mechs = []sasl.Mechanism{sasl.ScramSha256}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := net.Dial("tcp", srv.Addrs["c2s"])
	if err != nil {
		return nil, err
	}
	origin := jid.MustParse(user + "@" + srv.Domain)
	if resource != "" {
		origin = jid.MustParse(user + "@" + srv.Domain + "/" + resource)
	}
	// The transcript records stanzas, not the wire: mellium wraps the connection in TLS itself.
	tr := newTranscript(t, user+"/"+resource, nil)
	s, err := xmpp.NewClientSession(ctx, origin, nc,
		xmpp.StartTLS(srv.TLSConfig()), xmpp.SASL("", password, mechs...), xmpp.BindResource())
	if err != nil {
		nc.Close()
		return nil, err
	}
	c := &Client{t: t, S: s, JID: s.LocalAddr(), In: make(chan string, 1024), tr: tr}
	go s.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		var buf bytes.Buffer
		enc := xml.NewEncoder(&buf)
		if _, err := xmlstream.Copy(enc, xmlstream.MultiReader(xmlstream.Token(*start), xmlstream.Inner(r), xmlstream.Token(start.End()))); err != nil {
			return err
		}
		enc.Flush()
		tr.record("S:", buf.Bytes())
		c.In <- buf.String()
		return nil
	}))
	t.Cleanup(func() { s.Close(); nc.Close() })
	return c, nil
}

// Send writes raw stanza XML.
func (c *Client) Send(raw string) {
	c.t.Helper()
	// No deadline context: mellium arms a goroutine per Send that, when the context ends, sets the write
	// deadline into the past; a context cancelled right after Send can then break the next Send (i/o timeout).
	ctx := context.Background()
	c.tr.record("C:", []byte(raw))
	if err := c.S.Send(ctx, xml.NewDecoder(strings.NewReader(raw))); err != nil {
		c.t.Fatalf("%s send: %v", c.JID, err)
	}
}

// Expect waits for a received stanza containing every one of the substrings, skipping others, and returns it.
func (c *Client) Expect(d time.Duration, subs ...string) string {
	c.t.Helper()
	timeout := time.After(d)
	var skipped []string
	for {
		select {
		case s := <-c.In:
			ok := true
			for _, sub := range subs {
				if !strings.Contains(s, sub) {
					ok = false
					break
				}
			}
			if ok {
				return s
			}
			skipped = append(skipped, s)
		case <-timeout:
			c.t.Fatalf("%s: no stanza with %q within %s; got instead:\n%s", c.JID, subs, d, strings.Join(skipped, "\n"))
			return ""
		}
	}
}

// ExpectNone fails if a stanza containing sub arrives within d.
func (c *Client) ExpectNone(d time.Duration, sub string) {
	c.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case s := <-c.In:
			if strings.Contains(s, sub) {
				c.t.Fatalf("%s: unexpected stanza %s", c.JID, s)
			}
		case <-timeout:
			return
		}
	}
}
