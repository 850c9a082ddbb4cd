package auth

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"parley.im/parley/storage"
)

// scramState is what a SCRAM exchange remembers between the server-first and the client-final message.
type scramState struct {
	gs2Header  []byte // as the client sent it, for the c= check
	cbData     []byte // the binding data of the type the client named, nil without channel binding
	nonce      []byte // client nonce + server nonce
	authPrefix []byte // client-first-message-bare "," server-first-message ","
	cred       storage.ScramCredential
	fake       bool // cred stands in for a missing account or credential: the proof must fail
}

// scramFirst handles the client-first-message (RFC 5802 section 7) and returns the server-first-message.
//
//	client-first-message = gs2-header [reserved-mext ","] username "," nonce ["," extensions]
//	gs2-header           = gs2-cbind-flag "," [ authzid ] ","
//	gs2-cbind-flag       = ("p=" cb-name) / "n" / "y"
func (e *Exchange) scramFirst(ctx context.Context, msg []byte) ([]byte, error) {
	malformed := func(format string, a ...any) error {
		return newError(CondMalformedRequest, "", fmt.Errorf("client-first: "+format, a...))
	}
	if len(msg) == 0 {
		return nil, malformed("empty")
	}
	if !utf8.Valid(msg) || bytes.IndexByte(msg, 0) >= 0 {
		return nil, malformed("not UTF-8 without NUL")
	}

	// gs2-cbind-flag
	var flag byte
	var cbName string
	rest := msg
	switch {
	case bytes.HasPrefix(rest, []byte("n,")), bytes.HasPrefix(rest, []byte("y,")):
		flag, rest = rest[0], rest[2:]
	case bytes.HasPrefix(rest, []byte("p=")):
		i := bytes.IndexByte(rest, ',')
		if i < 0 || !validCBName(rest[2:i]) {
			return nil, malformed("bad channel-binding name")
		}
		flag, cbName, rest = 'p', string(rest[2:i]), rest[i+1:]
	default:
		return nil, malformed("bad gs2-cbind-flag")
	}

	// [authzid] ","
	var authzid string
	if bytes.HasPrefix(rest, []byte("a=")) {
		i := bytes.IndexByte(rest, ',')
		if i < 0 {
			return nil, malformed("unterminated gs2-header")
		}
		a, ok := decodeSaslname(rest[2:i])
		if !ok {
			return nil, malformed("bad authzid")
		}
		authzid, rest = a, rest[i+1:]
	} else {
		if len(rest) == 0 || rest[0] != ',' {
			return nil, malformed("bad gs2-header")
		}
		rest = rest[1:]
	}
	gs2Header := msg[:len(msg)-len(rest)]
	bare := rest

	attrs := bytes.Split(bare, []byte(","))
	if len(attrs) < 2 {
		return nil, malformed("missing username or nonce")
	}
	if bytes.HasPrefix(attrs[0], []byte("m=")) {
		// RFC 5802 section 5.1: m is reserved, and its presence MUST cause authentication failure.
		return nil, malformed("reserved m attribute")
	}
	if !bytes.HasPrefix(attrs[0], []byte("n=")) {
		return nil, malformed("username must come first")
	}
	raw, ok := decodeSaslname(attrs[0][2:])
	if !ok {
		return nil, malformed("bad username")
	}
	if !bytes.HasPrefix(attrs[1], []byte("r=")) || !validNonce(attrs[1][2:]) {
		return nil, malformed("bad nonce")
	}
	cnonce := attrs[1][2:]
	if err := checkExtensions(attrs[2:]); err != nil {
		return nil, malformed("%v", err)
	}

	// An unusable name cannot belong to an account: carry on as for an unknown user.
	user, userErr := normalizeUser(raw)
	if userErr != nil {
		user = ""
	}
	e.user = user
	fail := func(cond, format string, a ...any) error {
		return newError(cond, user, fmt.Errorf("client-first: "+format, a...))
	}

	// Channel-binding policy (RFC 5802 section 6).
	var cbData []byte
	switch flag {
	case 'n':
		if e.plus {
			return nil, fail(CondMalformedRequest, "%s without channel binding", e.mech)
		}
	case 'y':
		if e.plus {
			return nil, fail(CondMalformedRequest, "%s with flag y", e.mech)
		}
		if e.cb.any() && !e.stream.PlusTypeRefused() {
			// The client can bind but believes we cannot, yet we offered -PLUS and it never tried it: someone
			// stripped it from our mechanism list. This is the downgrade RFC 5802 section 6 has the y flag
			// detect. After a -PLUS attempt refused only for its binding type (Stream), the client saw -PLUS and
			// "y" is its honest fallback.
			return nil, fail(CondNotAuthorized, "channel-binding downgrade (flag y, -PLUS was offered and not attempted)")
		}
	case 'p':
		if !e.plus {
			return nil, fail(CondMalformedRequest, "channel binding %q with %s", cbName, e.mech)
		}
		d, ok := e.cb.data(cbName)
		if !ok {
			if e.stream != nil {
				e.stream.plusTypeRefused = true
			}
			return nil, fail(CondNotAuthorized, "unsupported channel-binding type %q", truncate(cbName, 32))
		}
		cbData = d
	}
	if err := e.srv.checkAuthzid(authzid, raw, user); err != nil {
		return nil, err
	}

	var creds []storage.ScramCredential
	if userErr == nil {
		var err error
		if creds, err = e.srv.credentials(ctx, user); err != nil {
			return nil, newError(CondTemporaryAuthFailure, user, fmt.Errorf("lookup: %w", err))
		}
	}
	cred, found := pick(creds, e.hash)
	if !found {
		// Unknown user, or no credential for this hash: answer as if there were one (same salt length, a
		// salt that does not change between attempts) and fail at the proof.
		cred = e.srv.fakeCredential(e.hash, user)
		if userErr != nil {
			cred = e.srv.fakeCredential(e.hash, raw)
		}
	}

	snonce := e.srv.nonce()
	nonce := make([]byte, 0, len(cnonce)+len(snonce))
	nonce = append(append(nonce, cnonce...), snonce...)

	// server-first-message = nonce "," salt "," iteration-count
	serverFirst := make([]byte, 0, 2+len(nonce)+3+base64.StdEncoding.EncodedLen(len(cred.Salt))+3+10)
	serverFirst = append(serverFirst, "r="...)
	serverFirst = append(serverFirst, nonce...)
	serverFirst = append(serverFirst, ",s="...)
	serverFirst = base64.StdEncoding.AppendEncode(serverFirst, cred.Salt)
	serverFirst = append(serverFirst, ",i="...)
	serverFirst = strconv.AppendInt(serverFirst, int64(cred.Iterations), 10)
	// XEP-0474: h is an extension attribute, which clients without SSDP ignore (RFC 5802 section 5.1).
	serverFirst = append(serverFirst, e.stream.ssdpAttr(e.hash)...)

	prefix := make([]byte, 0, len(bare)+1+len(serverFirst)+1)
	prefix = append(prefix, bare...)
	prefix = append(prefix, ',')
	prefix = append(prefix, serverFirst...)
	prefix = append(prefix, ',')

	e.scram = &scramState{
		gs2Header:  append([]byte(nil), gs2Header...), // msg belongs to the caller
		cbData:     cbData,
		nonce:      nonce,
		authPrefix: prefix,
		cred:       cred,
		fake:       !found || userErr != nil,
	}
	return serverFirst, nil
}

// scramFinal handles the client-final-message and returns the server-final-message.
//
//	client-final-message-without-proof = channel-binding "," nonce ["," extensions]
//	client-final-message               = client-final-message-without-proof "," proof
func (e *Exchange) scramFinal(msg []byte) ([]byte, error) {
	st := e.scram
	user := e.user
	fail := func(cond, format string, a ...any) error {
		return newError(cond, user, fmt.Errorf("client-final: "+format, a...))
	}
	if !utf8.Valid(msg) || bytes.IndexByte(msg, 0) >= 0 {
		return nil, fail(CondMalformedRequest, "not UTF-8 without NUL")
	}
	// The proof is the last attribute; no attribute value may hold a comma, so the last ",p=" starts it.
	i := bytes.LastIndex(msg, []byte(",p="))
	if i < 0 {
		return nil, fail(CondMalformedRequest, "no proof")
	}
	withoutProof := msg[:i]
	proof, err := decodeBase64(msg[i+3:])
	if err != nil {
		return nil, fail(CondMalformedRequest, "proof: %v", err)
	}
	attrs := bytes.Split(withoutProof, []byte(","))
	if len(attrs) < 2 || !bytes.HasPrefix(attrs[0], []byte("c=")) || !bytes.HasPrefix(attrs[1], []byte("r=")) {
		return nil, fail(CondMalformedRequest, "want c= and r= first")
	}
	cbind, err := decodeBase64(attrs[0][2:])
	if err != nil {
		return nil, fail(CondMalformedRequest, "channel binding: %v", err)
	}
	if err := checkExtensions(attrs[2:]); err != nil {
		return nil, fail(CondMalformedRequest, "%v", err)
	}

	// c= must repeat the gs2-header, followed by the binding data when the client asked for binding
	// (RFC 5802 section 7, cbind-input). This ties the exchange to this TLS connection.
	want := make([]byte, 0, len(st.gs2Header)+len(st.cbData))
	want = append(append(want, st.gs2Header...), st.cbData...)
	if subtle.ConstantTimeCompare(cbind, want) != 1 {
		return nil, fail(CondNotAuthorized, "channel binding does not match")
	}
	if subtle.ConstantTimeCompare(attrs[1][2:], st.nonce) != 1 {
		return nil, fail(CondNotAuthorized, "nonce does not match")
	}
	h := e.hash
	if len(proof) != h.size() {
		return nil, fail(CondNotAuthorized, "proof has %d bytes, want %d", len(proof), h.size())
	}

	// RFC 5802 section 3:
	//	AuthMessage     := client-first-message-bare + "," + server-first-message + "," +
	//	                   client-final-message-without-proof
	//	ClientSignature := HMAC(StoredKey, AuthMessage)
	//	ClientKey       := ClientProof XOR ClientSignature, and H(ClientKey) must equal StoredKey
	//	ServerSignature := HMAC(ServerKey, AuthMessage)
	clientSig := hmacSum(h, st.cred.StoredKey, st.authPrefix, withoutProof)
	clientKey := make([]byte, len(proof))
	subtle.XORBytes(clientKey, proof, clientSig)
	match := subtle.ConstantTimeCompare(hashSum(h, clientKey), st.cred.StoredKey) == 1
	if !match || st.fake {
		if st.fake {
			return nil, credentialFailed(fail(CondNotAuthorized, "no %s credential for this user", h.Mechanism()))
		}
		return nil, credentialFailed(fail(CondNotAuthorized, "wrong proof"))
	}
	serverSig := hmacSum(h, st.cred.ServerKey, st.authPrefix, withoutProof)
	out := make([]byte, 0, 2+base64.StdEncoding.EncodedLen(len(serverSig)))
	out = append(out, "v="...)
	return base64.StdEncoding.AppendEncode(out, serverSig), nil
}

// decodeSaslname undoes RFC 5802's escaping of ',' as "=2C" and '=' as "=3D"; any other '=' is an error,
// as is an empty name.
func decodeSaslname(b []byte) (string, bool) {
	if len(b) == 0 {
		return "", false
	}
	if bytes.IndexByte(b, '=') < 0 {
		return string(b), true
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '=' {
			out = append(out, b[i])
			continue
		}
		switch {
		case bytes.HasPrefix(b[i+1:], []byte("2C")):
			out = append(out, ',')
		case bytes.HasPrefix(b[i+1:], []byte("3D")):
			out = append(out, '=')
		default:
			return "", false
		}
		i += 2
	}
	return string(out), true
}

// validCBName checks cb-name = 1*(ALPHA / DIGIT / "." / "-").
func validCBName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// validNonce checks c-nonce = printable, that is %x21-2B / %x2D-7E (no comma), and non-empty.
func validNonce(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// checkExtensions checks attr-val = ALPHA "=" value, with a non-empty value, for attributes the server
// ignores (RFC 5802 section 5.1: unknown attributes are ignored), except m, which must fail.
func checkExtensions(attrs [][]byte) error {
	for _, a := range attrs {
		if len(a) < 3 || a[1] != '=' || !(a[0] >= 'a' && a[0] <= 'z' || a[0] >= 'A' && a[0] <= 'Z') {
			return errors.New("malformed attribute")
		}
		if a[0] == 'm' {
			return errors.New("reserved m attribute")
		}
	}
	return nil
}

// decodeBase64 decodes standard, padded base64 strictly: no line breaks, no stray bits.
func decodeBase64(b []byte) ([]byte, error) {
	if bytes.ContainsAny(b, "\r\n") {
		return nil, errors.New("line break in base64")
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Strict().Decode(out, b)
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}
