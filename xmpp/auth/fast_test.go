package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"parley.im/parley/storage"
)

type mapKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (k *mapKV) Value(_ context.Context, owner, key string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[owner+"\x00"+key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return v, nil
}
func (k *mapKV) PutValue(_ context.Context, owner, key string, v []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[owner+"\x00"+key] = append([]byte(nil), v...)
	return nil
}
func (k *mapKV) DeleteValue(_ context.Context, owner, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, owner+"\x00"+key)
	return nil
}
func (k *mapKV) Keys(_ context.Context, owner, prefix string) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for key := range k.m {
		o, rest, _ := strings.Cut(key, "\x00")
		if o == owner && strings.HasPrefix(rest, prefix) {
			out = append(out, rest)
		}
	}
	return out, nil
}

// htClient computes a HT-SHA-256 initial response the way a client does (draft-schmaus-kitten-sasl-ht).
func htClient(user, token string, cb []byte) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("Initiator"))
	m.Write(cb)
	return append([]byte(user+"\x00"), m.Sum(nil)...)
}

func htResponder(token string, cb []byte) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("Responder"))
	m.Write(cb)
	return m.Sum(nil)
}

func newTestTokens(t *testing.T, users map[string][]storage.ScramCredential) (*Tokens, *mapKV) {
	t.Helper()
	kv := &mapKV{m: map[string][]byte{}}
	tk, err := NewTokens(TokensConfig{KV: kv, Key: bytes.Repeat([]byte{9}, 32), Lookup: mapLookup(users), Domain: "example.net"})
	if err != nil {
		t.Fatal(err)
	}
	return tk, kv
}

// FAST tokens: issued per account and device and bound to their mechanism, never stored (only an id), checked
// with and without channel binding, rotated with the previous token valid until the new one is used, expired
// after the expiry (14 days by default), invalidated by a logout and by a password change.
func TestFASTTokens(t *testing.T) {
	ctx := context.Background()
	users := maps.Clone(testUsers(t)) // shared by the other tests: this one changes it
	tk, kv := newTestTokens(t, users)
	cb := &ChannelBindings{TLSExporter: bytes.Repeat([]byte{1}, 32), TLSServerEndPoint: bytes.Repeat([]byte{2}, 32)}
	if got := tk.Mechanisms(cb); strings.Join(got, ",") != "HT-SHA-256-EXPR,HT-SHA-256-ENDP,HT-SHA-256-NONE" {
		t.Fatalf("mechanisms %v", got)
	}
	if got := tk.Mechanisms(nil); strings.Join(got, ",") != "HT-SHA-256-NONE" {
		t.Fatalf("mechanisms without TLS bindings %v", got)
	}

	tok, exp, err := tk.Issue(ctx, "user", "phone-1", MechHTNone)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < 14*24*time.Hour-time.Minute || d > 14*24*time.Hour+time.Minute {
		t.Fatalf("expiry in %v, want 14 days", d)
	}
	for k, v := range kv.m {
		if bytes.Contains(v, []byte(tok)) || strings.Contains(k, tok) {
			t.Fatalf("the token is stored: %s = %s", k, v)
		}
	}
	user, out, err := tk.Verify(ctx, MechHTNone, cb, "phone-1", htClient("user", tok, nil))
	if err != nil || user != "user" || !bytes.Equal(out, htResponder(tok, nil)) {
		t.Fatalf("verify: %q %x %v", user, out, err)
	}
	// A bare JID as authcid is its localpart.
	if _, _, err := tk.Verify(ctx, MechHTNone, cb, "phone-1", htClient("user@example.net", tok, nil)); err != nil {
		t.Fatalf("bare JID authcid: %v", err)
	}
	for name, tc := range map[string]struct {
		mech, device string
		msg          []byte
	}{
		"other device":    {MechHTNone, "phone-2", htClient("user", tok, nil)},
		"other mechanism": {MechHTExpr, "phone-1", htClient("user", tok, cb.TLSExporter)},
		"wrong token":     {MechHTNone, "phone-1", htClient("user", tok+"x", nil)},
		"other user":      {MechHTNone, "phone-1", htClient("other", tok, nil)},
		"no device":       {MechHTNone, "", htClient("user", tok, nil)},
	} {
		if _, _, err := tk.Verify(ctx, tc.mech, cb, tc.device, tc.msg); Condition(err) != CondNotAuthorized || !CredentialFailed(err) {
			t.Errorf("%s: %v, want a not-authorized credential failure", name, err)
		}
	}
	if _, _, err := tk.Verify(ctx, MechHTNone, cb, "phone-1", []byte("garbage")); Condition(err) != CondMalformedRequest {
		t.Errorf("garbage: %v", err)
	}

	// Channel-bound tokens need this connection's binding.
	etok, _, err := tk.Issue(ctx, "user", "laptop", MechHTExpr)
	if err != nil {
		t.Fatal(err)
	}
	if _, out, err := tk.Verify(ctx, MechHTExpr, cb, "laptop", htClient("user", etok, cb.TLSExporter)); err != nil || !bytes.Equal(out, htResponder(etok, cb.TLSExporter)) {
		t.Fatalf("EXPR: %v", err)
	}
	other := &ChannelBindings{TLSExporter: bytes.Repeat([]byte{3}, 32)}
	if _, _, err := tk.Verify(ctx, MechHTExpr, other, "laptop", htClient("user", etok, cb.TLSExporter)); Condition(err) != CondNotAuthorized {
		t.Errorf("EXPR on another connection: %v", err)
	}
	ptok, _, _ := tk.Issue(ctx, "user", "tablet", MechHTEndp)
	if _, _, err := tk.Verify(ctx, MechHTEndp, cb, "tablet", htClient("user", ptok, cb.TLSServerEndPoint)); err != nil {
		t.Fatalf("ENDP: %v", err)
	}

	// Rotation: the old token works until the new one has been used.
	tok2, _, err := tk.Issue(ctx, "user", "phone-1", MechHTNone)
	if err != nil || tok2 == tok {
		t.Fatalf("rotate: %q %v", tok2, err)
	}
	if _, _, err := tk.Verify(ctx, MechHTNone, cb, "phone-1", htClient("user", tok, nil)); err != nil {
		t.Fatalf("old token before the new one is used: %v", err)
	}
	if _, _, err := tk.Verify(ctx, MechHTNone, cb, "phone-1", htClient("user", tok2, nil)); err != nil {
		t.Fatalf("new token: %v", err)
	}
	if _, _, err := tk.Verify(ctx, MechHTNone, cb, "phone-1", htClient("user", tok, nil)); Condition(err) != CondNotAuthorized {
		t.Fatalf("old token after the new one was used: %v", err)
	}

	// Expiry.
	tk.now = func() time.Time { return time.Now().Add(14*24*time.Hour + time.Minute) }
	if _, _, err := tk.Verify(ctx, MechHTNone, cb, "phone-1", htClient("user", tok2, nil)); Condition(err) != CondNotAuthorized {
		t.Fatalf("expired token: %v", err)
	}
	tk.now = time.Now

	// Logout.
	if err := tk.Invalidate(ctx, "user", "tablet"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tk.Verify(ctx, MechHTEndp, cb, "tablet", htClient("user", ptok, cb.TLSServerEndPoint)); Condition(err) != CondNotAuthorized {
		t.Fatalf("after logout: %v", err)
	}

	// A password change invalidates every token of the account.
	creds, err := DeriveAll("new password", MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	users["user"] = creds
	if _, _, err := tk.Verify(ctx, MechHTNone, cb, "phone-1", htClient("user", tok2, nil)); Condition(err) != CondNotAuthorized {
		t.Fatalf("after a password change: %v", err)
	}
	if _, _, err := tk.Verify(ctx, MechHTExpr, cb, "laptop", htClient("user", etok, cb.TLSExporter)); Condition(err) != CondNotAuthorized {
		t.Fatalf("other device after a password change: %v", err)
	}
	// Account removal: the account's KV data goes with it (storage.Users.DeleteUser), and so the tokens; an
	// account that no longer exists has no credentials either.
	delete(users, "user")
	tok3, _, err := tk.Issue(ctx, "user", "phone-1", MechHTNone)
	if err == nil {
		t.Fatalf("issued %q for a removed account", tok3)
	}
}
