package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

// exchange runs c's SCRAM exchange with mech on stream st and returns the server's error (nil on success) and
// the server-first-message, if one was sent.
func (c *scramClient) exchange(t *testing.T, srv *Server, st *Stream, mech string, cb *ChannelBindings) ([]byte, error) {
	t.Helper()
	ctx := context.Background()
	first := c.first()
	ex, err := srv.StartStream(ctx, st, mech, cb, true, first)
	if err != nil {
		return nil, err
	}
	sf, _, err := ex.Step(ctx, first)
	if err != nil {
		return nil, err
	}
	cf, err := c.final(sf)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	out, done, err := ex.Step(ctx, cf)
	if err != nil {
		return sf, err
	}
	if !done || ex.Username() != "user" {
		t.Fatalf("done %v, user %q", done, ex.Username())
	}
	if err := c.verify(out); err != nil {
		t.Fatal(err)
	}
	return sf, nil
}

// Defect (issue 13): slixmpp 1.8.3 tries -PLUS with tls-unique, is refused for the binding type, and retries
// plain SCRAM with the gs2 flag "y"; that retry was refused as a downgrade although the stream had offered and
// the client had attempted -PLUS. It is accepted now on that stream, and still refused on a stream where -PLUS
// was never attempted, or was attempted and failed for another reason.
func TestDefectGS2FlagYAfterUnsupportedBindingType(t *testing.T) {
	srv := newTestServer(t, nil)
	cb := &ChannelBindings{TLSExporter: bytes.Repeat([]byte{1}, 32), TLSServerEndPoint: bytes.Repeat([]byte{2}, 32)}
	offered := func() *Stream {
		return &Stream{Mechanisms: srv.Mechanisms(cb, true), CBTypes: cb.Types()}
	}

	// slixmpp's sequence on one stream.
	st := offered()
	c := &scramClient{h: SHA256, user: "user", pass: testPassword, flag: "p=tls-unique", cbData: []byte("unique")}
	_, err := c.exchange(t, srv, st, "SCRAM-SHA-256-PLUS", cb)
	wantCond(t, err, CondNotAuthorized)
	if !st.PlusTypeRefused() {
		t.Fatal("the stream did not record the refused binding type")
	}
	for _, h := range []Hash{SHA1, SHA256, SHA512} {
		c := &scramClient{h: h, user: "user", pass: testPassword, flag: "y"}
		if _, err := c.exchange(t, srv, st, h.Mechanism(), cb); err != nil {
			t.Errorf("%s with y after a refused -PLUS type: %v", h.Mechanism(), err)
		}
	}

	// A crafted client: y without any -PLUS attempt.
	c = &scramClient{h: SHA256, user: "user", pass: testPassword, flag: "y"}
	_, err = c.exchange(t, srv, offered(), "SCRAM-SHA-256", cb)
	wantCond(t, err, CondNotAuthorized)
	// Start (no stream record) keeps the strict rule.
	c = &scramClient{h: SHA256, user: "user", pass: testPassword, flag: "y"}
	_, err = c.exchange(t, srv, nil, "SCRAM-SHA-256", cb)
	wantCond(t, err, CondNotAuthorized)

	// A -PLUS attempt that failed for another reason (wrong binding data, wrong password) does not open the door.
	st = offered()
	c = &scramClient{h: SHA256, user: "user", pass: testPassword, flag: "p=tls-exporter", cbData: []byte("not this connection's")}
	_, err = c.exchange(t, srv, st, "SCRAM-SHA-256-PLUS", cb)
	wantCond(t, err, CondNotAuthorized)
	c = &scramClient{h: SHA256, user: "user", pass: "wrong", flag: "p=tls-exporter", cbData: cb.TLSExporter}
	_, err = c.exchange(t, srv, st, "SCRAM-SHA-256-PLUS", cb)
	wantCond(t, err, CondNotAuthorized)
	c = &scramClient{h: SHA256, user: "user", pass: testPassword, flag: "y"}
	_, err = c.exchange(t, srv, st, "SCRAM-SHA-256", cb)
	wantCond(t, err, CondNotAuthorized)
}

// XEP-0474: the server-first-message carries h, the hash of the offered mechanisms (sorted, 0x1e between) and,
// when XEP-0440 types were offered, 0x1f and the sorted types; without a stream record there is no h.
func TestSSDPHashInServerFirst(t *testing.T) {
	srv := newTestServer(t, nil)
	cb := &ChannelBindings{TLSExporter: bytes.Repeat([]byte{1}, 32), TLSServerEndPoint: bytes.Repeat([]byte{2}, 32)}
	st := &Stream{Mechanisms: []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1", "SCRAM-SHA-256"}, CBTypes: []string{"tls-server-end-point", "tls-exporter"}}
	c := &scramClient{h: SHA256, user: "user", pass: testPassword, flag: "p=tls-exporter", cbData: cb.TLSExporter}
	sf, err := c.exchange(t, srv, st, "SCRAM-SHA-256-PLUS", cb)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("SCRAM-SHA-1\x1eSCRAM-SHA-256\x1eSCRAM-SHA-256-PLUS\x1ftls-exporter\x1etls-server-end-point"))
	if want := ",h=" + base64.StdEncoding.EncodeToString(sum[:]); !strings.HasSuffix(string(sf), want) {
		t.Fatalf("server-first %q does not end with %q", sf, want)
	}

	st = &Stream{Mechanisms: []string{"SCRAM-SHA-256", "PLAIN"}}
	c = &scramClient{h: SHA256, user: "user", pass: testPassword}
	sf, err = c.exchange(t, srv, st, "SCRAM-SHA-256", nil)
	if err != nil {
		t.Fatal(err)
	}
	sum = sha256.Sum256([]byte("PLAIN\x1eSCRAM-SHA-256"))
	if want := ",h=" + base64.StdEncoding.EncodeToString(sum[:]); !strings.HasSuffix(string(sf), want) {
		t.Fatalf("server-first %q does not end with %q", sf, want)
	}

	c = &scramClient{h: SHA256, user: "user", pass: testPassword}
	if sf, err = c.exchange(t, srv, nil, "SCRAM-SHA-256", nil); err != nil || strings.Contains(string(sf), ",h=") {
		t.Fatalf("without a stream: %q, %v", sf, err)
	}
}
