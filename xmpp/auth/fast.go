package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"parley.im/parley/storage"
)

// FAST (XEP-0484) token mechanisms (draft-schmaus-kitten-sasl-ht): HT-SHA-256 with no channel binding,
// tls-server-end-point or tls-exporter. HT-SHA-256-UNIQ (tls-unique) is not offered: Parley offers no tls-unique.
const (
	MechHTNone = "HT-SHA-256-NONE"
	MechHTEndp = "HT-SHA-256-ENDP"
	MechHTExpr = "HT-SHA-256-EXPR"
)

// DefaultTokenExpiry is how long a FAST token lives by default.
const DefaultTokenExpiry = 14 * 24 * time.Hour

// Tokens issues and checks FAST tokens, one per account and device (the XEP-0388 user-agent id).
//
// Tokens are never stored. A token is HMAC-SHA-256(key, account, device, mechanism, id), where key is a server
// secret kept outside the database (cmd/parley keeps it in data_dir) and id a random value that is stored,
// with the expiry and a fingerprint of the account's credentials, under the account's KV data. A dump of the
// database therefore holds no usable token. Changing the password changes the credentials' fingerprint and
// with it invalidates every token of the account (whichever way the password was changed: `parley user passwd`,
// XEP-0077); deleting the account deletes its KV data and so its tokens; Invalidate is the explicit logout.
//
// Rotation keeps the previous token valid next to the new one until the new one has been used once, so that a
// client that did not receive or store the new token is not locked out (XEP-0484 section 3.4).
type Tokens struct {
	kv     storage.KV
	key    []byte
	expiry time.Duration
	lookup Lookup
	domain string
	now    func() time.Time
}

// TokensConfig configures Tokens.
type TokensConfig struct {
	KV storage.KV // required: where token records live, owner = the account's bare JID
	// Key is the server secret tokens are derived from, at least 32 bytes. Required.
	Key []byte
	// Expiry is a token's lifetime. Default DefaultTokenExpiry (14 days).
	Expiry time.Duration
	// Lookup returns the account's credentials, whose fingerprint ties tokens to the current password. Required.
	Lookup Lookup
	// Domain is the server's domain: KV owners are localpart@Domain.
	Domain string
}

// NewTokens returns a token issuer.
func NewTokens(cfg TokensConfig) (*Tokens, error) {
	switch {
	case cfg.KV == nil || cfg.Lookup == nil:
		return nil, errors.New("auth: FAST tokens need a KV store and a credential lookup")
	case len(cfg.Key) < 32:
		return nil, fmt.Errorf("auth: FAST key has %d bytes, want at least 32", len(cfg.Key))
	case cfg.Expiry < 0:
		return nil, errors.New("auth: negative FAST token expiry")
	}
	t := &Tokens{kv: cfg.KV, key: append([]byte(nil), cfg.Key...), expiry: cfg.Expiry, lookup: cfg.Lookup, domain: cfg.Domain, now: time.Now}
	if t.expiry == 0 {
		t.expiry = DefaultTokenExpiry
	}
	return t, nil
}

// Mechanisms lists the HT mechanisms a connection with bindings cb can use, strongest first.
func (t *Tokens) Mechanisms(cb *ChannelBindings) []string {
	var m []string
	if cb != nil && len(cb.TLSExporter) > 0 {
		m = append(m, MechHTExpr)
	}
	if cb != nil && len(cb.TLSServerEndPoint) > 0 {
		m = append(m, MechHTEndp)
	}
	return append(m, MechHTNone)
}

// tokenRecord is what is stored per account and device.
type tokenRecord struct {
	Cur  *tokenEntry `json:"cur,omitempty"`
	Prev *tokenEntry `json:"prev,omitempty"`
}

type tokenEntry struct {
	ID     string `json:"id"`  // random, hex
	Mech   string `json:"m"`   // the mechanism the token is bound to
	Exp    int64  `json:"exp"` // unix seconds
	CredFP string `json:"cf"`  // fingerprint of the credentials when it was issued
}

func (t *Tokens) owner(user string) string {
	if t.domain == "" {
		return user
	}
	return user + "@" + t.domain
}

// recordKey is the KV key of a device's record: the device id is the client's, so it is hashed to a fixed,
// harmless key.
func recordKey(device string) string {
	h := sha256.Sum256([]byte(device))
	return "fast:" + hex.EncodeToString(h[:16])
}

func (t *Tokens) derive(user, device string, e *tokenEntry) []byte {
	m := hmac.New(sha256.New, t.key)
	for _, s := range []string{user, device, e.Mech, e.ID} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return []byte(base64.RawURLEncoding.EncodeToString(m.Sum(nil)))
}

// credFingerprint is a short digest of the account's stored keys: it changes with the password.
func (t *Tokens) credFingerprint(ctx context.Context, user string) (string, error) {
	creds, err := t.lookup(ctx, user)
	if err != nil {
		return "", err
	}
	if len(creds) == 0 {
		return "", storage.ErrNotFound
	}
	h := sha256.New()
	for _, c := range creds {
		h.Write([]byte(c.Mechanism))
		h.Write(c.StoredKey)
		h.Write(c.Salt)
	}
	return hex.EncodeToString(h.Sum(nil)[:12]), nil
}

func (t *Tokens) load(ctx context.Context, user, device string) (tokenRecord, error) {
	var r tokenRecord
	b, err := t.kv.Value(ctx, t.owner(user), recordKey(device))
	if errors.Is(err, storage.ErrNotFound) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return tokenRecord{}, nil // a damaged record is no token
	}
	return r, nil
}

func (t *Tokens) store(ctx context.Context, user, device string, r tokenRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return t.kv.PutValue(ctx, t.owner(user), recordKey(device), b)
}

// Issue makes a new token for user (normalized localpart) on device, bound to mech, and returns it with its
// expiry. The token it replaces stays valid until the new one is used.
func (t *Tokens) Issue(ctx context.Context, user, device, mech string) (string, time.Time, error) {
	if device == "" {
		return "", time.Time{}, errors.New("auth: FAST needs a user-agent id")
	}
	if !strings.HasPrefix(mech, "HT-SHA-256-") || (mech != MechHTNone && mech != MechHTEndp && mech != MechHTExpr) {
		return "", time.Time{}, fmt.Errorf("auth: no FAST mechanism %q", truncate(mech, 32))
	}
	fp, err := t.credFingerprint(ctx, user)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: FAST: %w", err)
	}
	r, err := t.load(ctx, user, device)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: FAST: %w", err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	exp := t.now().Add(t.expiry).Truncate(time.Second)
	e := &tokenEntry{ID: hex.EncodeToString(id), Mech: mech, Exp: exp.Unix(), CredFP: fp}
	if r.Cur != nil {
		r.Prev = r.Cur
	}
	r.Cur = e
	if err := t.store(ctx, user, device, r); err != nil {
		return "", time.Time{}, fmt.Errorf("auth: FAST: %w", err)
	}
	return string(t.derive(user, device, e)), exp, nil
}

// Invalidate removes the tokens of user's device (XEP-0484 <fast invalidate='true'/>, a logout).
func (t *Tokens) Invalidate(ctx context.Context, user, device string) error {
	return t.kv.DeleteValue(ctx, t.owner(user), recordKey(device))
}

// errToken is every failed token check: the client learns nothing about why.
func errToken(user string, why string) error {
	return credentialFailed(newError(CondNotAuthorized, user, errors.New("FAST: "+why)))
}

// Verify checks a HT-SHA-256-* initial response (authcid NUL HMAC(token, "Initiator" || cb-data)) for device
// with mechanism mech on a connection with bindings cb. It returns the normalized username and the
// additional data for <success/> (HMAC(token, "Responder" || cb-data)). A token older than the device's newest
// one is accepted until the newest has been used. Errors are *Error: not-authorized for every bad token,
// malformed-request for a message that is not HT.
func (t *Tokens) Verify(ctx context.Context, mech string, cb *ChannelBindings, device string, msg []byte) (user string, out []byte, err error) {
	var cbData []byte
	switch mech {
	case MechHTNone:
	case MechHTEndp:
		cbData = cb.TLSServerEndPointData()
	case MechHTExpr:
		cbData = cb.TLSExporterData()
	default:
		return "", nil, newError(CondInvalidMechanism, "", fmt.Errorf("unknown mechanism %q", truncate(mech, 32)))
	}
	if mech != MechHTNone && cbData == nil {
		return "", nil, newError(CondInvalidMechanism, "", fmt.Errorf("%s without that channel binding", mech))
	}
	i := strings.IndexByte(string(msg), 0)
	if i <= 0 || len(msg)-i-1 != sha256.Size || len(msg) > MaxMessageSize {
		return "", nil, newError(CondMalformedRequest, "", errors.New("FAST: want authcid NUL 32-byte HMAC"))
	}
	raw, mac := string(msg[:i]), msg[i+1:]
	if j := strings.IndexByte(raw, '@'); j > 0 {
		raw = raw[:j] // a bare JID as authcid: its localpart
	}
	user, err = normalizeUser(raw)
	if err != nil {
		return "", nil, errToken("", "bad username")
	}
	if device == "" {
		return "", nil, errToken(user, "no user-agent id")
	}
	r, err := t.load(ctx, user, device)
	if err != nil {
		return "", nil, newError(CondTemporaryAuthFailure, user, err)
	}
	fp, err := t.credFingerprint(ctx, user)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", nil, newError(CondTemporaryAuthFailure, user, err)
	}
	now := t.now().Unix()
	for _, which := range []string{"cur", "prev"} {
		e := r.Cur
		if which == "prev" {
			e = r.Prev
		}
		if e == nil || e.Mech != mech || e.Exp <= now || fp == "" || subtle.ConstantTimeCompare([]byte(e.CredFP), []byte(fp)) != 1 {
			continue
		}
		tok := t.derive(user, device, e)
		if subtle.ConstantTimeCompare(htMAC(tok, "Initiator", cbData), mac) != 1 {
			continue
		}
		if which == "cur" && r.Prev != nil {
			// The newest token is in use: the one it replaced is no longer needed.
			r.Prev = nil
			if err := t.store(ctx, user, device, r); err != nil {
				return "", nil, newError(CondTemporaryAuthFailure, user, err)
			}
		}
		return user, htMAC(tok, "Responder", cbData), nil
	}
	return "", nil, errToken(user, "no valid token for this device and mechanism")
}

// htMAC is HMAC-SHA-256(token, label || cb-data).
func htMAC(token []byte, label string, cb []byte) []byte {
	m := hmac.New(sha256.New, token)
	m.Write([]byte(label))
	m.Write(cb)
	return m.Sum(nil)
}
