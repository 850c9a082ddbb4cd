package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"mellium.im/sasl"

	"parley.im/parley/storage"
)

// TestRFCVectors replays the SCRAM-SHA-1 example of RFC 5802 section 5 and the SCRAM-SHA-256 example of
// RFC 7677 section 3 through Step, with the server nonce fixed to the RFCs'.
func TestRFCVectors(t *testing.T) {
	for _, tc := range []struct {
		name, salt, snonce                          string
		h                                           Hash
		first, serverFirst, final, serverFinal, pwd string
	}{
		{
			name: "RFC 5802", h: SHA1, salt: "QSXCR+Q6sek8bf92", snonce: "3rfcNHYJY1ZVvWVs7j",
			first:       "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
			serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			final:       "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
		},
		{
			name: "RFC 7677", h: SHA256, salt: "W22ZaJ0SNY7soEsUEjb6gQ==", snonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
			first:       "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
			serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			final:       "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			salt, _ := base64.StdEncoding.DecodeString(tc.salt)
			cred, err := deriveWithSalt(tc.h, "pencil", salt, 4096)
			if err != nil {
				t.Fatal(err)
			}
			srv := NewServer(Config{Lookup: mapLookup(map[string][]storage.ScramCredential{"user": {cred}})})
			srv.nonce = func() string { return tc.snonce }
			ctx := context.Background()
			ex, err := srv.Start(ctx, tc.h.Mechanism(), nil, false, []byte(tc.first))
			if err != nil {
				t.Fatal(err)
			}
			out, done, err := ex.Step(ctx, []byte(tc.first))
			if err != nil || done || string(out) != tc.serverFirst {
				t.Fatalf("server-first = %q, %v, %v; want %q", out, done, err, tc.serverFirst)
			}
			out, done, err = ex.Step(ctx, []byte(tc.final))
			if err != nil || !done || string(out) != tc.serverFinal {
				t.Fatalf("server-final = %q, %v, %v; want %q", out, done, err, tc.serverFinal)
			}
			if ex.Username() != "user" {
				t.Errorf("Username() = %q", ex.Username())
			}
		})
	}
}

// runMellium drives an exchange between mellium.im/sasl's client and srv.
func runMellium(t *testing.T, srv *Server, mech sasl.Mechanism, cb *ChannelBindings, tlsActive bool, opts ...sasl.Option) (string, []byte, error) {
	t.Helper()
	ctx := context.Background()
	c := sasl.NewClient(mech, opts...)
	_, in, err := c.Step(nil)
	if err != nil {
		t.Fatalf("client start: %v", err)
	}
	first := in
	ex, err := srv.Start(ctx, mech.Name, cb, tlsActive, in)
	if err != nil {
		return "", first, err
	}
	for range 3 {
		out, done, err := ex.Step(ctx, in)
		if err != nil {
			return "", first, err
		}
		if done {
			if out == nil { // PLAIN: nothing for the client to check
				return ex.Username(), first, nil
			}
			if _, _, err := c.Step(out); err != nil {
				t.Fatalf("client rejects server-final %q: %v", out, err)
			}
			return ex.Username(), first, nil
		}
		if _, in, err = c.Step(out); err != nil {
			t.Fatalf("client step: %v", err)
		}
	}
	t.Fatal("exchange does not end")
	return "", nil, nil
}

func creds(user, pass, authz string) sasl.Option {
	return sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(pass), []byte(authz) })
}

func wantCond(t *testing.T, err error, cond string) {
	t.Helper()
	if got := Condition(err); got != cond {
		t.Fatalf("condition %q (%v), want %q", got, err, cond)
	}
}

func TestMelliumScram(t *testing.T) {
	srv := newTestServer(t, nil)
	for _, mech := range []sasl.Mechanism{sasl.ScramSha1, sasl.ScramSha256} {
		t.Run(mech.Name, func(t *testing.T) {
			for _, tc := range []struct{ user, authz, want string }{
				{"user", "", "user"},
				{"USER", "", "user"}, // the username is normalized like a localpart
				{"user", "user@example.net", "user"},
				{"user", "user", "user"},
				{"a,b=c", "", "a,b=c"}, // escaped as a=2Cb=3Dc on the wire
			} {
				got, _, err := runMellium(t, srv, mech, nil, false, creds(tc.user, testPassword, tc.authz))
				if err != nil || got != tc.want {
					t.Errorf("%q/%q: user %q, err %v; want %q", tc.user, tc.authz, got, err, tc.want)
				}
			}
			_, _, err := runMellium(t, srv, mech, nil, false, creds("user", "pencil2", ""))
			wantCond(t, err, CondNotAuthorized)
			var ae *Error
			if !errors.As(err, &ae) || ae.AttemptedUser() != "user" {
				t.Errorf("AttemptedUser missing: %#v", err)
			}
			_, _, err = runMellium(t, srv, mech, nil, false, creds("nobody", testPassword, ""))
			wantCond(t, err, CondNotAuthorized)
			_, _, err = runMellium(t, srv, mech, nil, false, creds("user", testPassword, "other@example.net"))
			wantCond(t, err, CondInvalidAuthzid)
		})
	}
}

func TestMelliumScramPlusTLS13(t *testing.T) {
	srv := newTestServer(t, nil)
	scs, ccs, leaf := tlsPair(t, tls.VersionTLS13)
	cb := NewChannelBindings(scs, leaf)
	for _, mech := range []sasl.Mechanism{sasl.ScramSha1Plus, sasl.ScramSha256Plus} {
		t.Run(mech.Name, func(t *testing.T) {
			got, first, err := runMellium(t, srv, mech, cb, true, creds("user", testPassword, ""),
				sasl.TLSState(ccs), sasl.RemoteMechanisms(srv.Mechanisms(cb, true)...))
			if err != nil || got != "user" {
				t.Fatalf("user %q, err %v", got, err)
			}
			if !bytes.HasPrefix(first, []byte("p=tls-exporter,")) {
				t.Errorf("client-first %q does not bind with tls-exporter", first)
			}
		})
	}
	t.Run("other connection", func(t *testing.T) {
		// Channel-binding data of another TLS connection, as a man in the middle relaying the exchange would
		// present: the proof is right, the binding is not.
		_, other, _ := tlsPair(t, tls.VersionTLS13)
		_, _, err := runMellium(t, srv, sasl.ScramSha256Plus, cb, true, creds("user", testPassword, ""),
			sasl.TLSState(other), sasl.RemoteMechanisms("SCRAM-SHA-256-PLUS"))
		wantCond(t, err, CondNotAuthorized)
	})
}

// TestMelliumScramPlusTLS12 documents that mellium.im/sasl binds TLS 1.2 connections with tls-unique, which
// Parley does not offer (it is unsafe without the extended master secret and undefined for TLS 1.3), so the
// exchange fails; TLS 1.2 clients must use tls-server-end-point (TestScramPlus).
func TestMelliumScramPlusTLS12(t *testing.T) {
	srv := newTestServer(t, nil)
	scs, ccs, leaf := tlsPair(t, tls.VersionTLS12)
	cb := NewChannelBindings(scs, leaf)
	if !slices.Equal(cb.Types(), []string{CBTLSServerEndPoint}) {
		t.Fatalf("TLS 1.2 types %v", cb.Types())
	}
	_, first, err := runMellium(t, srv, sasl.ScramSha256Plus, cb, true, creds("user", testPassword, ""),
		sasl.TLSState(ccs), sasl.RemoteMechanisms("SCRAM-SHA-256-PLUS"))
	if !bytes.HasPrefix(first, []byte("p=tls-unique,")) {
		t.Fatalf("mellium now sends %q: test tls-server-end-point through it", first)
	}
	wantCond(t, err, CondNotAuthorized)
}

// TestScramPlus runs every hash with every binding type over real TLS 1.2 and 1.3 connections with the
// RFC-written test client, which computes the binding data from the client's side of the connection.
func TestScramPlus(t *testing.T) {
	srv := newTestServer(t, nil)
	for _, v := range []struct {
		name    string
		version uint16
		types   []string
	}{
		{"TLS1.2", tls.VersionTLS12, []string{CBTLSServerEndPoint}},
		{"TLS1.3", tls.VersionTLS13, []string{CBTLSExporter, CBTLSServerEndPoint}},
	} {
		scs, ccs, leaf := tlsPair(t, v.version)
		cb := NewChannelBindings(scs, leaf)
		if !slices.Equal(cb.Types(), v.types) {
			t.Fatalf("%s: types %v, want %v", v.name, cb.Types(), v.types)
		}
		clientData := map[string][]byte{}
		if v.version == tls.VersionTLS13 {
			ekm, err := ccs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
			if err != nil {
				t.Fatal(err)
			}
			clientData[CBTLSExporter] = ekm
		}
		// The test certificate is signed with ECDSA-SHA256.
		sum := sha256.Sum256(ccs.PeerCertificates[0].Raw)
		clientData[CBTLSServerEndPoint] = sum[:]

		for _, typ := range v.types {
			for _, h := range hashes {
				t.Run(v.name+"/"+typ+"/"+h.Mechanism(), func(t *testing.T) {
					c := &scramClient{h: h, user: "user", pass: testPassword, flag: "p=" + typ, cbData: clientData[typ]}
					if got, err := c.run(t, srv, cb); err != nil || got != "user" {
						t.Fatalf("user %q, err %v", got, err)
					}
					c = &scramClient{h: h, user: "user", pass: testPassword, flag: "p=" + typ, cbData: []byte("not the binding")}
					_, err := c.run(t, srv, cb)
					wantCond(t, err, CondNotAuthorized)
				})
			}
		}
		if v.version == tls.VersionTLS12 {
			c := &scramClient{h: SHA256, user: "user", pass: testPassword, flag: "p=tls-exporter", cbData: []byte("x")}
			_, err := c.run(t, srv, cb)
			wantCond(t, err, CondNotAuthorized) // tls-exporter is not offered on TLS 1.2
		}
	}
}

func TestScramSHA512(t *testing.T) {
	srv := newTestServer(t, nil)
	c := &scramClient{h: SHA512, user: "user", pass: testPassword}
	if got, err := c.run(t, srv, nil); err != nil || got != "user" {
		t.Fatalf("user %q, err %v", got, err)
	}
	c = &scramClient{h: SHA512, user: "user", pass: "wrong"}
	_, err := c.run(t, srv, nil)
	wantCond(t, err, CondNotAuthorized)
}

func TestChannelBindingFlags(t *testing.T) {
	srv := newTestServer(t, nil)
	withCB := &ChannelBindings{TLSExporter: bytes.Repeat([]byte{1}, 32), TLSServerEndPoint: bytes.Repeat([]byte{2}, 32)}
	endPointOnly := &ChannelBindings{TLSServerEndPoint: bytes.Repeat([]byte{2}, 32)}
	for _, tc := range []struct {
		name string
		mech string
		flag string
		cb   *ChannelBindings
		want string // condition, "" for success
	}{
		{"n without TLS", "SCRAM-SHA-256", "n", nil, ""},
		{"n with bindings", "SCRAM-SHA-256", "n", withCB, ""},
		{"y without bindings", "SCRAM-SHA-256", "y", nil, ""},
		{"y with empty bindings", "SCRAM-SHA-256", "y", &ChannelBindings{}, ""},
		{"y downgrade", "SCRAM-SHA-256", "y", withCB, CondNotAuthorized},
		{"y downgrade end-point only", "SCRAM-SHA-1", "y", endPointOnly, CondNotAuthorized},
		{"PLUS with n", "SCRAM-SHA-256-PLUS", "n", withCB, CondMalformedRequest},
		{"PLUS with y", "SCRAM-SHA-256-PLUS", "y", withCB, CondMalformedRequest},
		{"p without PLUS", "SCRAM-SHA-256", "p=tls-exporter", withCB, CondMalformedRequest},
		{"p unknown type", "SCRAM-SHA-256-PLUS", "p=tls-unique", withCB, CondNotAuthorized},
		{"p type not on this connection", "SCRAM-SHA-256-PLUS", "p=tls-exporter", endPointOnly, CondNotAuthorized},
		{"p bad name", "SCRAM-SHA-256-PLUS", "p=tls_exporter", withCB, CondMalformedRequest},
		{"p empty name", "SCRAM-SHA-256-PLUS", "p=", withCB, CondMalformedRequest},
		{"p exporter", "SCRAM-SHA-256-PLUS", "p=tls-exporter", withCB, ""},
		{"p end-point", "SCRAM-SHA-256-PLUS", "p=tls-server-end-point", endPointOnly, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &scramClient{h: SHA256, user: "user", pass: testPassword, flag: tc.flag}
			if strings.HasPrefix(tc.mech, "SCRAM-SHA-1") {
				c.h = SHA1
			}
			if d, ok := tc.cb.data(strings.TrimPrefix(tc.flag, "p=")); ok {
				c.cbData = d
			}
			ctx := context.Background()
			first := c.first()
			ex, err := srv.Start(ctx, tc.mech, tc.cb, true, first)
			if err != nil {
				t.Fatal(err)
			}
			sf, _, err := ex.Step(ctx, first)
			if err == nil {
				var cf []byte
				if cf, err = c.final(sf); err != nil {
					t.Fatal(err)
				}
				_, _, err = ex.Step(ctx, cf)
			}
			wantCond(t, err, tc.want)
		})
	}
}

// TestUnknownUserIndistinguishable checks that an unknown user, and a known user without a credential for
// the requested hash, get a salt like a real one that stays the same across attempts and servers sharing
// FakeSaltKey, and fail at the proof with the condition of a wrong password.
func TestUnknownUserIndistinguishable(t *testing.T) {
	srv := newTestServer(t, nil)
	srv2 := newTestServer(t, nil)
	ctx := context.Background()
	serverFirst := func(s *Server, mech, user string) (salt, iter string) {
		t.Helper()
		first := []byte("n,,n=" + user + ",r=abcdef")
		ex, err := s.Start(ctx, mech, nil, false, first)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := ex.Step(ctx, first)
		if err != nil {
			t.Fatalf("%s %s: %v", mech, user, err)
		}
		for _, a := range strings.Split(string(out), ",") {
			switch {
			case strings.HasPrefix(a, "s="):
				salt = a[2:]
			case strings.HasPrefix(a, "i="):
				iter = a[2:]
			}
		}
		return salt, iter
	}
	realSalt, realIter := serverFirst(srv, "SCRAM-SHA-256", "user")
	for _, tc := range []struct{ mech, user string }{
		{"SCRAM-SHA-256", "nobody"},
		{"SCRAM-SHA-512", "nobody"},
		{"SCRAM-SHA-256", "sha1only"},
	} {
		s1, i1 := serverFirst(srv, tc.mech, tc.user)
		s2, i2 := serverFirst(srv, tc.mech, tc.user)
		s3, _ := serverFirst(srv2, tc.mech, tc.user)
		if s1 != s2 || s1 != s3 {
			t.Errorf("%s %s: salt changes: %s %s %s", tc.mech, tc.user, s1, s2, s3)
		}
		if len(s1) != len(realSalt) || i1 != realIter || i2 != realIter {
			t.Errorf("%s %s: salt %q i=%s does not look like %q i=%s", tc.mech, tc.user, s1, i1, realSalt, realIter)
		}
		if s1 == realSalt {
			t.Errorf("fake salt equals a real one")
		}
	}
	a, _ := serverFirst(srv, "SCRAM-SHA-256", "nobody")
	b, _ := serverFirst(srv, "SCRAM-SHA-256", "nobody2")
	if a == b {
		t.Error("two unknown users share a salt")
	}
	// The right password still fails when the account lacks that hash, and works with the one it has.
	c := &scramClient{h: SHA256, user: "sha1only", pass: testPassword}
	_, err := c.run(t, srv, nil)
	wantCond(t, err, CondNotAuthorized)
	c = &scramClient{h: SHA1, user: "sha1only", pass: testPassword}
	if _, err := c.run(t, srv, nil); err != nil {
		t.Fatal(err)
	}
	// An unknown user fails exactly like a wrong password: same condition, at the same step.
	c = &scramClient{h: SHA256, user: "nobody", pass: testPassword}
	_, err = c.run(t, srv, nil)
	wantCond(t, err, CondNotAuthorized)
}

func TestAuthzid(t *testing.T) {
	srv := newTestServer(t, nil)
	anyDomain := newTestServer(t, func(c *Config) { c.Domain = "" })
	for _, tc := range []struct {
		authz string
		srv   *Server
		want  string
	}{
		{"user", srv, ""},
		{"User", srv, ""},
		{"user@example.net", srv, ""},
		{"USER@EXAMPLE.NET", srv, ""},
		{"user@example.net/res", srv, CondInvalidAuthzid},
		{"user@other.example", srv, CondInvalidAuthzid},
		{"user@other.example", anyDomain, ""},
		{"admin@example.net", srv, CondInvalidAuthzid},
		{"admin", srv, CondInvalidAuthzid},
		{"@example.net", srv, CondInvalidAuthzid},
		{"a,b=c", srv, CondInvalidAuthzid},
	} {
		c := &scramClient{h: SHA256, user: "user", pass: testPassword, authzid: tc.authz}
		_, err := c.run(t, tc.srv, nil)
		if Condition(err) != tc.want {
			t.Errorf("authzid %q: %v, want %q", tc.authz, err, tc.want)
		}
	}
}

// TestNonceMismatch checks that a client-final echoing another nonce fails even though its proof covers
// what it sent: only the nonce check stands between a replayed client-final and success.
func TestNonceMismatch(t *testing.T) {
	srv := newTestServer(t, nil)
	for _, n := range []string{"abcOTHER", "abc", "abcSERVERX"} {
		srv.nonce = func() string { return "SERVER" }
		c := &scramClient{h: SHA256, user: "user", pass: testPassword, cnonce: "abc", finalNonce: n}
		_, err := c.run(t, srv, nil)
		wantCond(t, err, CondNotAuthorized)
	}
}

func TestExtensions(t *testing.T) {
	srv := newTestServer(t, nil)
	for _, tc := range []struct {
		first, final string
		want         string
	}{
		{",x=ignored", "", ""},
		{"", ",y=ignored,z=also", ""},
		{",m=reserved", "", CondMalformedRequest},
		{"", ",m=reserved", CondMalformedRequest},
		{",x=", "", CondMalformedRequest},
		{"", ",xy=1", CondMalformedRequest},
		{"", ",=1", CondMalformedRequest},
	} {
		c := &scramClient{h: SHA256, user: "user", pass: testPassword, firstExt: tc.first, finalExt: tc.final}
		_, err := c.run(t, srv, nil)
		if Condition(err) != tc.want {
			t.Errorf("%q %q: %v, want %q", tc.first, tc.final, err, tc.want)
		}
	}
}

func TestMalformedClientFirst(t *testing.T) {
	srv := newTestServer(t, nil)
	long := "n,,n=user,r=" + strings.Repeat("a", MaxMessageSize)
	for _, tc := range []struct{ msg, want string }{
		{"", CondMalformedRequest},
		{"n", CondMalformedRequest},
		{"n,", CondMalformedRequest},
		{"n,,", CondMalformedRequest},
		{"x,,n=user,r=abc", CondMalformedRequest},
		{"n,x,n=user,r=abc", CondMalformedRequest},
		{"n,a=user", CondMalformedRequest},
		{"n,a=,n=user,r=abc", CondMalformedRequest},
		{"n,a=us=2Dr,n=user,r=abc", CondMalformedRequest},
		{"n,,r=abc,n=user", CondMalformedRequest},
		{"n,,n=user", CondMalformedRequest},
		{"n,,n=,r=abc", CondMalformedRequest},
		{"n,,n=user,r=", CondMalformedRequest},
		{"n,,n=us=2Cer=3D,r=abc", ""}, // a valid escape; unknown user, so it fails later
		{"n,,n=us=2cer,r=abc", CondMalformedRequest},
		{"n,,n=us=er,r=abc", CondMalformedRequest},
		{"n,,n=user=,r=abc", CondMalformedRequest},
		{"n,,n=user=2,r=abc", CondMalformedRequest},
		{"n,,n=user,r=ab c", CondMalformedRequest},
		{"n,,n=user,r=ab\x7f", CondMalformedRequest},
		{"n,,n=user,r=abé", CondMalformedRequest},
		{"n,,n=user,r=abc,", CondMalformedRequest},
		{"n,,m=x,n=user,r=abc", CondMalformedRequest},
		{"n,,n=us\x00er,r=abc", CondMalformedRequest},
		{"n,,n=us\xffer,r=abc", CondMalformedRequest},
		{"n,,n=user,r=abc", ""},
		{"n,,n=user,r=abc,x=1", ""},
		{"n,a=user,n=user,r=abc", ""},
		{"n,,n=broken,r=abc", CondTemporaryAuthFailure},
		{"n,,n=user name,r=abc", ""}, // not a possible localpart: treated as unknown
		{long, CondMalformedRequest},
	} {
		ctx := context.Background()
		ex, err := srv.Start(ctx, "SCRAM-SHA-256", nil, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := ex.Step(ctx, nil); err != nil { // no initial response: empty challenge first
			t.Fatal(err)
		}
		out, done, err := ex.Step(ctx, []byte(tc.msg))
		if Condition(err) != tc.want || done {
			t.Errorf("%q: %q, %v, %v; want %q", tc.msg, out, done, err, tc.want)
		}
	}
}

func TestMalformedClientFinal(t *testing.T) {
	srv := newTestServer(t, nil)
	srv.nonce = func() string { return "SERVER" }
	ctx := context.Background()
	const nonce = "abcSERVER"
	cbws := "c=biws,r=" + nonce
	for _, tc := range []struct{ msg, want string }{
		{"", CondMalformedRequest},
		{cbws, CondMalformedRequest},
		{cbws + ",p=", CondNotAuthorized},
		{cbws + ",p=!!!!", CondMalformedRequest},
		{cbws + ",p=AAAA\nAAAA", CondMalformedRequest},
		{cbws + ",p=AAB=", CondMalformedRequest}, // stray bits
		{cbws + ",p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)), CondNotAuthorized},
		{cbws + ",p=" + base64.StdEncoding.EncodeToString(make([]byte, 20)), CondNotAuthorized},
		{"r=" + nonce + ",c=biws,p=AAAA", CondMalformedRequest},
		{"c=biws,p=AAAA", CondMalformedRequest},
		{"c=biws,r=abcOTHER,p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)), CondNotAuthorized},
		{"c=biws,r=abc,p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)), CondNotAuthorized},
		{"c=eSws,r=" + nonce + ",p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)), CondNotAuthorized}, // "y,,"
		{"c=b!ws,r=" + nonce + ",p=AAAA", CondMalformedRequest},
		{cbws + ",p=AAAA,x=1", CondMalformedRequest},
		{cbws + ",m=1,p=AAAA", CondMalformedRequest},
		{cbws + ",p=AA\x00A", CondMalformedRequest},
		{cbws + ",x=\xff,p=AAAA", CondMalformedRequest},
		{cbws + strings.Repeat(",x=1", MaxMessageSize/4) + ",p=AAAA", CondMalformedRequest},
	} {
		first := []byte("n,,n=user,r=abc")
		ex, err := srv.Start(ctx, "SCRAM-SHA-256", nil, false, first)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := ex.Step(ctx, first); err != nil {
			t.Fatal(err)
		}
		out, done, err := ex.Step(ctx, []byte(tc.msg))
		if Condition(err) != tc.want || done {
			t.Errorf("%q: %q, %v, %v; want %q", tc.msg, out, done, err, tc.want)
		}
	}
}

func TestExchangeLifecycle(t *testing.T) {
	srv := newTestServer(t, nil)
	ctx := context.Background()
	c := &scramClient{h: SHA256, user: "user", pass: testPassword}
	ex, err := srv.Start(ctx, "SCRAM-SHA-256", nil, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, done, err := ex.Step(ctx, nil)
	if err != nil || done || ch == nil || len(ch) != 0 {
		t.Fatalf("no initial response: %q %v %v, want an empty challenge", ch, done, err)
	}
	if ex.Username() != "" {
		t.Fatal("Username before done")
	}
	sf, _, err := ex.Step(ctx, c.first())
	if err != nil {
		t.Fatal(err)
	}
	if ex.Username() != "" {
		t.Fatal("Username before done")
	}
	cf, _ := c.final(sf)
	if _, done, err := ex.Step(ctx, cf); err != nil || !done {
		t.Fatal(done, err)
	}
	if ex.Username() != "user" || ex.Mechanism() != "SCRAM-SHA-256" {
		t.Fatal(ex.Username(), ex.Mechanism())
	}
	_, _, err = ex.Step(ctx, cf)
	wantCond(t, err, CondMalformedRequest)
	if ex.Username() != "user" {
		t.Fatal("a step after success changed the user")
	}

	// A failed exchange stays failed, even if the client then sends something valid.
	ex, _ = srv.Start(ctx, "SCRAM-SHA-256", nil, false, nil)
	ex.Step(ctx, nil)
	_, _, err = ex.Step(ctx, nil) // nil again: an empty response
	wantCond(t, err, CondMalformedRequest)
	c = &scramClient{h: SHA256, user: "user", pass: testPassword}
	_, _, err = ex.Step(ctx, c.first())
	wantCond(t, err, CondMalformedRequest)
	if ex.Username() != "" {
		t.Fatal("failed exchange has a user")
	}
}

func TestStart(t *testing.T) {
	srv := newTestServer(t, nil)
	noPlain := newTestServer(t, func(c *Config) { c.AllowPlain = false })
	ctx := context.Background()
	cb := &ChannelBindings{TLSExporter: make([]byte, 32)}
	for _, tc := range []struct {
		srv  *Server
		mech string
		cb   *ChannelBindings
		tls  bool
		want string
	}{
		{srv, "SCRAM-SHA-1", nil, false, ""},
		{srv, "SCRAM-SHA-512", nil, false, ""},
		{srv, "SCRAM-SHA-512-PLUS", cb, true, ""},
		{srv, "SCRAM-SHA-512-PLUS", nil, true, CondInvalidMechanism},
		{srv, "SCRAM-SHA-512-PLUS", &ChannelBindings{}, true, CondInvalidMechanism},
		{srv, "scram-sha-1", nil, false, CondInvalidMechanism},
		{srv, "SCRAM-SHA-384", nil, false, CondInvalidMechanism},
		{srv, "DIGEST-MD5", nil, false, CondInvalidMechanism},
		{srv, "", nil, false, CondInvalidMechanism},
		{srv, "-PLUS", cb, true, CondInvalidMechanism},
		{srv, "PLAIN", nil, true, ""},
		{srv, "PLAIN", nil, false, CondEncryptionRequired},
		{srv, "PLAIN-PLUS", cb, true, CondInvalidMechanism},
		{noPlain, "PLAIN", nil, true, CondInvalidMechanism},
	} {
		ex, err := tc.srv.Start(ctx, tc.mech, tc.cb, tc.tls, nil)
		if Condition(err) != tc.want || (err == nil) != (ex != nil) {
			t.Errorf("Start(%q): %v, want %q", tc.mech, err, tc.want)
		}
	}
	_, err := srv.Start(ctx, "SCRAM-SHA-1", nil, false, make([]byte, MaxMessageSize+1))
	wantCond(t, err, CondMalformedRequest)
}

func TestMechanisms(t *testing.T) {
	srv := newTestServer(t, nil)
	noPlain := newTestServer(t, func(c *Config) { c.AllowPlain = false })
	plus := []string{"SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"}
	scram := []string{"SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1"}
	cb := &ChannelBindings{TLSServerEndPoint: make([]byte, 32)}
	for _, tc := range []struct {
		srv  *Server
		cb   *ChannelBindings
		tls  bool
		want []string
	}{
		{srv, nil, false, scram},
		{srv, nil, true, append(slices.Clone(scram), "PLAIN")},
		{srv, &ChannelBindings{}, true, append(slices.Clone(scram), "PLAIN")},
		{srv, cb, true, append(append(slices.Clone(plus), scram...), "PLAIN")},
		{noPlain, cb, true, append(slices.Clone(plus), scram...)},
		{noPlain, nil, false, scram},
	} {
		if got := tc.srv.Mechanisms(tc.cb, tc.tls); !slices.Equal(got, tc.want) {
			t.Errorf("Mechanisms(%v, %v) = %v, want %v", tc.cb.Types(), tc.tls, got, tc.want)
		}
	}
}

func TestLookupContextAndErrors(t *testing.T) {
	type key struct{}
	var seen context.Context
	srv := NewServer(Config{Lookup: func(ctx context.Context, user string) ([]storage.ScramCredential, error) {
		seen = ctx
		return nil, storage.ErrNotFound
	}})
	ctx := context.WithValue(context.Background(), key{}, "conn")
	first := []byte("n,,n=user,r=abc")
	ex, _ := srv.Start(ctx, "SCRAM-SHA-1", nil, false, first)
	if _, _, err := ex.Step(ctx, first); err != nil {
		t.Fatal(err)
	}
	if seen == nil || seen.Value(key{}) != "conn" {
		t.Fatal("Lookup did not get the Step context")
	}

	tsrv := newTestServer(t, nil)
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	ex, _ = tsrv.Start(cctx, "SCRAM-SHA-1", nil, false, first)
	_, _, err := ex.Step(cctx, first)
	wantCond(t, err, CondAborted)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%v does not wrap context.Canceled", err)
	}

	ex, _ = tsrv.Start(ctx, "SCRAM-SHA-1", nil, false, nil)
	_, _, err = ex.Step(ctx, []byte("n,,n=broken,r=abc"))
	wantCond(t, err, CondTemporaryAuthFailure)

	// No Lookup at all: nobody exists.
	ex, _ = NewServer(Config{}).Start(ctx, "SCRAM-SHA-1", nil, false, nil)
	if _, _, err := ex.Step(ctx, first); err != nil {
		t.Fatal(err)
	}
}

func TestCondition(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{newError(CondInvalidAuthzid, "", nil), CondInvalidAuthzid},
		{errors.Join(errors.New("x"), newError(CondNotAuthorized, "u", errors.New("y"))), CondNotAuthorized},
		{context.Canceled, CondAborted},
		{errors.New("other"), CondTemporaryAuthFailure},
	} {
		if got := Condition(tc.err); got != tc.want {
			t.Errorf("Condition(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if s := newError(CondNotAuthorized, "", nil).Error(); s != "auth: not-authorized" {
		t.Error(s)
	}
}
