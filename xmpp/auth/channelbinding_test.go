package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"testing"
)

func TestNewChannelBindings(t *testing.T) {
	scs, ccs, leaf := tlsPair(t, tls.VersionTLS13)
	cb := NewChannelBindings(scs, leaf)
	ekm, err := ccs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cb.TLSExporter, ekm) || len(ekm) != 32 {
		t.Errorf("tls-exporter %x, client computes %x", cb.TLSExporter, ekm)
	}
	sum := sha256.Sum256(leaf)
	if !bytes.Equal(cb.TLSServerEndPoint, sum[:]) {
		t.Errorf("tls-server-end-point %x, want %x", cb.TLSServerEndPoint, sum)
	}
	if !slices.Equal(cb.Types(), []string{"tls-exporter", "tls-server-end-point"}) {
		t.Errorf("Types() = %v", cb.Types())
	}

	scs12, _, _ := tlsPair(t, tls.VersionTLS12)
	cb12 := NewChannelBindings(scs12, leaf)
	if cb12.TLSExporter != nil || !bytes.Equal(cb12.TLSServerEndPoint, sum[:]) {
		t.Errorf("TLS 1.2: %+v", cb12)
	}
	if cb := NewChannelBindings(scs, nil); !slices.Equal(cb.Types(), []string{"tls-exporter"}) {
		t.Errorf("no certificate: %v", cb.Types())
	}
	if cb := NewChannelBindings(tls.ConnectionState{}, leaf); cb.any() {
		t.Errorf("before the handshake: %+v", cb)
	}
	var nilCB *ChannelBindings
	if nilCB.Types() != nil || nilCB.any() {
		t.Error("nil ChannelBindings has types")
	}
}

func TestServerEndPointHash(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c384 := testCert(t, p384)
	if c384.Leaf.SignatureAlgorithm != x509.ECDSAWithSHA384 {
		t.Fatalf("P-384 certificate signed with %v", c384.Leaf.SignatureAlgorithm)
	}
	sum := sha512.Sum384(c384.Certificate[0])
	if got := serverEndPoint(c384.Certificate[0]); !bytes.Equal(got, sum[:]) {
		t.Errorf("ECDSA-SHA384: %x, want SHA-384 %x", got, sum)
	}
	if got := serverEndPoint(testCert(t, edKey).Certificate[0]); got != nil {
		t.Errorf("Ed25519: %x, want none (RFC 5929 leaves it undefined)", got)
	}
	if got := serverEndPoint([]byte("not a certificate")); got != nil {
		t.Errorf("garbage: %x", got)
	}
	// RFC 5929 section 4.1: MD5 and SHA-1 are replaced by SHA-256.
	for alg, want := range map[x509.SignatureAlgorithm]crypto.Hash{
		x509.MD5WithRSA: crypto.SHA256, x509.SHA1WithRSA: crypto.SHA256, x509.ECDSAWithSHA1: crypto.SHA256,
		x509.SHA256WithRSA: crypto.SHA256, x509.SHA256WithRSAPSS: crypto.SHA256,
		x509.SHA384WithRSA: crypto.SHA384, x509.SHA512WithRSAPSS: crypto.SHA512, x509.ECDSAWithSHA512: crypto.SHA512,
		x509.PureEd25519: 0, x509.MD2WithRSA: 0, x509.UnknownSignatureAlgorithm: 0,
	} {
		if got := endPointHash(alg); got != want {
			t.Errorf("%v: %v, want %v", alg, got, want)
		}
	}
}
