package httpupload

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"parley.im/parley/storage"
	"parley.im/parley/storage/s3"
)

// The backend contract: every storage.Blobs behind the upload service passes testBlobs. It runs against the
// local backend here and against a real S3-compatible store when PARLEY_TEST_S3_ENDPOINT is set
// (scripts/s3.sh starts one).

// s3FromEnv returns the test store of PARLEY_TEST_S3_*, under a key prefix of its own, skipping the test when there is none (failing with
// PARLEY_REQUIRE_SERVICES=1).
func s3FromEnv(t testing.TB) (*s3.Store, s3.Config) {
	t.Helper()
	endpoint := os.Getenv("PARLEY_TEST_S3_ENDPOINT")
	if endpoint == "" {
		if os.Getenv("PARLEY_REQUIRE_SERVICES") == "1" {
			t.Fatal("PARLEY_TEST_S3_ENDPOINT not set and PARLEY_REQUIRE_SERVICES=1: run eval \"$(scripts/s3.sh start)\"")
		}
		t.Skip("PARLEY_TEST_S3_ENDPOINT not set: S3 tests skipped (eval \"$(scripts/s3.sh start)\" runs them)")
	}
	cfg := s3.Config{
		Endpoint:  endpoint,
		Bucket:    os.Getenv("PARLEY_TEST_S3_BUCKET"),
		AccessKey: os.Getenv("PARLEY_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("PARLEY_TEST_S3_SECRET_KEY"),
		Region:    os.Getenv("PARLEY_TEST_S3_REGION"),
		PathStyle: os.Getenv("PARLEY_TEST_S3_VIRTUAL_HOSTED") != "1",
	}
	// Every test has its own part of the shared bucket: a sweep there cannot touch another test's files.
	var r [8]byte
	rand.Read(r[:])
	cfg.Prefix = "test-" + lowerBase32.EncodeToString(r[:]) + "/"
	st, err := s3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("S3 at %s: %v", endpoint, err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		st.List(ctx, "", func(i storage.BlobInfo) error { return st.Delete(ctx, i.Key) })
	})
	return st, cfg
}

// testPrefix is a key prefix no other test run uses, removed when the test ends.
func testPrefix(t testing.TB, b storage.Blobs) string {
	var r [8]byte
	rand.Read(r[:])
	p := "t" + lowerBase32.EncodeToString(r[:])
	t.Cleanup(func() {
		ctx := context.Background()
		b.List(ctx, p+"/", func(i storage.BlobInfo) error { return b.Delete(ctx, i.Key) })
	})
	return p
}

func TestBlobsDisk(t *testing.T) {
	d, err := newDisk(t.TempDir(), testSigner(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&handler{sign: d.sign, disk: d})
	t.Cleanup(srv.Close)
	testBlobs(t, d, srv.URL)
}

func TestBlobsS3(t *testing.T) {
	st, _ := s3FromEnv(t)
	testBlobs(t, st, "")
}

func testBlobs(t *testing.T, b storage.Blobs, base string) {
	ctx := context.Background()
	abs := func(u string) string {
		if strings.HasPrefix(u, "/") {
			return base + u
		}
		return u
	}
	prefix := testPrefix(t, b)
	// doPut returns the status, or 999 when the store hung up before the body was sent (which S3 stores do
	// when they refuse a PUT from its headers).
	doPut := func(t *testing.T, u, ct string, body []byte) int {
		t.Helper()
		req, _ := http.NewRequest("PUT", abs(u), bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Logf("PUT: %v", err)
			return 999
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	list := func(t *testing.T, p string) map[string]storage.BlobInfo {
		t.Helper()
		out := make(map[string]storage.BlobInfo)
		if err := b.List(ctx, p, func(i storage.BlobInfo) error { out[i.Key] = i; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}

	for _, tc := range []struct {
		name string
		size int
		ct   string
	}{
		{"one byte.bin", 1, "application/octet-stream"},
		{"très cool+1 (2).jpg", 1 << 20, "image/jpeg"},
		{"notes.txt", 1000, "text/plain; charset=utf-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := prefix + "/s" + lowerBase32.EncodeToString([]byte(tc.name))[:10] + "/" + tc.name
			body := make([]byte, tc.size)
			rand.Read(body)
			u, hdr, err := b.PresignPut(ctx, key, int64(tc.size), tc.ct, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(hdr) != 0 {
				t.Errorf("PresignPut wants headers %v; XEP-0363 clients only send Authorization, Cookie, Expires", hdr)
			}
			// A body of another length or type is refused, and stores nothing.
			if c := doPut(t, u, tc.ct, append(body, 'x')); c < 400 {
				t.Errorf("PUT of %d bytes into a %d-byte slot: %d", tc.size+1, tc.size, c)
			}
			if tc.size > 1 {
				if c := doPut(t, u, tc.ct, body[:tc.size-1]); c < 400 {
					t.Errorf("PUT of a shorter body: %d", c)
				}
			}
			if c := doPut(t, u, "text/html", body); c < 400 {
				t.Errorf("PUT with another content type: %d", c)
			}
			if _, ok := list(t, key)[key]; ok {
				t.Fatalf("a refused PUT stored %s", key)
			}
			if c := doPut(t, u, tc.ct, body); c != 200 && c != 201 {
				t.Fatalf("PUT: %d", c)
			}
			info, ok := list(t, prefix+"/")[key]
			if !ok || info.Size != int64(tc.size) || time.Since(info.Modified) > time.Minute || time.Until(info.Modified) > time.Minute {
				t.Fatalf("List after PUT: %+v, %v", info, ok)
			}
			g, err := b.GetURL(ctx, key, tc.ct, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.Get(abs(g))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(got, body) {
				t.Fatalf("GET: %s, %d bytes, identical %v", resp.Status, len(got), bytes.Equal(got, body))
			}
			if ct := resp.Header.Get("Content-Type"); ct != tc.ct {
				t.Errorf("GET Content-Type %q, want %q", ct, tc.ct)
			}
			if err := b.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			if _, ok := list(t, prefix+"/")[key]; ok {
				t.Fatal("listed after Delete")
			}
			resp, err = http.Get(abs(g))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 404 && resp.StatusCode != 403 {
				t.Errorf("GET after Delete: %s", resp.Status)
			}
			if err := b.Delete(ctx, key); err != nil {
				t.Errorf("Delete of an absent key: %v", err)
			}
		})
	}

	t.Run("list by prefix", func(t *testing.T) {
		keys := []string{prefix + "/aa/x", prefix + "/ab/y", prefix + "/b/z"}
		for _, k := range keys {
			u, _, err := b.PresignPut(ctx, k, 1, "text/plain", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if c := doPut(t, u, "text/plain", []byte("1")); c != 200 && c != 201 {
				t.Fatalf("PUT %s: %d", k, c)
			}
		}
		if got := list(t, prefix+"/a"); len(got) != 2 {
			t.Errorf("List(%s/a) = %v, want 2 keys", prefix, got)
		}
		if got := list(t, prefix+"/b/"); len(got) != 1 {
			t.Errorf("List(%s/b/) = %v, want 1 key", prefix, got)
		}
		if got := list(t, prefix+"/nothing/"); len(got) != 0 {
			t.Errorf("List of an empty prefix = %v", got)
		}
	})

	t.Run("expired PUT URL", func(t *testing.T) {
		key := prefix + "/exp/late.txt"
		u, _, err := b.PresignPut(ctx, key, 1, "text/plain", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2100 * time.Millisecond)
		if c := doPut(t, u, "text/plain", []byte("1")); c != 403 {
			t.Errorf("PUT after the URL expired: %d, want 403", c)
		}
	})
}
