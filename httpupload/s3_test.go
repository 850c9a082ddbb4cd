package httpupload

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/storage/s3"
	"parley.im/parley/xmpp/module"
)

// S3Config must stay convertible to s3.Config: cmd/parley converts one to the other.
var _ = s3.Config(S3Config{})

func newS3Env(t *testing.T, cfg Config) (*env, *s3.Store) {
	t.Helper()
	st, scfg := s3FromEnv(t)
	e := &env{router: &fakeRouter{}, dir: t.TempDir()}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	cfg.PublicURL = e.srv.URL
	cfg.Backend = "s3"
	cfg.S3 = S3Config(scfg)
	m, err := New(context.Background(), cfg, Deps{Domain: "example.net", Blobs: st, KV: &memKV{}})
	if err != nil {
		t.Fatal(err)
	}
	reg := module.NewRegistry()
	if err := reg.Register([]module.Module{m}, e.router, jid.MustParse("example.net"), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	mux.Handle(Prefix, m.Handler())
	e.m = m
	return e, st
}

// TestS3Slot: the slot's PUT URL goes to the store, its GET URL to Parley, which redirects to a presigned URL.
func TestS3Slot(t *testing.T) {
	e, _ := newS3Env(t, Config{MaxFileSize: 1 << 20, QuotaPerUser: 1 << 20})
	body := make([]byte, 1000)
	rand.Read(body)
	s := e.slot(t, alice, "photo 1.jpg", int64(len(body)), "image/jpeg")
	if strings.HasPrefix(s.Put.URL, e.srv.URL) || !strings.HasPrefix(s.Get.URL, e.srv.URL+Prefix) {
		t.Fatalf("slot: %+v", s)
	}
	if resp := put(t, s.Put.URL, "image/png", body); resp.StatusCode != http.StatusForbidden {
		t.Errorf("PUT with another content type: %s", resp.Status)
	}
	if resp := put(t, s.Put.URL, "image/jpeg", body); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %s", resp.Status)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(s.Get.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "X-Amz-Signature=") {
		t.Fatalf("GET through Parley: %s, Location %s", resp.Status, resp.Header.Get("Location"))
	}
	resp, got := get(t, s.Get.URL)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET: %s, %d bytes", resp.Status, len(got))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "image/jpeg" {
		t.Errorf("Content-Type %q", ct)
	}
	// The stored file counts against the quota: 1 MiB - 1000 bytes are left.
	if r := e.iq(t, alice, request("big", 1<<20-999, "")); r.Type != "error" || !strings.Contains(string(r.Raw), "Quota") {
		t.Fatalf("quota over S3: %s", r.Raw)
	}
	e.slot(t, alice, "fits", 1<<20-1000, "")
}

func TestS3Sweep(t *testing.T) {
	e, st := newS3Env(t, Config{Retention: time.Hour})
	s := e.slot(t, alice, "a.txt", 3, "text/plain")
	if resp := put(t, s.Put.URL, "text/plain", []byte("abc")); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %s", resp.Status)
	}
	owner := e.m.sign.ownerID(alice.Bare().String())
	count := func() int {
		n := 0
		st.List(context.Background(), owner+"/", func(storage.BlobInfo) error { n++; return nil })
		return n
	}
	if n, _, err := e.m.Sweep(context.Background()); err != nil || count() != 1 {
		t.Fatalf("a fresh file was swept: %d, %v", n, err)
	}
	e.m.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, _, err := e.m.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if count() != 0 {
		t.Fatal("an expired file is still in the bucket")
	}
	if resp, _ := get(t, s.Get.URL); resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET after expiry: %s", resp.Status)
	}
}
