package conformance

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// XEP-0363 HTTP File Upload, black-box: a client finds the upload service through disco, asks it for slots,
// PUTs the file where the slot says and GETs it back byte for byte, on the local backend (Parley's HTTP
// listener) and on S3 (the bytes go to the store; PARLEY_TEST_S3_* from scripts/s3.sh, else skipped).

// uploadServer starts Parley with its HTTP listener on a free port and the upload service configured by
// extra (YAML lines indented under httpupload:).
func uploadServer(t *testing.T, backend, extra string) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	// The harness writes the listen: block; the environment adds the HTTP listener to it.
	t.Setenv("PARLEY_LISTEN_HTTPS", "127.0.0.1:"+port)
	public := "https://localhost:" + port
	conf := "httpupload:\n  public_url: " + public + "\n  backend: " + backend + "\n"
	if backend == "s3" {
		endpoint := os.Getenv("PARLEY_TEST_S3_ENDPOINT")
		if endpoint == "" {
			if os.Getenv("PARLEY_REQUIRE_SERVICES") == "1" {
				t.Fatal("PARLEY_TEST_S3_ENDPOINT not set and PARLEY_REQUIRE_SERVICES=1: run eval \"$(scripts/s3.sh start)\"")
			}
			t.Skip("PARLEY_TEST_S3_ENDPOINT not set: S3 upload tests skipped (eval \"$(scripts/s3.sh start)\" runs them)")
		}
		var r [6]byte
		rand.Read(r[:])
		conf += fmt.Sprintf("  s3:\n    endpoint: %s\n    bucket: %s\n    access_key: %s\n    secret_key: %s\n    path_style: true\n    prefix: conformance-%x/\n",
			endpoint, os.Getenv("PARLEY_TEST_S3_BUCKET"), os.Getenv("PARLEY_TEST_S3_ACCESS_KEY"), os.Getenv("PARLEY_TEST_S3_SECRET_KEY"), r)
	}
	srv := Start(t, conf+extra)
	if srv.Addrs["https"] == "" {
		t.Fatalf("parley has no HTTP listener (listen.http); ready file: %v", srv.Addrs)
	}
	return srv, public
}

// httpClient trusts the server's certificate for the HTTP listener, and the system roots otherwise (S3 on
// plain HTTP here).
func httpClient(srv *Server) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = srv.TLSConfig()
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

type uploadSlot struct {
	Put slotPut `xml:"slot>put"`
	Get struct {
		URL string `xml:"url,attr"`
	} `xml:"slot>get"`
}

type slotPut struct {
	URL     string `xml:"url,attr"`
	Headers []struct {
		Name  string `xml:"name,attr"`
		Value string `xml:",chardata"`
	} `xml:"header"`
}

// requestSlot sends a slot request and returns the answer (result or error) as the client received it.
func requestSlot(c *Client, id, name string, size int64, ct string) string {
	c.t.Helper()
	var b strings.Builder
	b.WriteString("<iq type='get' id='" + id + "' to='upload.localhost'><request xmlns='urn:xmpp:http:upload:0' filename='")
	xml.EscapeText(&b, []byte(name))
	fmt.Fprintf(&b, "' size='%d'", size)
	if ct != "" {
		b.WriteString(" content-type='" + ct + "'")
	}
	b.WriteString("/></iq>")
	c.Send(b.String())
	return c.Expect(10*time.Second, `id="`+id+`"`)
}

func slotOf(t *testing.T, answer string) uploadSlot {
	t.Helper()
	if !strings.Contains(answer, `type="result"`) {
		t.Fatalf("slot refused:\n%s", answer)
	}
	var s uploadSlot
	if err := xml.Unmarshal([]byte(answer), &s); err != nil || s.Put.URL == "" || s.Get.URL == "" {
		t.Fatalf("no slot in %s: %v", answer, err)
	}
	return s
}

func httpPut(t *testing.T, hc *http.Client, s uploadSlot, ct string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, s.Put.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	for _, h := range s.Put.Headers {
		req.Header.Set(h.Name, h.Value)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Logf("PUT %s: %v", s.Put.URL, err)
		return 999 // a store may hang up on a PUT it refuses from its headers
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func httpGet(t *testing.T, hc *http.Client, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestUploadDisco(t *testing.T) {
	srv, _ := uploadServer(t, "local", "  max_file_size: 1048576\n")
	srv.AddUser("alice", "secret-alice")
	c := Dial(t, srv, "alice", "secret-alice", "phone")
	c.Send(`<iq type='get' id='i1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	c.Expect(5*time.Second, `id="i1"`, `type="result"`, `jid="upload.localhost"`)
	c.Send(`<iq type='get' id='i2' to='upload.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	info := c.Expect(5*time.Second, `id="i2"`, `type="result"`)
	// (The client re-encodes what it receives, with an xmlns on every element.)
	for _, want := range []string{`category="store"`, `type="file"`, `var="urn:xmpp:http:upload:0"`, `var="FORM_TYPE" type="hidden"`,
		`>urn:xmpp:http:upload:0</value>`, `var="max-file-size"`, `>1048576</value>`} {
		if !strings.Contains(info, want) {
			t.Errorf("disco#info of upload.localhost lacks %s:\n%s", want, info)
		}
	}
}

// TestUploadRoundTrip: 1 byte, 1 MiB and 50 MiB go up and come back identical, on each backend.
func TestUploadRoundTrip(t *testing.T) {
	for _, backend := range []string{"local", "s3"} {
		t.Run(backend, func(t *testing.T) {
			srv, public := uploadServer(t, backend, "  max_file_size: 67108864\n")
			srv.AddUser("alice", "secret-alice")
			c := Dial(t, srv, "alice", "secret-alice", "phone")
			hc := httpClient(srv)
			for i, size := range []int64{1, 1 << 20, 50 << 20} {
				body := make([]byte, size)
				rand.Read(body)
				name := fmt.Sprintf("file %d é.bin", size)
				s := slotOf(t, requestSlot(c, fmt.Sprintf("s%d", i), name, size, "application/octet-stream"))
				if backend == "local" && !strings.HasPrefix(s.Put.URL, public+"/upload/") {
					t.Fatalf("local PUT URL %s not under %s", s.Put.URL, public)
				}
				if backend == "s3" && strings.HasPrefix(s.Put.URL, public) {
					t.Fatalf("S3 PUT URL %s goes through Parley", s.Put.URL)
				}
				start := time.Now()
				if code := httpPut(t, hc, s, "application/octet-stream", body); code != 200 && code != 201 {
					t.Fatalf("PUT %d bytes: %d", size, code)
				}
				up := time.Since(start)
				start = time.Now()
				resp, got := httpGet(t, hc, s.Get.URL)
				if resp.StatusCode != 200 || !bytes.Equal(got, body) {
					sum := sha256.Sum256(got)
					t.Fatalf("GET %d bytes: %s, got %d bytes (sha256 %s)", size, resp.Status, len(got), hex.EncodeToString(sum[:8]))
				}
				t.Logf("%s %d bytes: PUT %v, GET %v", backend, size, up.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
				if resp.Header.Get("Content-Type") != "application/octet-stream" {
					t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
				}
				if backend == "local" && (resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
					!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment")) {
					t.Errorf("download headers: %v", resp.Header)
				}
			}
			// A second PUT to a used slot, or with the wrong length, does not replace the file.
			s := slotOf(t, requestSlot(c, "r1", "once.txt", 4, "text/plain"))
			if code := httpPut(t, hc, s, "text/plain", []byte("abcde")); code < 400 {
				t.Errorf("PUT of 5 bytes into a 4-byte slot: %d", code)
			}
			if code := httpPut(t, hc, s, "text/plain", []byte("abcd")); code != 200 && code != 201 {
				t.Fatalf("PUT: %d", code)
			}
			if backend == "local" {
				if code := httpPut(t, hc, s, "text/plain", []byte("wxyz")); code != http.StatusConflict {
					t.Errorf("second PUT: %d, want 409", code)
				}
			}
			if _, got := httpGet(t, hc, s.Get.URL); string(got) != "abcd" {
				t.Errorf("GET after refused PUTs: %q", got)
			}
		})
	}
}

// TestUploadRefusals: the XEP-0363 errors for a file too large, the quota and the request rate, and refused
// file names; and the HTTP refusals of the local backend.
func TestUploadRefusals(t *testing.T) {
	srv, public := uploadServer(t, "local", "  max_file_size: 1000\n  quota_per_user: 2500\n  slots_per_minute: 4\n")
	srv.AddUser("alice", "secret-alice")
	srv.AddUser("bob", "secret-bob")
	c := Dial(t, srv, "alice", "secret-alice", "phone")
	hc := httpClient(srv)

	got := requestSlot(c, "big", "big.bin", 1001, "")
	for _, want := range []string{`type="error"`, `type="modify"`, "<not-acceptable", `<file-too-large xmlns="urn:xmpp:http:upload:0"`,
		`>1000</max-file-size>`} {
		if !strings.Contains(got, want) {
			t.Errorf("too large: no %s in\n%s", want, got)
		}
	}
	for i, name := range []string{"../../etc/passwd", "..", "a\\b"} {
		got := requestSlot(c, fmt.Sprintf("n%d", i), name, 10, "")
		if !strings.Contains(got, `type="error"`) || !strings.Contains(got, "not-acceptable") {
			t.Errorf("file name %q: %s", name, got)
		}
	}

	// Quota: 1000 + 1000 reserved, then 1000 more is over 2500.
	s1 := slotOf(t, requestSlot(c, "q1", "1.bin", 1000, "application/octet-stream"))
	slotOf(t, requestSlot(c, "q2", "2.bin", 1000, "application/octet-stream"))
	got = requestSlot(c, "q3", "3.bin", 1000, "application/octet-stream")
	if !strings.Contains(got, `type="wait"`) || !strings.Contains(got, "resource-constraint") || !strings.Contains(got, "Quota") {
		t.Errorf("over quota:\n%s", got)
	}

	// The HTTP side of the local backend.
	body := make([]byte, 1000)
	for _, tc := range []struct {
		name string
		url  string
		ct   string
		body []byte
		want int
	}{
		{"larger body", s1.Put.URL, "application/octet-stream", make([]byte, 1001), 413},
		{"smaller body", s1.Put.URL, "application/octet-stream", make([]byte, 999), 400},
		{"other type", s1.Put.URL, "text/html", body, 400},
		{"tampered", strings.Replace(s1.Put.URL, "/1.bin", "/2.bin", 1), "application/octet-stream", body, 403},
		{"traversal", public + "/upload/x/..%2F..%2Fparley.db", "application/octet-stream", body, 400},
	} {
		if code := httpPut(t, hc, uploadSlot{Put: slotPut{URL: tc.url}}, tc.ct, tc.body); code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.want)
		}
	}
	if resp, _ := httpGet(t, hc, s1.Get.URL); resp.StatusCode != 404 {
		t.Errorf("GET of a slot not uploaded: %s", resp.Status)
	}

	// Rate: four requests a minute are allowed. Those refused for their name or size did not count, the one
	// refused for quota did: q1, q2, q3, r1; r2 waits.
	slotOf(t, requestSlot(c, "r1", "small.bin", 1, ""))
	got = requestSlot(c, "r2", "small.bin", 1, "")
	if !strings.Contains(got, `type="wait"`) || !strings.Contains(got, "resource-constraint") ||
		!strings.Contains(got, `<retry xmlns="urn:xmpp:http:upload:0"`) || !strings.Contains(got, `stamp="20`) {
		t.Errorf("rate limit:\n%s", got)
	}
	// Another account is not limited by alice's rate or quota.
	b := Dial(t, srv, "bob", "secret-bob", "laptop")
	slotOf(t, requestSlot(b, "b1", "b.bin", 1000, ""))
}

// TestUploadExpiry: a file is removed once the retention has passed (a sweep every 300ms here).
func TestUploadExpiry(t *testing.T) {
	for _, backend := range []string{"local", "s3"} {
		t.Run(backend, func(t *testing.T) {
			srv, _ := uploadServer(t, backend, "  retention: 3s\n  sweep_interval: 300ms\n")
			srv.AddUser("alice", "secret-alice")
			c := Dial(t, srv, "alice", "secret-alice", "phone")
			hc := httpClient(srv)
			s := slotOf(t, requestSlot(c, "e1", "soon-gone.txt", 5, "text/plain"))
			if code := httpPut(t, hc, s, "text/plain", []byte("hello")); code != 200 && code != 201 {
				t.Fatalf("PUT: %d", code)
			}
			if resp, b := httpGet(t, hc, s.Get.URL); resp.StatusCode != 200 || string(b) != "hello" {
				t.Fatalf("GET within the retention: %s %q", resp.Status, b)
			}
			deadline := time.Now().Add(15 * time.Second)
			for {
				resp, _ := httpGet(t, hc, s.Get.URL)
				if resp.StatusCode == 404 || resp.StatusCode == 403 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("GET 15s after upload with retention 3s: %s", resp.Status)
				}
				time.Sleep(250 * time.Millisecond)
			}
			if backend == "local" {
				// The sweeper removes the file itself, not only access to it.
				waitGone(t, filepath.Join(srv.Dir, "uploads"), "soon-gone.txt")
			}
			// The sweeper logs after it has deleted: the line may come a moment after the file is gone.
			for logDeadline := time.Now().Add(3 * time.Second); !strings.Contains(srv.Log(), "expired uploads"); {
				if time.Now().After(logDeadline) {
					t.Fatal("no sweep in the server log")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func waitGone(t *testing.T, dir, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		found := false
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Name() == name {
				found = true
			}
			return nil
		})
		if !found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still under %s", name, dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDefectUploadURLsPointAtTheHTTPSPort: with listen.https on a port other than 5443 and no
// httpupload.public_url, slots used to point at https://<domain>:5443, where nothing listens. They point at
// the HTTPS listener's port now, and a file goes up and comes back through them.
func TestDefectUploadURLsPointAtTheHTTPSPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	t.Setenv("PARLEY_LISTEN_HTTPS", "127.0.0.1:"+port)
	srv := Start(t, "")
	srv.AddUser("alice", "secret-alice")
	c := Dial(t, srv, "alice", "secret-alice", "phone")
	s := slotOf(t, requestSlot(c, "s1", "port.txt", 4, "text/plain"))
	want := "https://localhost:" + port + "/upload/"
	if !strings.HasPrefix(s.Put.URL, want) || !strings.HasPrefix(s.Get.URL, want) {
		t.Fatalf("slot URLs %s and %s are not under %s (listen.https 127.0.0.1:%s)", s.Put.URL, s.Get.URL, want, port)
	}
	hc := httpClient(srv)
	if code := httpPut(t, hc, s, "text/plain", []byte("abcd")); code != 200 && code != 201 {
		t.Fatalf("PUT %s: %d", s.Put.URL, code)
	}
	if resp, got := httpGet(t, hc, s.Get.URL); resp.StatusCode != 200 || string(got) != "abcd" {
		t.Fatalf("GET %s: %s %q", s.Get.URL, resp.Status, got)
	}
	if strings.Contains(srv.Log(), "public_url") {
		t.Errorf("startup warned about public_url although it was left to its default:\n%s", srv.Log())
	}
}

// TestDefectUploadPublicURLMismatchWarns: a public_url on another port than listen.https is kept (a proxy may
// forward it) but the server says at startup that slots point where it does not listen.
func TestDefectUploadPublicURLMismatchWarns(t *testing.T) {
	srv := Start(t, "httpupload:\n  public_url: https://localhost:5443\n")
	if !strings.Contains(srv.Log(), "httpupload.public_url https://localhost:5443 is on port 5443") {
		t.Fatalf("no startup warning about public_url and listen.https disagreeing; log:\n%s", srv.Log())
	}
}
