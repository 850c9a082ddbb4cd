package auth

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"

	// Register the hashes tls-server-end-point may need with crypto.Hash.
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// Channel-binding type names (RFC 5056 registry), as they appear in a SCRAM gs2-header and in XEP-0440.
const (
	CBTLSExporter       = "tls-exporter"         // RFC 9266
	CBTLSServerEndPoint = "tls-server-end-point" // RFC 5929 section 4
)

// exporterLabel and exporterLen are fixed by RFC 9266 section 2.
const (
	exporterLabel = "EXPORTER-Channel-Binding"
	exporterLen   = 32
)

// ChannelBindings holds the channel-binding data of one TLS connection. The caller computes it once per
// connection, after the handshake. Either field may be nil when that type is unavailable.
type ChannelBindings struct {
	TLSExporter       []byte // RFC 9266, TLS 1.3 only
	TLSServerEndPoint []byte // RFC 5929 section 4, the hash of the server's certificate
}

// NewChannelBindings derives the channel bindings of a server-side TLS connection whose certificate is
// leafDER.
//
// tls-exporter is computed only for TLS 1.3: RFC 9266 section 3 defines it for TLS 1.2 only with the
// extended master secret, and Go's exporter refuses anything weaker, so TLS 1.2 clients bind with
// tls-server-end-point. tls-server-end-point hashes the certificate with the hash of its signature
// algorithm, SHA-256 in place of MD5 and SHA-1 (RFC 5929 section 4.1); it is left out for algorithms that
// use no single hash (Ed25519), for which RFC 5929 defines no binding, and when leafDER does not parse.
func NewChannelBindings(cs tls.ConnectionState, leafDER []byte) *ChannelBindings {
	cb := &ChannelBindings{}
	if !cs.HandshakeComplete {
		return cb
	}
	if cs.Version >= tls.VersionTLS13 {
		// RFC 9266 section 2: label "EXPORTER-Channel-Binding", no context, 32 bytes.
		if ekm, err := cs.ExportKeyingMaterial(exporterLabel, nil, exporterLen); err == nil {
			cb.TLSExporter = ekm
		}
	}
	cb.TLSServerEndPoint = serverEndPoint(leafDER)
	return cb
}

// serverEndPoint computes tls-server-end-point for a DER certificate (RFC 5929 section 4.1).
func serverEndPoint(der []byte) []byte {
	if len(der) == 0 {
		return nil
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil
	}
	h := endPointHash(cert.SignatureAlgorithm)
	if h == 0 {
		return nil
	}
	d := h.New()
	d.Write(der)
	return d.Sum(nil)
}

// endPointHash maps a certificate's signature algorithm to the tls-server-end-point hash; 0 when RFC 5929
// leaves the binding undefined.
func endPointHash(alg x509.SignatureAlgorithm) crypto.Hash {
	switch alg {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1, // upgraded to SHA-256
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.DSAWithSHA256, x509.ECDSAWithSHA256:
		return crypto.SHA256
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		return crypto.SHA384
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		return crypto.SHA512
	}
	return 0
}

// Types returns the XEP-0440 names of the channel-binding types available, preferred first.
func (cb *ChannelBindings) Types() []string {
	if cb == nil {
		return nil
	}
	var t []string
	if len(cb.TLSExporter) > 0 {
		t = append(t, CBTLSExporter)
	}
	if len(cb.TLSServerEndPoint) > 0 {
		t = append(t, CBTLSServerEndPoint)
	}
	return t
}

// any reports whether at least one binding is available, that is whether the -PLUS mechanisms are offered.
func (cb *ChannelBindings) any() bool {
	return cb != nil && (len(cb.TLSExporter) > 0 || len(cb.TLSServerEndPoint) > 0)
}

// data returns the binding data of the named type.
func (cb *ChannelBindings) data(name string) ([]byte, bool) {
	if cb == nil {
		return nil, false
	}
	var d []byte
	switch name {
	case CBTLSExporter:
		d = cb.TLSExporter
	case CBTLSServerEndPoint:
		d = cb.TLSServerEndPoint
	}
	return d, len(d) > 0
}

// TLSExporterData returns the tls-exporter binding, nil when there is none.
func (cb *ChannelBindings) TLSExporterData() []byte {
	d, _ := cb.data(CBTLSExporter)
	return d
}

// TLSServerEndPointData returns the tls-server-end-point binding, nil when there is none.
func (cb *ChannelBindings) TLSServerEndPointData() []byte {
	d, _ := cb.data(CBTLSServerEndPoint)
	return d
}
