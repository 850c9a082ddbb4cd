package httpupload

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func testSigner() *signer { return newSigner([]byte("0123456789abcdef0123456789abcdef")) }

func TestTokenRoundTrip(t *testing.T) {
	s := testSigner()
	exp := time.Unix(1_900_000_000, 0)
	for _, tc := range []struct {
		tok  token
		name string
	}{
		{token{Put: true, Dir: "aaaa/bbbb", Size: 12345, ContentType: "image/jpeg", Expires: exp}, "très cool.jpg"},
		{token{Dir: "aaaa/bbbb", ContentType: "text/plain; charset=utf-8"}, "a b+c%d?.txt"},
		{token{Put: true, Dir: "o/s", Size: 1, ContentType: "application/octet-stream", Expires: exp}, "x"},
	} {
		seg := s.encode(tc.tok, tc.name)
		p := uploadPath(seg, tc.name)
		gotSeg, gotName, err := splitPath(p)
		if err != nil || gotSeg != seg || gotName != tc.name {
			t.Fatalf("splitPath(%q) = %q, %q, %v", p, gotSeg, gotName, err)
		}
		got, err := s.decode(gotSeg, gotName)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if got.Put != tc.tok.Put || got.Dir != tc.tok.Dir || got.Size != tc.tok.Size || got.ContentType != tc.tok.ContentType ||
			!got.Expires.Equal(tc.tok.Expires) {
			t.Fatalf("decode = %+v, want %+v", got, tc.tok)
		}
	}
}

func TestTokenTampered(t *testing.T) {
	s := testSigner()
	tok := token{Put: true, Dir: "aaaa/bbbb", Size: 10, ContentType: "image/png", Expires: time.Now().Add(time.Hour)}
	seg := s.encode(tok, "a.png")
	if _, err := s.decode(seg, "b.png"); err == nil {
		t.Error("another file name was accepted")
	}
	if _, err := newSigner([]byte("another secret, another key....")).decode(seg, "a.png"); err == nil {
		t.Error("a token signed with another secret was accepted")
	}
	// Flip each character of the segment in turn: none may still verify.
	for i := range seg {
		b := []byte(seg)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		if got, err := s.decode(string(b), "a.png"); err == nil && (got.Size != tok.Size || got.Dir != tok.Dir) {
			t.Fatalf("tampered token %q verified as %+v", b, got)
		}
	}
	// A bigger size with the old signature.
	other := s.encode(token{Put: true, Dir: "aaaa/bbbb", Size: 1 << 40, ContentType: "image/png", Expires: tok.Expires}, "a.png")
	payload, _, _ := strings.Cut(other, ".")
	_, sig, _ := strings.Cut(seg, ".")
	if _, err := s.decode(payload+"."+sig, "a.png"); err == nil {
		t.Error("payload swapped under a signature was accepted")
	}
}

func TestSplitPathRefuses(t *testing.T) {
	for _, p := range []string{
		"/upload/", "/upload/tok", "/upload/tok/", "/upload//name", "/upload/tok/a/b", "/upload/tok/a%2Fb",
		"/upload/tok/..", "/upload/tok/%2E%2E", "/upload/tok/.", "/upload/tok/a%5Cb", "/upload/tok/a%00b",
		"/download/tok/name", "/upload/tok/%ZZ", "/upload/tok/%E2%80%AEgpj.exe",
	} {
		if tok, name, err := splitPath(p); err == nil {
			t.Errorf("splitPath(%q) = %q, %q; want an error", p, tok, name)
		}
	}
}

func TestValidFilename(t *testing.T) {
	good := []string{"a", "photo.jpg", "très cool.jpg", "日本語.txt", ".hidden", "a b", "x" + strings.Repeat("y", 254)}
	bad := []string{"", ".", "..", "a/b", `a\b`, "a\x00b", "a\nb", "\x7f", strings.Repeat("y", 256), "\xff\xfe",
		"evil\u202egpj.exe", "a\u2066b"}
	for _, n := range good {
		if err := validFilename(n); err != nil {
			t.Errorf("validFilename(%q) = %v", n, err)
		}
	}
	for _, n := range bad {
		if validFilename(n) == nil {
			t.Errorf("validFilename(%q) accepted", n)
		}
	}
}

func TestValidContentType(t *testing.T) {
	for _, ct := range []string{"image/jpeg", "text/plain; charset=utf-8", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"} {
		if err := validContentType(ct); err != nil {
			t.Errorf("validContentType(%q) = %v", ct, err)
		}
	}
	for _, ct := range []string{"", "jpeg", "image/jpeg\r\nX-Evil: 1", "text/plain; charset=\"é\"", "a/" + strings.Repeat("b", 300), "/"} {
		if validContentType(ct) == nil {
			t.Errorf("validContentType(%q) accepted", ct)
		}
	}
	if !sameContentType("Image/JPEG", "image/jpeg") || !sameContentType("text/plain;charset=utf-8", "text/plain; charset=utf-8") {
		t.Error("sameContentType refuses equivalent types")
	}
	if sameContentType("image/png", "image/jpeg") || sameContentType("text/plain", "text/plain; charset=utf-8") || sameContentType("", "image/png") {
		t.Error("sameContentType accepts different types")
	}
}

func TestValidKey(t *testing.T) {
	for _, k := range []string{"a/b/c.txt", "abc/def/très cool.jpg"} {
		if !validKey(k) {
			t.Errorf("validKey(%q) = false", k)
		}
	}
	for _, k := range []string{"", "/a", "a/", "a//b", "a/../b", "../a", ".tmp/x/y", "a/./b", "a/b\x00/c"} {
		if validKey(k) {
			t.Errorf("validKey(%q) = true", k)
		}
	}
}

// FuzzUploadPath feeds arbitrary request paths to the path and token parser: it must not panic, and whatever
// it accepts must name a key inside the store and round-trip.
func FuzzUploadPath(f *testing.F) {
	s := testSigner()
	exp := time.Unix(1_900_000_000, 0)
	f.Add(uploadPath(s.encode(token{Put: true, Dir: "aaaa/bbbb", Size: 42, ContentType: "image/png", Expires: exp}, "x.png"), "x.png"))
	f.Add(uploadPath(s.encode(token{Dir: "aaaa/bbbb", ContentType: "text/plain"}, "très cool.txt"), "très cool.txt"))
	f.Add("/upload/abc.def/..%2F..%2Fetc%2Fpasswd")
	f.Add("/upload/" + strings.Repeat("A", 3000) + ".x/y")
	f.Add("/upload/cA.AAAA/a")
	f.Fuzz(func(t *testing.T, p string) {
		seg, name, err := splitPath(p)
		if err != nil {
			return
		}
		if validFilename(name) != nil || strings.Contains(seg, "/") {
			t.Fatalf("splitPath(%q) accepted %q, %q", p, seg, name)
		}
		tok, err := s.decode(seg, name)
		if err != nil {
			return
		}
		key := tok.Key(name)
		if !validKey(key) || strings.Contains(key, "..") && strings.Contains("/"+key+"/", "/../") {
			t.Fatalf("decoded key %q escapes the store", key)
		}
		if again := s.encode(tok, name); again != seg {
			// Same token, same encoding: any other accepted form would be a second signature for one grant.
			if t2, err := s.decode(again, name); err != nil || t2 != tok {
				t.Fatalf("re-encoding %+v does not verify", tok)
			}
		}
	})
}

// FuzzToken signs arbitrary payloads, as a holder of the secret could: decode must not panic, and what it
// accepts must name a key inside the store with a valid content type.
func FuzzToken(f *testing.F) {
	s := testSigner()
	f.Add([]byte("p\x00aaaa/bbbb\x0042\x00image/png\x001900000000"), "x.png")
	f.Add([]byte("g\x00aaaa/bbbb\x00text/plain"), "a b")
	f.Add([]byte("p\x00../..\x00-1\x00x\x00y"), "..")
	f.Fuzz(func(t *testing.T, payload []byte, filename string) {
		seg := base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload, filename))
		tok, err := s.decode(seg, filename)
		if err != nil {
			return
		}
		if !validKey(tok.Key(filename)) || validContentType(tok.ContentType) != nil || (tok.Put && tok.Size <= 0) {
			t.Fatalf("decode accepted %+v for %q", tok, filename)
		}
	})
}
