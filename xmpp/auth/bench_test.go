package auth

import (
	"context"
	"testing"
)

// BenchmarkScramSHA256Login measures the server's whole share of one SCRAM-SHA-256 login with a credential
// of 4096 iterations: Start, client-first (lookup in memory, server-first) and client-final (proof check,
// server-final). The server runs no PBKDF2 for SCRAM, so the iteration count only costs the client (and
// DeriveCredential, which does the same work as the client).
func BenchmarkScramSHA256Login(b *testing.B) {
	srv := newTestServer(b, nil)
	srv.nonce = func() string { return "fixed-server-nonce-for-the-benchmark" }
	c := &scramClient{h: SHA256, user: "user", pass: testPassword}
	first := c.first()
	ctx := context.Background()
	ex, _ := srv.Start(ctx, "SCRAM-SHA-256", nil, false, first)
	sf, _, err := ex.Step(ctx, first)
	if err != nil {
		b.Fatal(err)
	}
	final, err := c.final(sf)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ex, err := srv.Start(ctx, "SCRAM-SHA-256", nil, false, first)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := ex.Step(ctx, first); err != nil {
			b.Fatal(err)
		}
		if _, done, err := ex.Step(ctx, final); err != nil || !done {
			b.Fatal(done, err)
		}
	}
}

// BenchmarkPlainLogin is one PLAIN login against a SCRAM-SHA-512 credential of 4096 iterations: the server
// re-derives the key, which is the client's cost of a SCRAM login.
func BenchmarkPlainLogin(b *testing.B) {
	srv := newTestServer(b, nil)
	ctx := context.Background()
	msg := []byte("\x00user\x00" + testPassword)
	b.ReportAllocs()
	for b.Loop() {
		ex, _ := srv.Start(ctx, MechPlain, nil, true, msg)
		if _, done, err := ex.Step(ctx, msg); err != nil || !done {
			b.Fatal(done, err)
		}
	}
}

// BenchmarkDeriveAll is what creating an account or changing a password costs at 4096 iterations.
func BenchmarkDeriveAll(b *testing.B) {
	for b.Loop() {
		if _, err := DeriveAll(testPassword, 4096); err != nil {
			b.Fatal(err)
		}
	}
}
