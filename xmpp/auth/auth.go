// Package auth implements the server side of SASL (RFC 4422) for Parley: SCRAM-SHA-1, SCRAM-SHA-256 and
// SCRAM-SHA-512 (RFC 5802, RFC 7677) with their -PLUS channel-binding variants (tls-exporter, RFC 9266;
// tls-server-end-point, RFC 5929), and PLAIN (RFC 4616) verified against the same stored SCRAM keys.
//
// The server never sees a stored password or salted password: it keeps only StoredKey and ServerKey
// (storage.ScramCredential), which is all a SCRAM server step needs and all PLAIN needs to check a password
// by re-deriving it. Unknown users get a deterministic fake salt and fail only at the proof, with the same
// condition as a wrong password, so a client cannot tell which usernames exist.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/text/secure/precis"
	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
)

// MaxMessageSize is the largest client message (initial response or response, after base64 decoding) an
// exchange accepts. Real SCRAM and PLAIN messages are a few hundred bytes; the limit keeps a hostile client
// from making the server parse or hash megabytes.
const MaxMessageSize = 4096

// DefaultIterations is the PBKDF2 iteration count Config.DefaultIterations defaults to: the minimum RFC 7677
// recommends.
const DefaultIterations = 4096

// Mechanism names.
const (
	MechPlain  = "PLAIN"
	plusSuffix = "-PLUS"
)

// Lookup returns the stored credentials of a username: the localpart, normalized by package auth with the
// PRECIS UsernameCaseMapped profile (RFC 8265, as RFC 7622 does for localparts). It returns an error
// matching storage.ErrNotFound for unknown users; any other error fails the exchange with
// temporary-auth-failure. The context is the one passed to Step, so a closing connection cancels it.
type Lookup func(ctx context.Context, username string) ([]storage.ScramCredential, error)

// Config configures a Server.
type Config struct {
	// Lookup fetches stored credentials. Required.
	Lookup Lookup
	// AllowPlain enables PLAIN. It is only ever offered over TLS whatever this says; false disables it
	// entirely. Default false.
	AllowPlain bool
	// FakeSaltKey is the secret from which fake salts for unknown users are derived, so that one unknown
	// username always gets the same salt. Default: 32 random bytes per NewServer, which keeps salts stable for
	// the life of the process only; set it (at least 16 bytes) to keep them stable across restarts.
	FakeSaltKey []byte
	// DefaultIterations is the iteration count announced for unknown users. Set it to the count new
	// credentials are derived with, or it tells unknown users from known ones. Default 4096.
	DefaultIterations int
	// Domain is the server's domain. When set, an authorization identity in JID form must name this domain.
	// Default "": the domainpart of an authorization identity is not checked (the localpart always is).
	Domain string
}

// Validate reports what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Lookup == nil {
		errs = append(errs, errors.New("auth: Lookup is required"))
	}
	if c.FakeSaltKey != nil && len(c.FakeSaltKey) < 16 {
		errs = append(errs, fmt.Errorf("auth: FakeSaltKey has %d bytes, want at least 16", len(c.FakeSaltKey)))
	}
	if c.DefaultIterations < 0 {
		errs = append(errs, fmt.Errorf("auth: DefaultIterations %d is negative", c.DefaultIterations))
	}
	if c.Domain != "" {
		if _, err := jid.New("", c.Domain, ""); err != nil {
			errs = append(errs, fmt.Errorf("auth: Domain: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Server runs SASL exchanges against stored SCRAM credentials. It is safe for concurrent use; each exchange
// (Exchange) belongs to one connection.
type Server struct {
	lookup     Lookup
	allowPlain bool
	fakeKey    []byte
	iterations int
	domain     string // normalized domainpart, or "" for any

	// nonce returns the server's part of the SCRAM nonce. Tests replace it to replay RFC test vectors.
	nonce func() string
}

// NewServer returns a Server. It does not fail: a configuration that Validate rejects still yields a Server
// that denies what it cannot do (no Lookup means no known users).
func NewServer(cfg Config) *Server {
	s := &Server{
		lookup:     cfg.Lookup,
		allowPlain: cfg.AllowPlain,
		iterations: cfg.DefaultIterations,
		nonce:      randomNonce,
	}
	if s.iterations <= 0 {
		s.iterations = DefaultIterations
	}
	if len(cfg.FakeSaltKey) > 0 {
		s.fakeKey = append([]byte(nil), cfg.FakeSaltKey...)
	} else {
		s.fakeKey = make([]byte, 32)
		_, _ = rand.Read(s.fakeKey) // crypto/rand.Read never fails (it crashes the program instead)
	}
	if cfg.Domain != "" {
		if d, err := jid.New("", cfg.Domain, ""); err == nil {
			s.domain = d.Domainpart()
		} else {
			s.domain = cfg.Domain // Validate reports it; compare verbatim, which matches nothing normalized
		}
	}
	return s
}

// serverNonceLen is how many random bytes the server adds to the client's nonce (RFC 5802 section 5.1 asks
// for a fresh, unpredictable value; 24 bytes is 192 bits).
const serverNonceLen = 24

func randomNonce() string {
	b := make([]byte, serverNonceLen)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// Mechanisms lists the mechanism names to advertise on a connection, strongest first: the -PLUS variants
// when cb holds at least one channel binding, then plain SCRAM, then PLAIN if it is enabled and TLS is
// active.
func (s *Server) Mechanisms(cb *ChannelBindings, tlsActive bool) []string {
	var m []string
	if cb.any() {
		for _, h := range hashes {
			m = append(m, h.Mechanism()+plusSuffix)
		}
	}
	for _, h := range hashes {
		m = append(m, h.Mechanism())
	}
	if s.allowPlain && tlsActive {
		m = append(m, MechPlain)
	}
	return m
}

// Start begins an exchange with the mechanism the client chose. cb is the connection's channel bindings
// (nil without TLS) and tlsActive whether the stream is encrypted. initial is the client's initial response
// (already base64-decoded; nil if absent): Start only checks its size. The exchange proper begins with the
// first call to Step, to which the caller passes the same initial response.
func (s *Server) Start(ctx context.Context, mechanism string, cb *ChannelBindings, tlsActive bool, initial []byte) (*Exchange, error) {
	if len(initial) > MaxMessageSize {
		return nil, newError(CondMalformedRequest, "", fmt.Errorf("initial response of %d bytes exceeds %d", len(initial), MaxMessageSize))
	}
	if mechanism == MechPlain {
		switch {
		case !s.allowPlain:
			return nil, newError(CondInvalidMechanism, "", errors.New("PLAIN is disabled"))
		case !tlsActive:
			return nil, newError(CondEncryptionRequired, "", errors.New("PLAIN needs TLS"))
		}
		return &Exchange{srv: s, mech: mechanism}, nil
	}
	name, plus := strings.CutSuffix(mechanism, plusSuffix)
	h, ok := hashByMechanism(name)
	if !ok {
		return nil, newError(CondInvalidMechanism, "", fmt.Errorf("unknown mechanism %q", truncate(mechanism, 64)))
	}
	if plus && !cb.any() {
		// Not advertised on this connection: no TLS, or no binding could be computed.
		return nil, newError(CondInvalidMechanism, "", fmt.Errorf("%s without channel binding data", mechanism))
	}
	return &Exchange{srv: s, mech: mechanism, hash: h, plus: plus, cb: cb}, nil
}

// normalizeUser applies the PRECIS profile XMPP uses for localparts. The error means no account can have
// this name.
func normalizeUser(name string) (string, error) {
	return precis.UsernameCaseMapped.String(name)
}

// normalizePassword applies the PRECIS OpaqueString profile (RFC 8265 section 4.2), the successor of the
// SASLprep profile RFC 5802 and RFC 4616 name.
func normalizePassword(p string) (string, error) {
	return precis.OpaqueString.String(p)
}

// credentials returns the user's stored credentials; nil and no error for unknown users.
func (s *Server) credentials(ctx context.Context, user string) ([]storage.ScramCredential, error) {
	if s.lookup == nil {
		return nil, nil
	}
	creds, err := s.lookup(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	return creds, err
}

// authzidAllowed reports whether a client authenticated as user (normalized; raw as sent) may act as
// authzid. Parley has no proxy authorization: the only identities allowed are the user's own name and bare
// JID.
func (s *Server) authzidAllowed(authzid, raw, user string) bool {
	if authzid == raw || authzid == user {
		return true
	}
	if !strings.Contains(authzid, "@") {
		n, err := normalizeUser(authzid)
		return err == nil && n == user
	}
	j, err := jid.Parse(authzid)
	if err != nil || j.Resourcepart() != "" || j.Localpart() != user {
		return false
	}
	return s.domain == "" || j.Domainpart() == s.domain
}

// checkAuthzid fails with invalid-authzid when authzid is set and not allowed.
func (s *Server) checkAuthzid(authzid, raw, user string) error {
	if authzid == "" || s.authzidAllowed(authzid, raw, user) {
		return nil
	}
	return newError(CondInvalidAuthzid, user, fmt.Errorf("authzid %q is not the user's own", truncate(authzid, 64)))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Exchange is one SASL exchange on one connection. It is not safe for concurrent use.
type Exchange struct {
	srv  *Server
	mech string
	hash Hash // 0 for PLAIN
	plus bool
	cb   *ChannelBindings
	// stream is the caller's record of the stream (StartStream), nil for Start.
	stream *Stream

	state     exchangeState
	askedOnce bool   // an empty challenge was sent because the initial response was absent
	user      string // normalized username, once known
	scram     *scramState
}

type exchangeState int

const (
	stateInitial exchangeState = iota // waiting for the client's first message
	stateFinal                        // SCRAM: server-first sent, waiting for client-final
	stateDone
	stateFailed
)

// Mechanism returns the mechanism name the exchange runs.
func (e *Exchange) Mechanism() string { return e.mech }

// Username returns the authenticated username (the normalized localpart). It is valid once Step has returned
// done; before that it returns "".
func (e *Exchange) Username() string {
	if e.state != stateDone {
		return ""
	}
	return e.user
}

// Step consumes the client's response (base64-decoded) and returns the challenge to send (decoded), or,
// when done is true, the additional data for <success/> (the server-final-message for SCRAM, nil for
// PLAIN). A non-nil error means the exchange failed: send <failure/> with Condition(err). An exchange that
// failed or finished refuses further steps.
func (e *Exchange) Step(ctx context.Context, response []byte) (challenge []byte, done bool, err error) {
	switch e.state {
	case stateDone, stateFailed:
		return nil, false, newError(CondMalformedRequest, e.user, errors.New("exchange is over"))
	}
	challenge, done, err = e.step(ctx, response)
	switch {
	case err != nil:
		e.state = stateFailed
		e.scram = nil
	case done:
		e.state = stateDone
		e.scram = nil
	}
	return challenge, done, err
}

func (e *Exchange) step(ctx context.Context, response []byte) ([]byte, bool, error) {
	if len(response) > MaxMessageSize {
		return nil, false, newError(CondMalformedRequest, e.user, fmt.Errorf("response of %d bytes exceeds %d", len(response), MaxMessageSize))
	}
	if err := ctx.Err(); err != nil {
		return nil, false, newError(CondAborted, e.user, err)
	}
	if e.state == stateInitial && response == nil && !e.askedOnce {
		// No initial response: RFC 6120 section 6.4.2 has the server send an empty challenge.
		e.askedOnce = true
		return []byte{}, false, nil
	}
	if e.hash == 0 {
		return e.stepPlain(ctx, response)
	}
	if e.state == stateInitial {
		out, err := e.scramFirst(ctx, response)
		if err != nil {
			return nil, false, err
		}
		e.state = stateFinal
		return out, false, nil
	}
	out, err := e.scramFinal(response)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}
