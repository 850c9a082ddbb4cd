package auth

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"unicode/utf8"

	"parley.im/parley/storage"
)

// stepPlain handles the single PLAIN message (RFC 4616 section 2):
//
//	message = [authzid] UTF8NUL authcid UTF8NUL passwd
//
// The password is checked by re-deriving the StoredKey of the strongest stored SCRAM credential with its
// salt and iteration count, so PLAIN costs the server one client-side SCRAM computation.
func (e *Exchange) stepPlain(ctx context.Context, msg []byte) ([]byte, bool, error) {
	malformed := func(why string) error {
		return newError(CondMalformedRequest, "", errors.New("plain: "+why))
	}
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return nil, false, malformed("want authzid NUL authcid NUL password")
	}
	authzid, authcid, passwd := parts[0], parts[1], parts[2]
	if len(authcid) == 0 || len(passwd) == 0 {
		return nil, false, malformed("empty authcid or password")
	}
	if !utf8.Valid(msg) {
		return nil, false, malformed("not UTF-8")
	}
	raw := string(authcid)
	user, userErr := normalizeUser(raw)
	if userErr != nil {
		user = ""
	}
	e.user = user
	if err := e.srv.checkAuthzid(string(authzid), raw, user); err != nil {
		return nil, false, err
	}
	password, pwErr := normalizePassword(string(passwd))
	if pwErr != nil {
		// No stored credential was derived from a password the profile rejects; derive anyway, so the answer
		// takes as long as for any other wrong password.
		password = string(passwd)
	}

	var creds []storage.ScramCredential
	if userErr == nil {
		c, err := e.srv.credentials(ctx, user)
		if err != nil {
			return nil, false, newError(CondTemporaryAuthFailure, user, fmt.Errorf("plain: lookup: %w", err))
		}
		creds = c
	}
	// The strongest hash the account has; a fake SHA-512 credential (what DeriveAll stores first) for an
	// unknown user, so its failure costs what a real one does.
	h, found := SHA512, false
	var cred storage.ScramCredential
	for _, hh := range hashes {
		if c, ok := pick(creds, hh); ok {
			h, cred, found = hh, c, true
			break
		}
	}
	if !found {
		name := user
		if userErr != nil {
			name = raw
		}
		cred = e.srv.fakeCredential(h, name)
	}
	got, err := deriveWithSalt(h, password, cred.Salt, cred.Iterations)
	if err != nil {
		return nil, false, newError(CondTemporaryAuthFailure, user, fmt.Errorf("plain: %w", err))
	}
	match := subtle.ConstantTimeCompare(got.StoredKey, cred.StoredKey) == 1
	switch {
	case !found || userErr != nil:
		return nil, false, credentialFailed(newError(CondNotAuthorized, user, errors.New("plain: unknown user or no credential")))
	case !match || pwErr != nil:
		return nil, false, credentialFailed(newError(CondNotAuthorized, user, errors.New("plain: wrong password")))
	}
	return nil, true, nil
}
