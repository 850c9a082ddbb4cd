package auth

import (
	"context"
	"strings"
	"testing"

	"mellium.im/sasl"

	"parley.im/parley/storage"
)

func TestPlain(t *testing.T) {
	srv := newTestServer(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name, msg, want, user string
	}{
		{"ok", "\x00user\x00pencil", "", "user"},
		{"ok normalized user", "\x00USER\x00pencil", "", "user"},
		{"ok authzid localpart", "user\x00user\x00pencil", "", "user"},
		{"ok authzid bare JID", "user@example.net\x00user\x00pencil", "", "user"},
		{"ok SHA-1 only account", "\x00sha1only\x00pencil", "", "sha1only"},
		{"ok escaped-looking name", "\x00a,b=c\x00pencil", "", "a,b=c"},
		{"wrong password", "\x00user\x00pencil2", CondNotAuthorized, ""},
		{"password case", "\x00user\x00PENCIL", CondNotAuthorized, ""},
		{"unknown user", "\x00nobody\x00pencil", CondNotAuthorized, ""},
		{"impossible user", "\x00us er\x00pencil", CondNotAuthorized, ""},
		{"password the profile rejects", "\x00user\x00pen\u0007cil", CondNotAuthorized, ""},
		{"other authzid", "admin@example.net\x00user\x00pencil", CondInvalidAuthzid, ""},
		{"authzid with resource", "user@example.net/r\x00user\x00pencil", CondInvalidAuthzid, ""},
		{"store down", "\x00broken\x00pencil", CondTemporaryAuthFailure, ""},
		{"no NUL", "userpencil", CondMalformedRequest, ""},
		{"one NUL", "user\x00pencil", CondMalformedRequest, ""},
		{"three NULs", "\x00user\x00pencil\x00", CondMalformedRequest, ""},
		{"empty authcid", "\x00\x00pencil", CondMalformedRequest, ""},
		{"empty password", "\x00user\x00", CondMalformedRequest, ""},
		{"empty", "", CondMalformedRequest, ""},
		{"not UTF-8", "\x00us\xffer\x00pencil", CondMalformedRequest, ""},
		{"too long", "\x00user\x00" + strings.Repeat("p", MaxMessageSize), CondMalformedRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex, err := srv.Start(ctx, "PLAIN", nil, true, nil)
			if err != nil {
				t.Fatal(err)
			}
			out, done, err := ex.Step(ctx, []byte(tc.msg))
			if Condition(err) != tc.want || done != (tc.want == "") || out != nil {
				t.Fatalf("%q, %v, %v; want %q", out, done, err, tc.want)
			}
			if ex.Username() != tc.user {
				t.Fatalf("Username() = %q, want %q", ex.Username(), tc.user)
			}
		})
	}
}

func TestPlainMellium(t *testing.T) {
	srv := newTestServer(t, nil)
	if got, _, err := runMellium(t, srv, sasl.Plain, nil, true, creds("user", testPassword, "")); err != nil || got != "user" {
		t.Fatalf("user %q, err %v", got, err)
	}
	_, _, err := runMellium(t, srv, sasl.Plain, nil, true, creds("user", "nope", ""))
	wantCond(t, err, CondNotAuthorized)
}

// TestPlainNoInitialResponse covers a client that sends <auth mechanism='PLAIN'/> without data.
func TestPlainNoInitialResponse(t *testing.T) {
	srv := newTestServer(t, nil)
	ctx := context.Background()
	ex, _ := srv.Start(ctx, "PLAIN", nil, true, nil)
	ch, done, err := ex.Step(ctx, nil)
	if err != nil || done || len(ch) != 0 {
		t.Fatal(ch, done, err)
	}
	if _, done, err := ex.Step(ctx, []byte("\x00user\x00pencil")); err != nil || !done {
		t.Fatal(done, err)
	}
}

// TestPlainNormalizesPassword checks that PLAIN and stored credentials agree on the OpaqueString profile:
// a password stored with a no-break space matches one typed with an ASCII space.
func TestPlainNormalizesPassword(t *testing.T) {
	cred, err := DeriveAll("correct\u00a0horse", 4096)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Config{Lookup: mapLookup(map[string][]storage.ScramCredential{"u": cred}), AllowPlain: true})
	ctx := context.Background()
	ex, _ := srv.Start(ctx, "PLAIN", nil, true, nil)
	if _, done, err := ex.Step(ctx, []byte("\x00u\x00correct horse")); err != nil || !done {
		t.Fatal(done, err)
	}
}
