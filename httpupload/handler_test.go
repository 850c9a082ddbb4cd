package httpupload

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func do(t *testing.T, method, url string, hdr map[string]string, body io.Reader, length int64) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// storedFiles lists every file under the upload directory, temporary ones included.
func storedFiles(t *testing.T, dir string) []string {
	var out []string
	filepath.WalkDir(filepath.Join(dir, "uploads"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestHandlerRefusals(t *testing.T) {
	e := newEnv(t, Config{})
	s := e.slot(t, alice, "a.png", 10, "image/png")
	ten := bytes.Repeat([]byte("x"), 10)
	ct := map[string]string{"Content-Type": "image/png"}

	tamperedPut := strings.Replace(s.Put.URL, "/a.png", "/b.png", 1)
	seg := strings.TrimPrefix(s.Put.URL, e.srv.URL+Prefix)
	flip := byte('A')
	if seg[5] == 'A' {
		flip = 'B'
	}
	flipped := e.srv.URL + Prefix + seg[:5] + string(flip) + seg[6:]

	for _, tc := range []struct {
		name   string
		method string
		url    string
		hdr    map[string]string
		body   []byte
		length int64
		want   int
	}{
		{"wrong content type", "PUT", s.Put.URL, map[string]string{"Content-Type": "image/jpeg"}, ten, 10, 400},
		{"no content type", "PUT", s.Put.URL, nil, ten, 10, 400},
		{"larger body", "PUT", s.Put.URL, ct, bytes.Repeat([]byte("x"), 11), 11, 413},
		{"smaller body", "PUT", s.Put.URL, ct, ten[:9], 9, 400},
		{"chunked body", "PUT", s.Put.URL, ct, ten, -1, 411},
		{"other file name", "PUT", tamperedPut, ct, ten, 10, 403},
		{"flipped signature byte", "PUT", flipped, ct, ten, 10, 403},
		{"GET with the PUT URL", "GET", s.Put.URL, nil, nil, 0, 403},
		{"PUT with the GET URL", "PUT", s.Get.URL, ct, ten, 10, 403},
		{"traversal", "GET", e.srv.URL + Prefix + "x/..%2F..%2Fparley.db", nil, nil, 0, 400},
		{"traversal dot dot", "GET", e.srv.URL + Prefix + "x/%2E%2E", nil, nil, 0, 400},
		{"extra segment", "GET", e.srv.URL + Prefix + "x/y/z", nil, nil, 0, 400},
		{"garbage token", "GET", e.srv.URL + Prefix + "not-a-token/a.png", nil, nil, 0, 403},
		{"GET before PUT", "GET", s.Get.URL, nil, nil, 0, 404},
		{"DELETE", "DELETE", s.Get.URL, nil, nil, 0, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != nil {
				body = bytes.NewReader(tc.body)
				if tc.length < 0 {
					body = io.MultiReader(body) // hides the length: the client sends it chunked
				}
			}
			resp := do(t, tc.method, tc.url, tc.hdr, body, tc.length)
			if resp.StatusCode != tc.want {
				t.Errorf("%s: %s, want %d", tc.name, resp.Status, tc.want)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: error response without nosniff", tc.name)
			}
		})
	}
	if files := storedFiles(t, e.dir); len(files) != 0 {
		t.Fatalf("refused PUTs left files: %v", files)
	}
	// The slot is still usable after all that.
	if resp := do(t, "PUT", s.Put.URL, ct, bytes.NewReader(ten), 10); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	if resp := do(t, "PUT", s.Put.URL, ct, bytes.NewReader(ten), 10); resp.StatusCode != http.StatusConflict {
		t.Fatalf("second PUT: %s, want 409", resp.Status)
	}
}

func TestPutExpired(t *testing.T) {
	e := newEnv(t, Config{PutTTL: time.Minute})
	s := e.slot(t, alice, "a", 1, "")
	e.m.disk.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if resp := do(t, "PUT", s.Put.URL, map[string]string{"Content-Type": "application/octet-stream"}, strings.NewReader("x"), 1); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired PUT: %s, want 403", resp.Status)
	}
}

// TestPutTruncated: a client that announces a length, sends less and hangs up stores nothing.
func TestPutTruncated(t *testing.T) {
	e := newEnv(t, Config{})
	s := e.slot(t, alice, "a", 1000, "")
	path := strings.TrimPrefix(s.Put.URL, e.srv.URL)
	c, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n%s", path, strings.Repeat("y", 500))
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		files := storedFiles(t, e.dir)
		if len(files) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a truncated PUT left %v", files)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The slot can still be used.
	if resp := do(t, "PUT", s.Put.URL, map[string]string{"Content-Type": "application/octet-stream"}, bytes.NewReader(make([]byte, 1000)), 1000); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT after a truncated one: %s", resp.Status)
	}
}

// TestPutRace: of several PUTs racing for one slot, exactly one is stored.
func TestPutRace(t *testing.T) {
	e := newEnv(t, Config{})
	s := e.slot(t, alice, "a", 1<<16, "")
	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := bytes.Repeat([]byte{byte('a' + i)}, 1<<16)
			resp := do(t, "PUT", s.Put.URL, map[string]string{"Content-Type": "application/octet-stream"}, bytes.NewReader(body), 1<<16)
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	created := 0
	for c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
		default:
			t.Errorf("racing PUT: %d", c)
		}
	}
	if created != 1 {
		t.Fatalf("%d PUTs stored, want 1", created)
	}
	_, b := get(t, s.Get.URL)
	if len(b) != 1<<16 || !bytes.Equal(b, bytes.Repeat(b[:1], 1<<16)) {
		t.Fatalf("stored file mixes bodies")
	}
}

func TestGetRangeAndHead(t *testing.T) {
	e := newEnv(t, Config{})
	s := e.slot(t, alice, "a.txt", 10, "text/plain")
	put(t, s.Put.URL, "text/plain", []byte("0123456789"))
	req, _ := http.NewRequest("GET", s.Get.URL, nil)
	req.Header.Set("Range", "bytes=2-4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(b) != "234" {
		t.Errorf("range: %s %q", resp.Status, b)
	}
	resp, err = http.Head(s.Get.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 10 {
		t.Errorf("HEAD: %s, length %d", resp.Status, resp.ContentLength)
	}
}

func TestCORSPreflight(t *testing.T) {
	e := newEnv(t, Config{})
	s := e.slot(t, alice, "a", 1, "")
	resp := do(t, "OPTIONS", s.Put.URL, map[string]string{"Origin": "https://web.example", "Access-Control-Request-Method": "PUT"}, nil, 0)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PUT") {
		t.Fatalf("preflight: %s %v", resp.Status, resp.Header)
	}
}
