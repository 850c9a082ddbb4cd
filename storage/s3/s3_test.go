package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"parley.im/parley/storage"
)

// The full storage.Blobs contract (PUT refusals, GET, List, Delete, expiry) runs against this driver in
// httpupload's TestBlobsS3; these tests cover what is particular to S3.

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "s3.bucket"},
		{Config{Bucket: "b", Endpoint: "127.0.0.1:9000"}, "s3.endpoint"},
		{Config{Bucket: "b", PublicBaseURL: "cdn.example"}, "s3.public_base_url"},
		{Config{Bucket: "b", AccessKey: "k"}, "s3.access_key"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}

func TestNoCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	if _, err := New(Config{Bucket: "b"}); err == nil {
		t.Fatal("New without credentials succeeded")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKID")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SECRET")
	if _, err := New(Config{Bucket: "b"}); err != nil {
		t.Fatalf("New with credentials from the environment: %v", err)
	}
}

// TestPresignSigns checks, without a server, that a PUT URL signs the length and type and that addressing
// follows path_style.
func TestPresignSigns(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cfg      Config
		wantHost string
		wantPath string
	}{
		{Config{Endpoint: "http://127.0.0.1:9000", Bucket: "media", AccessKey: "k", SecretKey: "s", PathStyle: true},
			"127.0.0.1:9000", "/media/o/s/a%20b.jpg"},
		{Config{Region: "eu-west-1", Bucket: "media", AccessKey: "k", SecretKey: "s"},
			"media.s3.eu-west-1.amazonaws.com", "/o/s/a%20b.jpg"},
	} {
		st, err := New(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		raw, hdr, err := st.PresignPut(ctx, "o/s/a b.jpg", 1234, "image/jpeg", 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(raw)
		if u.Host != tc.wantHost || u.EscapedPath() != tc.wantPath {
			t.Errorf("PUT URL %s: host %s path %s, want %s %s", raw, u.Host, u.EscapedPath(), tc.wantHost, tc.wantPath)
		}
		q := u.Query()
		if q.Get("X-Amz-SignedHeaders") != "content-length;content-type;host" || q.Get("X-Amz-Expires") != "600" {
			t.Errorf("PUT URL signs %q for %s s", q.Get("X-Amz-SignedHeaders"), q.Get("X-Amz-Expires"))
		}
		if len(hdr) != 0 {
			t.Errorf("headers to send: %v", hdr)
		}
		g, err := st.GetURL(ctx, "o/s/page.html", "text/html", 30*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		gu, _ := url.Parse(g)
		if gq := gu.Query(); gq.Get("X-Amz-Expires") != fmt.Sprint(int(MaxPresign.Seconds())) ||
			gq.Get("response-content-disposition") != "attachment; filename=page.html" || gq.Get("response-content-type") != "text/html" {
			t.Errorf("GET URL %s", g)
		}
	}
	st, _ := New(Config{Bucket: "b", AccessKey: "k", SecretKey: "s", PublicBaseURL: "https://cdn.example/up/"})
	if g, _ := st.GetURL(ctx, "o/s/a b#1.jpg", "image/jpeg", time.Hour); g != "https://cdn.example/up/o/s/a%20b%231.jpg" {
		t.Errorf("public GET URL %s", g)
	}
}

func fromEnv(t testing.TB) *Store {
	t.Helper()
	endpoint := os.Getenv("PARLEY_TEST_S3_ENDPOINT")
	if endpoint == "" {
		if os.Getenv("PARLEY_REQUIRE_SERVICES") == "1" {
			t.Fatal("PARLEY_TEST_S3_ENDPOINT not set and PARLEY_REQUIRE_SERVICES=1: run eval \"$(scripts/s3.sh start)\"")
		}
		t.Skip("PARLEY_TEST_S3_ENDPOINT not set: S3 tests skipped (eval \"$(scripts/s3.sh start)\" runs them)")
	}
	st, err := New(Config{Endpoint: endpoint, Bucket: os.Getenv("PARLEY_TEST_S3_BUCKET"), Region: os.Getenv("PARLEY_TEST_S3_REGION"),
		AccessKey: os.Getenv("PARLEY_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("PARLEY_TEST_S3_SECRET_KEY"),
		PathStyle: os.Getenv("PARLEY_TEST_S3_VIRTUAL_HOSTED") != "1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

func randomPrefix(t testing.TB, st *Store) string {
	var b [6]byte
	rand.Read(b[:])
	p := "s3test-" + hex.EncodeToString(b[:]) + "/"
	t.Cleanup(func() {
		ctx := context.Background()
		st.List(ctx, p, func(i storage.BlobInfo) error { return st.Delete(ctx, i.Key) })
	})
	return p
}

func putURL(t testing.TB, u, ct string, body []byte) {
	req, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %s", resp.Status)
	}
}

// TestListStops checks that List stops at the first error fn returns, and returns it.
func TestListStops(t *testing.T) {
	st := fromEnv(t)
	ctx := context.Background()
	p := randomPrefix(t, st)
	for i := range 3 {
		u, _, err := st.PresignPut(ctx, fmt.Sprintf("%s%d", p, i), 1, "text/plain", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		putURL(t, u, "text/plain", []byte("x"))
	}
	stop := fmt.Errorf("stop")
	n := 0
	err := st.List(ctx, p, func(storage.BlobInfo) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("List = %v after %d calls, want the callback's error after 1", err, n)
	}
}

// BenchmarkPut measures a client's PUT of 1 MiB and 50 MiB straight to the store through a presigned URL:
// what an upload costs when Parley is not in the byte path. The sizes are BenchmarkUploadLocal's in
// package httpupload, so the two compare.
func BenchmarkPut(b *testing.B) {
	st := fromEnv(b)
	ctx := context.Background()
	p := randomPrefix(b, st)
	for _, size := range []int{1 << 20, 50 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			body := make([]byte, size)
			rand.Read(body)
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				u, _, err := st.PresignPut(ctx, fmt.Sprintf("%s%d-%d", p, size, i), int64(size), "application/octet-stream", time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				putURL(b, u, "application/octet-stream", body)
				i++
			}
		})
	}
}
