package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"

	"parley.im/parley/storage"
)

// Hash is the hash function of a SCRAM mechanism.
type Hash int

// The SCRAM hashes Parley supports.
const (
	SHA1   Hash = iota + 1 // SCRAM-SHA-1 (RFC 5802)
	SHA256                 // SCRAM-SHA-256 (RFC 7677)
	SHA512                 // SCRAM-SHA-512 (draft-melnikov-scram-sha-512)
)

// hashes lists the supported hashes, strongest first: the order of Mechanisms and of DeriveAll.
var hashes = []Hash{SHA512, SHA256, SHA1}

// Mechanism returns the SASL mechanism name without channel binding, "SCRAM-SHA-1" and so on; "" for an
// unknown Hash.
func (h Hash) Mechanism() string {
	switch h {
	case SHA1:
		return "SCRAM-SHA-1"
	case SHA256:
		return "SCRAM-SHA-256"
	case SHA512:
		return "SCRAM-SHA-512"
	}
	return ""
}

// String returns the mechanism name.
func (h Hash) String() string {
	if m := h.Mechanism(); m != "" {
		return m
	}
	return fmt.Sprintf("Hash(%d)", int(h))
}

func (h Hash) valid() bool { return h.Mechanism() != "" }

func (h Hash) new() func() hash.Hash {
	switch h {
	case SHA1:
		return sha1.New
	case SHA256:
		return sha256.New
	default:
		return sha512.New
	}
}

func (h Hash) size() int {
	switch h {
	case SHA1:
		return sha1.Size
	case SHA256:
		return sha256.Size
	default:
		return sha512.Size
	}
}

func hashByMechanism(name string) (Hash, bool) {
	for _, h := range hashes {
		if h.Mechanism() == name {
			return h, true
		}
	}
	return 0, false
}

// MinIterations is the smallest PBKDF2 iteration count DeriveCredential accepts (RFC 7677 section 4).
const MinIterations = 4096

// saltLen is the length of fresh salts: 128 bits, as RFC 8018 section 4.1 recommends at least 64.
const saltLen = 16

// DeriveCredential computes the stored SCRAM keys of password (normalized with the PRECIS OpaqueString
// profile, RFC 8265, which replaces SASLprep) for hash h, with a fresh random 16-byte salt. Its cost is
// that of one client login: iterations rounds of PBKDF2.
func DeriveCredential(h Hash, password string, iterations int) (storage.ScramCredential, error) {
	p, err := checkDerive(h, password, iterations)
	if err != nil {
		return storage.ScramCredential{}, err
	}
	return deriveNormalized(h, p, iterations)
}

// DeriveAll returns the credentials of password for every supported hash, strongest first: what creating
// an account or changing a password stores.
func DeriveAll(password string, iterations int) ([]storage.ScramCredential, error) {
	p, err := checkDerive(SHA256, password, iterations)
	if err != nil {
		return nil, err
	}
	creds := make([]storage.ScramCredential, 0, len(hashes))
	for _, h := range hashes {
		c, err := deriveNormalized(h, p, iterations)
		if err != nil {
			return nil, err
		}
		creds = append(creds, c)
	}
	return creds, nil
}

func checkDerive(h Hash, password string, iterations int) (string, error) {
	if !h.valid() {
		return "", fmt.Errorf("auth: unknown hash %d", int(h))
	}
	if iterations < MinIterations {
		return "", fmt.Errorf("auth: %d iterations is below the minimum of %d", iterations, MinIterations)
	}
	p, err := normalizePassword(password)
	if err != nil {
		return "", fmt.Errorf("auth: password: %w", err)
	}
	return p, nil
}

func deriveNormalized(h Hash, password string, iterations int) (storage.ScramCredential, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return storage.ScramCredential{}, fmt.Errorf("auth: salt: %w", err)
	}
	return deriveWithSalt(h, password, salt, iterations)
}

// deriveWithSalt computes the credential of an already normalized password (RFC 5802 section 3):
//
//	SaltedPassword := Hi(Normalize(password), salt, i)
//	ClientKey      := HMAC(SaltedPassword, "Client Key")
//	StoredKey      := H(ClientKey)
//	ServerKey      := HMAC(SaltedPassword, "Server Key")
func deriveWithSalt(h Hash, password string, salt []byte, iterations int) (storage.ScramCredential, error) {
	if iterations < 1 {
		return storage.ScramCredential{}, errors.New("auth: iteration count must be positive")
	}
	// Hi is PBKDF2 with HMAC-H and an output of one hash length (RFC 5802 section 2.2).
	salted, err := pbkdf2.Key(h.new(), password, salt, iterations, h.size())
	if err != nil {
		return storage.ScramCredential{}, fmt.Errorf("auth: pbkdf2: %w", err)
	}
	clientKey := hmacSum(h, salted, []byte("Client Key"))
	return storage.ScramCredential{
		Mechanism:  h.Mechanism(),
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  hashSum(h, clientKey),
		ServerKey:  hmacSum(h, salted, []byte("Server Key")),
	}, nil
}

func hmacSum(h Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(h.new(), key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func hashSum(h Hash, b []byte) []byte {
	d := h.new()()
	d.Write(b)
	return d.Sum(nil)
}

// usable reports whether a stored credential can run an exchange for h. A damaged record is treated like a
// missing one, so that it cannot be told apart from an unknown user either.
func usable(c storage.ScramCredential, h Hash) bool {
	return c.Mechanism == h.Mechanism() && len(c.Salt) > 0 && c.Iterations > 0 &&
		len(c.StoredKey) == h.size() && len(c.ServerKey) == h.size()
}

// pick returns the stored credential for h, if there is a usable one.
func pick(creds []storage.ScramCredential, h Hash) (storage.ScramCredential, bool) {
	for _, c := range creds {
		if usable(c, h) {
			return c, true
		}
	}
	return storage.ScramCredential{}, false
}

// fakeCredential stands in for a credential the user does not have. Its salt is a keyed hash of the
// username and mechanism, so asking twice gives the same salt, as for a real account; its keys are random,
// so no proof can match (and the caller fails the exchange regardless).
func (s *Server) fakeCredential(h Hash, user string) storage.ScramCredential {
	m := hmac.New(sha256.New, s.fakeKey)
	m.Write([]byte("parley fake salt\x00"))
	m.Write([]byte(h.Mechanism()))
	m.Write([]byte{0})
	m.Write([]byte(user))
	salt := m.Sum(nil)[:saltLen]
	keys := make([]byte, 2*h.size())
	_, _ = rand.Read(keys)
	return storage.ScramCredential{
		Mechanism:  h.Mechanism(),
		Salt:       salt,
		Iterations: s.iterations,
		StoredKey:  keys[:h.size()],
		ServerKey:  keys[h.size():],
	}
}
