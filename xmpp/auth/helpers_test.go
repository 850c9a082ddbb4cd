package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"parley.im/parley/storage"
)

// testPassword is the password of every account in testUsers.
const testPassword = "pencil"

var (
	usersOnce sync.Once
	usersMap  map[string][]storage.ScramCredential
)

// testUsers returns the accounts of the test store: "user" with all three hashes, "sha1only" with only
// SCRAM-SHA-1, and "a,b=c" (a name that needs SCRAM escaping). Derived once: PBKDF2 at 4096 rounds is the
// slow part of these tests.
func testUsers(t testing.TB) map[string][]storage.ScramCredential {
	t.Helper()
	usersOnce.Do(func() {
		all, err := DeriveAll(testPassword, 4096)
		if err != nil {
			panic(err)
		}
		only1, err := DeriveCredential(SHA1, testPassword, 4096)
		if err != nil {
			panic(err)
		}
		usersMap = map[string][]storage.ScramCredential{
			"user":     all,
			"sha1only": {only1},
			"a,b=c":    all,
		}
	})
	return usersMap
}

// mapLookup serves credentials from a map; the user "broken" makes the store fail.
func mapLookup(m map[string][]storage.ScramCredential) Lookup {
	return func(ctx context.Context, user string) ([]storage.ScramCredential, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if user == "broken" {
			return nil, errors.New("database is down")
		}
		c, ok := m[user]
		if !ok {
			return nil, fmt.Errorf("lookup %q: %w", user, storage.ErrNotFound)
		}
		return c, nil
	}
}

func newTestServer(t testing.TB, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		Lookup:      mapLookup(testUsers(t)),
		AllowPlain:  true,
		FakeSaltKey: []byte("0123456789abcdef0123456789abcdef"),
		Domain:      "example.net",
	}
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return NewServer(cfg)
}

// scramClient is a small SCRAM client written from RFC 5802 for what mellium.im/sasl lacks: SCRAM-SHA-512,
// tls-server-end-point, the y flag with a plain mechanism, and deliberately odd messages. It shares no code
// with the server side.
type scramClient struct {
	h        Hash
	user     string
	pass     string
	authzid  string
	flag     string // "n", "y" or "p=<cb-name>"
	cbData   []byte
	cnonce   string
	firstExt string // appended to client-first-message-bare, e.g. ",x=1"
	finalExt string // inserted before the proof, e.g. ",x=1"
	// finalNonce, if set, replaces the nonce the client echoes in client-final (the proof still covers it).
	finalNonce string

	bare      string
	gs2       string
	serverSig []byte
}

func escapeSaslname(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

func (c *scramClient) first() []byte {
	if c.flag == "" {
		c.flag = "n"
	}
	if c.cnonce == "" {
		b := make([]byte, 18)
		rand.Read(b)
		c.cnonce = base64.StdEncoding.EncodeToString(b)
	}
	c.gs2 = c.flag + ","
	if c.authzid != "" {
		c.gs2 += "a=" + escapeSaslname(c.authzid)
	}
	c.gs2 += ","
	c.bare = "n=" + escapeSaslname(c.user) + ",r=" + c.cnonce + c.firstExt
	return []byte(c.gs2 + c.bare)
}

func (c *scramClient) final(serverFirst []byte) ([]byte, error) {
	var nonce, salt64, iter string
	for _, a := range strings.Split(string(serverFirst), ",") {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "r":
			nonce = v
		case "s":
			salt64 = v
		case "i":
			iter = v
		case "m":
			return nil, errors.New("server sent m")
		}
	}
	if !strings.HasPrefix(nonce, c.cnonce) || len(nonce) == len(c.cnonce) {
		return nil, fmt.Errorf("bad server nonce %q", nonce)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return nil, err
	}
	i, err := strconv.Atoi(iter)
	if err != nil {
		return nil, err
	}
	newHash := map[Hash]func() hash.Hash{SHA1: sha1.New, SHA256: sha256.New, SHA512: sha512.New}[c.h]
	size := newHash().Size()
	salted, err := pbkdf2.Key(newHash, c.pass, salt, i, size)
	if err != nil {
		return nil, err
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(newHash, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	d := newHash()
	d.Write(clientKey)
	storedKey := d.Sum(nil)
	if c.finalNonce != "" {
		nonce = c.finalNonce
	}
	withoutProof := "c=" + base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.cbData...)) +
		",r=" + nonce + c.finalExt
	authMessage := c.bare + "," + string(serverFirst) + "," + withoutProof
	proof := make([]byte, size)
	subtle.XORBytes(proof, clientKey, mac(storedKey, authMessage))
	c.serverSig = mac(mac(salted, "Server Key"), authMessage)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

func (c *scramClient) verify(serverFinal []byte) error {
	want := "v=" + base64.StdEncoding.EncodeToString(c.serverSig)
	if string(serverFinal) != want {
		return fmt.Errorf("server-final %q, want %q", serverFinal, want)
	}
	return nil
}

// run drives a whole exchange between c and srv. It returns the authenticated username or the server's
// error; client-side failures end the test.
func (c *scramClient) run(t testing.TB, srv *Server, cb *ChannelBindings) (string, error) {
	t.Helper()
	ctx := context.Background()
	mech := c.h.Mechanism()
	if strings.HasPrefix(c.flag, "p=") {
		mech += "-PLUS"
	}
	first := c.first()
	ex, err := srv.Start(ctx, mech, cb, true, first)
	if err != nil {
		return "", err
	}
	sf, done, err := ex.Step(ctx, first)
	if err != nil {
		return "", err
	}
	if done {
		t.Fatal("done after client-first")
	}
	cf, err := c.final(sf)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	out, done, err := ex.Step(ctx, cf)
	if err != nil {
		return "", err
	}
	if !done {
		t.Fatal("not done after client-final")
	}
	if err := c.verify(out); err != nil {
		t.Fatalf("client: %v", err)
	}
	return ex.Username(), nil
}

var (
	certOnce sync.Once
	certP256 tls.Certificate
)

// testCert returns a self-signed certificate for example.net with the given key (ECDSA P-256 signed with
// ECDSA-SHA256 if key is nil).
func testCert(t testing.TB, key any) tls.Certificate {
	t.Helper()
	if key == nil {
		certOnce.Do(func() {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				panic(err)
			}
			certP256 = makeCert(t, k)
		})
		return certP256
	}
	return makeCert(t, key)
}

func makeCert(t testing.TB, key any) tls.Certificate {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "example.net"},
		DNSNames:     []string{"example.net"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	var pub any
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		pub = k.Public()
	case ed25519.PrivateKey:
		pub = k.Public()
	default:
		t.Fatalf("unsupported key %T", key)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// tlsPair runs a real TLS handshake of the given version over loopback TCP and returns both sides'
// connection states and the server's leaf certificate.
func tlsPair(t testing.TB, version uint16) (server, client tls.ConnectionState, leafDER []byte) {
	t.Helper()
	cert := testCert(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		cs  tls.ConnectionState
		err error
	}
	res := make(chan result, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		t.Cleanup(func() { nc.Close() })
		tc := tls.Server(nc, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version})
		err = tc.Handshake()
		res <- result{tc.ConnectionState(), err}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	tc := tls.Client(nc, &tls.Config{RootCAs: pool, ServerName: "example.net", MinVersion: version, MaxVersion: version})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	r := <-res
	if r.err != nil {
		t.Fatalf("server handshake: %v", r.err)
	}
	if r.cs.Version != version {
		t.Fatalf("negotiated %x, want %x", r.cs.Version, version)
	}
	return r.cs, tc.ConnectionState(), cert.Certificate[0]
}
