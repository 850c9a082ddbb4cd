package httpupload

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Prefix is the path under which the handler serves uploads and downloads: PUT and GET
// Prefix + "{token}/{filename}".
const Prefix = "/upload/"

// Limits on what a slot request may name.
const (
	maxFilenameBytes    = 255 // the longest file name most file systems store
	maxContentTypeBytes = 255
)

var (
	errBadPath  = errors.New("httpupload: malformed upload path")
	errBadToken = errors.New("httpupload: invalid or tampered token")
)

// lowerBase32 encodes ids for keys and URLs: lower case, no padding, nothing that needs escaping.
var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// token is what a signed upload URL grants: a PUT of exactly Size bytes of ContentType before Expires, or a
// GET. Dir is the key without its file name ("owner/slot"); the file name is the URL's last segment, covered
// by the same signature.
type token struct {
	Put         bool
	Dir         string
	Size        int64     // PUT only
	ContentType string    // the slot's content type; a GET is served with it
	Expires     time.Time // PUT only
}

// Key returns the object key the token grants for the given file name.
func (t token) Key(filename string) string { return t.Dir + "/" + filename }

// signer makes and checks the HMAC-SHA256 signatures of upload tokens and derives owner ids. Both keys are
// derived from one secret, so the secret itself never signs anything.
type signer struct {
	tokenKey []byte
	ownerKey []byte
}

func newSigner(secret []byte) *signer {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	return &signer{tokenKey: derive("parley httpupload token v1"), ownerKey: derive("parley httpupload owner v1")}
}

// ownerID is the key prefix of an account: it does not reveal the JID in download URLs, and it is the same on
// every node that shares the secret.
func (s *signer) ownerID(bare string) string {
	m := hmac.New(sha256.New, s.ownerKey)
	m.Write([]byte(bare))
	return lowerBase32.EncodeToString(m.Sum(nil)[:10])
}

// macLen is the length of the truncated HMAC in a token (128 bits).
const macLen = 16

func (s *signer) mac(payload []byte, filename string) []byte {
	m := hmac.New(sha256.New, s.tokenKey)
	m.Write(payload)
	m.Write([]byte{0})
	m.Write([]byte(filename))
	return m.Sum(nil)[:macLen]
}

// encode returns the token's URL segment: base64url(payload) "." base64url(mac). The payload fields are
// separated by NUL, which none of them may contain.
func (s *signer) encode(t token, filename string) string {
	var p []byte
	if t.Put {
		p = append(p, 'p', 0)
		p = append(p, t.Dir...)
		p = append(p, 0)
		p = strconv.AppendInt(p, t.Size, 10)
		p = append(p, 0)
		p = append(p, t.ContentType...)
		p = append(p, 0)
		p = strconv.AppendInt(p, t.Expires.Unix(), 10)
	} else {
		p = append(p, 'g', 0)
		p = append(p, t.Dir...)
		p = append(p, 0)
		p = append(p, t.ContentType...)
	}
	return base64.RawURLEncoding.EncodeToString(p) + "." + base64.RawURLEncoding.EncodeToString(s.mac(p, filename))
}

// decode checks the signature over the token segment and the file name and returns the token. It does not
// check expiry.
func (s *signer) decode(seg, filename string) (token, error) {
	b64, sig, ok := strings.Cut(seg, ".")
	if !ok || len(b64) > 2048 {
		return token{}, errBadToken
	}
	p, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return token{}, errBadToken
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(mac, s.mac(p, filename)) {
		return token{}, errBadToken
	}
	f := bytes.Split(p, []byte{0})
	var t token
	switch {
	case len(f) == 5 && string(f[0]) == "p":
		t.Put = true
		t.Dir, t.ContentType = string(f[1]), string(f[3])
		if t.Size, err = strconv.ParseInt(string(f[2]), 10, 64); err != nil || t.Size <= 0 {
			return token{}, errBadToken
		}
		exp, err := strconv.ParseInt(string(f[4]), 10, 64)
		if err != nil {
			return token{}, errBadToken
		}
		t.Expires = time.Unix(exp, 0)
	case len(f) == 3 && string(f[0]) == "g":
		t.Dir, t.ContentType = string(f[1]), string(f[2])
	default:
		return token{}, errBadToken
	}
	// A valid signature means we made it; checking again keeps a leaked or future-format secret from
	// reaching the file system with a bad key.
	if !validKey(t.Key(filename)) || validContentType(t.ContentType) != nil {
		return token{}, errBadToken
	}
	return t, nil
}

// splitPath takes the escaped URL path of a request and returns its token segment and unescaped file name.
// The path must be exactly Prefix + token + "/" + filename; a "/" inside the file name must not be there,
// escaped or not.
func splitPath(escaped string) (tok, filename string, err error) {
	rest, ok := strings.CutPrefix(escaped, Prefix)
	if !ok {
		return "", "", errBadPath
	}
	tok, name, ok := strings.Cut(rest, "/")
	if !ok || tok == "" || name == "" || strings.Contains(name, "/") {
		return "", "", errBadPath
	}
	filename, err = url.PathUnescape(name)
	if err != nil || validFilename(filename) != nil {
		return "", "", errBadPath
	}
	return tok, filename, nil
}

// uploadPath is the inverse of splitPath.
func uploadPath(tok, filename string) string {
	return Prefix + tok + "/" + url.PathEscape(filename)
}

// validFilename reports why a file name from a slot request is not acceptable: it must be one path segment of
// valid UTF-8, at most 255 bytes, without control characters or the bidirectional overrides that disguise a
// name's extension.
func validFilename(name string) error {
	switch {
	case name == "":
		return errors.New("the file name is empty")
	case len(name) > maxFilenameBytes:
		return errors.New("the file name is longer than 255 bytes")
	case !utf8.ValidString(name):
		return errors.New("the file name is not valid UTF-8")
	case name == "." || name == "..":
		return errors.New("the file name is not a name")
	case strings.ContainsAny(name, "/\\"):
		return errors.New("the file name contains a path separator")
	}
	for _, r := range name {
		if unicode.IsControl(r) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f {
			return errors.New("the file name contains control characters")
		}
	}
	return nil
}

// validContentType reports why a content type from a slot request is not acceptable: it must be a MIME type
// (RFC 2045) in printable ASCII, at most 255 bytes.
func validContentType(ct string) error {
	if len(ct) > maxContentTypeBytes {
		return errors.New("the content type is longer than 255 bytes")
	}
	for i := 0; i < len(ct); i++ {
		if ct[i] < 0x20 || ct[i] > 0x7e {
			return errors.New("the content type contains characters outside printable ASCII")
		}
	}
	if mt, _, err := mime.ParseMediaType(ct); err != nil || !strings.Contains(mt, "/") {
		return errors.New("the content type is not a MIME type")
	}
	return nil
}

// sameContentType reports whether the Content-Type of a PUT is the slot's: equal, or the same media type and
// parameters written differently (case of the type, spacing).
func sameContentType(got, want string) bool {
	if got == want {
		return true
	}
	gt, gp, err1 := mime.ParseMediaType(got)
	wt, wp, err2 := mime.ParseMediaType(want)
	if err1 != nil || err2 != nil || gt != wt || len(gp) != len(wp) {
		return false
	}
	for k, v := range wp {
		if gp[k] != v {
			return false
		}
	}
	return true
}

// validKey reports whether a key is "/"-separated segments that are each a valid file name, so that joining it
// to a directory cannot leave that directory, and whose first segment does not start with a dot (the local
// store keeps its temporary files in ".tmp").
func validKey(key string) bool {
	if key == "" || len(key) > 1024 || key[0] == '.' {
		return false
	}
	for _, seg := range strings.Split(key, "/") {
		if validFilename(seg) != nil {
			return false
		}
	}
	return true
}
