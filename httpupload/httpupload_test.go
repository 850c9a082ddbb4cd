package httpupload

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// fakeRouter records what the module routes.
type fakeRouter struct {
	mu  sync.Mutex
	out []*stanza.Stanza
}

func (r *fakeRouter) Route(_ context.Context, s *stanza.Stanza) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out = append(r.out, s)
}
func (r *fakeRouter) RouteFrom(ctx context.Context, _ module.Origin, s *stanza.Stanza) {
	r.Route(ctx, s)
}
func (r *fakeRouter) Deliver(ctx context.Context, _ module.Origin, to jid.JID, s *stanza.Stanza) {
	r.Route(ctx, s.WithTo(to))
}
func (r *fakeRouter) Lookup(jid.JID) module.Resources                             { return module.Resources{} }
func (r *fakeRouter) Sessions(jid.JID) []module.Session                           { return nil }
func (r *fakeRouter) Session(jid.JID) module.Session                              { return nil }
func (r *fakeRouter) IsLocal(j jid.JID) bool                                      { return j.Domainpart() == "example.net" }
func (r *fakeRouter) Notify(context.Context, module.SessionEvent, module.Session) {}

func (r *fakeRouter) last(t testing.TB) *stanza.Stanza {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.out) == 0 {
		t.Fatal("nothing routed")
	}
	s := r.out[len(r.out)-1]
	r.out = nil
	return s
}

// memKV is a storage.KV in memory.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (k *memKV) Value(_ context.Context, owner, key string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[owner+"\x00"+key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return v, nil
}
func (k *memKV) PutValue(_ context.Context, owner, key string, v []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = make(map[string][]byte)
	}
	k.m[owner+"\x00"+key] = v
	return nil
}
func (k *memKV) DeleteValue(context.Context, string, string) error      { return nil }
func (k *memKV) Keys(context.Context, string, string) ([]string, error) { return nil, nil }

// env is a module with the local backend behind an httptest server.
type env struct {
	m      *Module
	router *fakeRouter
	srv    *httptest.Server
	dir    string
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	e := &env{router: &fakeRouter{}, dir: t.TempDir()}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	if cfg.PublicURL == "" {
		cfg.PublicURL = e.srv.URL
	}
	m, err := New(context.Background(), cfg, Deps{Domain: "example.net", DataDir: e.dir, KV: &memKV{}})
	if err != nil {
		t.Fatal(err)
	}
	reg := module.NewRegistry()
	if err := reg.Register([]module.Module{m}, e.router, jid.MustParse("example.net"), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	mux.Handle(Prefix, m.Handler())
	e.m = m
	return e
}

var alice = jid.MustParse("alice@example.net/phone")

// iq sends an IQ get to the service and returns the answer.
func (e *env) iq(t testing.TB, from jid.JID, inner string) *stanza.Stanza {
	t.Helper()
	s := stanza.New(stanza.IQ, "get", "q1", from, e.m.service, []byte(inner))
	e.m.HandleStanza(context.Background(), module.Origin{}, s)
	return e.router.last(t)
}

func request(name string, size int64, ct string) string {
	b := []byte("<request xmlns='urn:xmpp:http:upload:0' filename='")
	b = stanza.AppendEscape(b, name)
	b = fmt.Appendf(b, "' size='%d'", size)
	if ct != "" {
		b = append(b, " content-type='"...)
		b = stanza.AppendEscape(b, ct)
		b = append(b, '\'')
	}
	return string(append(b, "/>"...))
}

type slotXML struct {
	Put struct {
		URL     string `xml:"url,attr"`
		Headers []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:",chardata"`
		} `xml:"header"`
	} `xml:"put"`
	Get struct {
		URL string `xml:"url,attr"`
	} `xml:"get"`
}

// slot requests a slot and fails the test unless one is granted.
func (e *env) slot(t *testing.T, from jid.JID, name string, size int64, ct string) slotXML {
	t.Helper()
	r := e.iq(t, from, request(name, size, ct))
	if r.Type != "result" {
		t.Fatalf("slot request refused: %s", r.Raw)
	}
	_, _, raw, _ := stanza.FirstChild(r.Payload())
	var s slotXML
	if err := xml.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t testing.TB, url, ct string, body []byte) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func get(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestDiscoInfo(t *testing.T) {
	e := newEnv(t, Config{MaxFileSize: 5000})
	r := e.iq(t, alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	for _, want := range []string{
		"type='result'", "from='upload.example.net'", "<identity category='store' type='file'",
		"<feature var='urn:xmpp:http:upload:0'/>",
		"<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:http:upload:0</value></field>",
		"<field var='max-file-size'><value>5000</value></field>",
	} {
		if !strings.Contains(string(r.Raw), want) {
			t.Errorf("disco#info lacks %s:\n%s", want, r.Raw)
		}
	}
	r = e.iq(t, alice, "<query xmlns='http://jabber.org/protocol/disco#info' node='x'/>")
	if !strings.Contains(string(r.Raw), "<item-not-found") {
		t.Errorf("disco#info with an unknown node: %s", r.Raw)
	}
	r = e.iq(t, alice, "<query xmlns='http://jabber.org/protocol/disco#items'/>")
	if r.Type != "result" {
		t.Errorf("disco#items: %s", r.Raw)
	}
	r = e.iq(t, alice, "<ping xmlns='urn:xmpp:ping'/>")
	if !strings.Contains(string(r.Raw), "<service-unavailable") {
		t.Errorf("unknown payload: %s", r.Raw)
	}
}

func TestSlotPutGet(t *testing.T) {
	e := newEnv(t, Config{})
	body := []byte("hello, world")
	s := e.slot(t, alice, "très cool.txt", int64(len(body)), "text/plain")
	if !strings.HasPrefix(s.Put.URL, e.srv.URL+Prefix) || !strings.HasPrefix(s.Get.URL, e.srv.URL+Prefix) {
		t.Fatalf("slot URLs not under the public URL: %+v", s)
	}
	if !strings.HasSuffix(s.Get.URL, "/tr%C3%A8s%20cool.txt") {
		t.Errorf("GET URL does not end with the escaped file name: %s", s.Get.URL)
	}
	if resp, _ := get(t, s.Get.URL); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET before PUT: %s, want 404", resp.Status)
	}
	if resp := put(t, s.Put.URL, "text/plain", body); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	resp, got := get(t, s.Get.URL)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET: %s %q", resp.Status, got)
	}
	for h, want := range map[string]string{
		"Content-Type":           "text/plain",
		"Content-Length":         fmt.Sprint(len(body)),
		"Content-Disposition":    "attachment; filename*=utf-8''tr%C3%A8s%20cool.txt",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy: %q", csp)
	}
	if resp := put(t, s.Put.URL, "text/plain", body); resp.StatusCode != http.StatusConflict {
		t.Errorf("second PUT: %s, want 409", resp.Status)
	}
	// The owner directory is an HMAC of the JID, not the JID.
	entries, _ := os.ReadDir(filepath.Join(e.dir, "uploads"))
	for _, d := range entries {
		if strings.Contains(d.Name(), "alice") {
			t.Errorf("the storage path reveals the account: %s", d.Name())
		}
	}
}

func TestInlineDisposition(t *testing.T) {
	e := newEnv(t, Config{})
	for ct, want := range map[string]string{
		"image/png": "inline", "video/mp4": "inline", "audio/ogg": "inline",
		"image/svg+xml": "attachment", "text/html": "attachment", "application/pdf": "attachment",
	} {
		s := e.slot(t, alice, "f", 1, ct)
		put(t, s.Put.URL, ct, []byte("x"))
		resp, _ := get(t, s.Get.URL)
		if got := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(got, want+";") {
			t.Errorf("%s: Content-Disposition %q, want %s", ct, got, want)
		}
		if got := resp.Header.Get("Content-Type"); got != ct {
			t.Errorf("%s: Content-Type %q", ct, got)
		}
	}
}

func TestSlotRefusals(t *testing.T) {
	e := newEnv(t, Config{MaxFileSize: 1000, QuotaPerUser: 2500})
	for _, tc := range []struct {
		name, inner string
		from        jid.JID
		want        []string
	}{
		{"too large", request("a.bin", 1001, ""), alice, []string{"<error type='modify'><not-acceptable",
			"<file-too-large xmlns='urn:xmpp:http:upload:0'><max-file-size>1000</max-file-size></file-too-large>"}},
		{"no size", "<request xmlns='urn:xmpp:http:upload:0' filename='a'/>", alice, []string{"<error type='modify'><not-acceptable"}},
		{"zero size", request("a", 0, ""), alice, []string{"<not-acceptable"}},
		{"negative size", request("a", -5, ""), alice, []string{"<not-acceptable"}},
		{"size not a number", "<request xmlns='urn:xmpp:http:upload:0' filename='a' size='12kb'/>", alice, []string{"<not-acceptable"}},
		{"no file name", "<request xmlns='urn:xmpp:http:upload:0' size='5'/>", alice, []string{"<not-acceptable"}},
		{"path in file name", request("../../etc/passwd", 5, ""), alice, []string{"<not-acceptable", "path separator"}},
		{"dot dot", request("..", 5, ""), alice, []string{"<not-acceptable"}},
		{"control character", request("a\u0085b", 5, ""), alice, []string{"<not-acceptable", "control"}},
		{"bidi override", request("evil\u202egpj.exe", 5, ""), alice, []string{"<not-acceptable"}},
		{"bad content type", request("a", 5, "not a type"), alice, []string{"<not-acceptable"}},
		{"remote user", request("a", 5, ""), jid.MustParse("eve@evil.example/x"), []string{"<error type='cancel'><not-allowed"}},
		{"server itself", request("a", 5, ""), jid.MustParse("example.net"), []string{"<not-allowed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.iq(t, tc.from, tc.inner)
			if r.Type != "error" {
				t.Fatalf("granted: %s", r.Raw)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(r.Raw), w) {
					t.Errorf("answer lacks %q:\n%s", w, r.Raw)
				}
			}
		})
	}
}

func TestAllowedDomains(t *testing.T) {
	e := newEnv(t, Config{AllowedDomains: []string{"partner.example"}})
	e.slot(t, jid.MustParse("bob@partner.example/x"), "a", 5, "")
	if r := e.iq(t, jid.MustParse("eve@evil.example/x"), request("a", 5, "")); r.Type != "error" {
		t.Fatalf("a user of another domain got a slot: %s", r.Raw)
	}
}

func TestQuota(t *testing.T) {
	e := newEnv(t, Config{MaxFileSize: 1000, QuotaPerUser: 2500})
	// Two slots reserve 2000 bytes: a third of 1000 is over quota even before anything is uploaded.
	s1 := e.slot(t, alice, "1", 1000, "")
	e.slot(t, alice, "2", 1000, "")
	r := e.iq(t, alice, request("3", 1000, ""))
	if !strings.Contains(string(r.Raw), "<error type='wait'><resource-constraint") || !strings.Contains(string(r.Raw), "Quota") {
		t.Fatalf("over quota: %s", r.Raw)
	}
	// Uploading a reserved slot does not count it twice.
	if resp := put(t, s1.Put.URL, "application/octet-stream", make([]byte, 1000)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	e.slot(t, alice, "4", 500, "")
	// Another account has its own quota.
	e.slot(t, jid.MustParse("bob@example.net/x"), "5", 1000, "")
	// Reservations lapse when their PUT URL expires; stored files count until they expire.
	e.m.now = func() time.Time { return time.Now().Add(DefaultPutTTL + time.Second) }
	e.slot(t, alice, "6", 1000, "")
	e.slot(t, alice, "7", 500, "")
	if r := e.iq(t, alice, request("8", 1, "")); r.Type != "error" {
		t.Fatalf("quota not enforced after reservations lapsed: %s", r.Raw)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, Config{SlotsPerMinute: 3})
	now := time.Date(2030, 1, 2, 3, 4, 5, 500_000_000, time.UTC)
	e.m.now = func() time.Time { return now }
	for i := range 3 {
		e.slot(t, alice, fmt.Sprint(i), 10, "")
		now = now.Add(time.Second)
	}
	r := e.iq(t, alice, request("x", 10, ""))
	// The first of the three was at 03:04:05.5: a slot is granted again after 03:05:05.5.
	if !strings.Contains(string(r.Raw), "<error type='wait'><resource-constraint") ||
		!strings.Contains(string(r.Raw), "<retry xmlns='urn:xmpp:http:upload:0' stamp='2030-01-02T03:05:06Z'/>") {
		t.Fatalf("rate limit: %s", r.Raw)
	}
	e.slot(t, jid.MustParse("bob@example.net/x"), "b", 10, "")
	now = time.Date(2030, 1, 2, 3, 5, 6, 0, time.UTC)
	e.slot(t, alice, "y", 10, "")
}

func TestExpiry(t *testing.T) {
	e := newEnv(t, Config{Retention: time.Hour})
	s := e.slot(t, alice, "old.txt", 3, "text/plain")
	put(t, s.Put.URL, "text/plain", []byte("old"))
	s2 := e.slot(t, alice, "new.txt", 3, "text/plain")
	put(t, s2.Put.URL, "text/plain", []byte("new"))
	// Age the first file by two hours.
	var oldPath string
	filepath.WalkDir(filepath.Join(e.dir, "uploads"), func(p string, d os.DirEntry, _ error) error {
		if d != nil && d.Name() == "old.txt" {
			oldPath = p
		}
		return nil
	})
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(oldPath, past, past); err != nil {
		t.Fatal(err)
	}
	// Expired but not yet swept: not served.
	if resp, _ := get(t, s.Get.URL); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of an expired file: %s", resp.Status)
	}
	n, size, err := e.m.Sweep(context.Background())
	if err != nil || n != 1 || size != 3 {
		t.Fatalf("Sweep = %d, %d, %v; want 1, 3", n, size, err)
	}
	if _, err := os.Stat(oldPath); !os.IsNotExist(err) {
		t.Errorf("expired file still on disk: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(oldPath)); !os.IsNotExist(err) {
		t.Errorf("empty slot directory left behind")
	}
	if resp, b := get(t, s2.Get.URL); resp.StatusCode != http.StatusOK || string(b) != "new" {
		t.Errorf("fresh file: %s %q", resp.Status, b)
	}
	var buf bytes.Buffer
	e.m.WriteMetrics(&buf)
	if !strings.Contains(buf.String(), "parley_upload_expired_total 1\n") {
		t.Errorf("metrics:\n%s", buf.String())
	}
}

func TestSecretPersists(t *testing.T) {
	kv := &memKV{}
	m1, err := New(context.Background(), Config{PublicURL: "https://example.net"}, Deps{Domain: "example.net", DataDir: t.TempDir(), KV: kv})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := New(context.Background(), Config{PublicURL: "https://example.net"}, Deps{Domain: "example.net", DataDir: t.TempDir(), KV: kv})
	if err != nil {
		t.Fatal(err)
	}
	if m1.sign.ownerID("a@example.net") != m2.sign.ownerID("a@example.net") {
		t.Error("a second start derived another owner id")
	}
	if _, err := New(context.Background(), Config{}, Deps{Domain: "example.net", DataDir: t.TempDir()}); err == nil {
		t.Error("New without secret and without KV succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Backend: "ftp"}, "httpupload.backend"},
		{Config{Backend: "s3"}, "httpupload.s3.bucket"},
		{Config{Backend: "s3", S3: S3Config{Bucket: "b", Endpoint: "ftp://x"}}, "httpupload.s3.endpoint"},
		{Config{Backend: "s3", S3: S3Config{Bucket: "b", AccessKey: "x"}}, "httpupload.s3.access_key"},
		{Config{MaxFileSize: -1}, "httpupload.max_file_size"},
		{Config{MaxFileSize: 100, QuotaPerUser: 50}, "httpupload.quota_per_user"},
		{Config{QuotaPerUser: -2}, "httpupload.quota_per_user"},
		{Config{SlotsPerMinute: -3}, "httpupload.slots_per_minute"},
		{Config{Retention: -time.Second}, "httpupload.retention"},
		{Config{PublicURL: "example.net"}, "httpupload.public_url"},
		{Config{Secret: "short"}, "httpupload.secret"},
		{Config{Domain: "a@b"}, "httpupload.domain"},
		{Config{AllowedDomains: []string{"x@y"}}, "httpupload.allowed_domains"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	ok := Config{Backend: "s3", QuotaPerUser: -1, SlotsPerMinute: -1, S3: S3Config{Bucket: "b", Endpoint: "http://127.0.0.1:9000", PathStyle: true}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
	var d Config
	d.setDefaults("example.net")
	if d.Domain != "upload.example.net" || d.MaxFileSize != 100<<20 || d.QuotaPerUser != 1<<30 || d.SlotsPerMinute != 30 ||
		d.Retention != 720*time.Hour || d.Backend != "local" || d.PublicURL != "https://example.net:5443" {
		t.Errorf("defaults: %+v", d)
	}
	if err := d.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}
