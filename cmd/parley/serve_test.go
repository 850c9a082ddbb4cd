package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"parley.im/parley/xmpp/module"
)

// testServer builds a server on loopback ports with its data in a temporary directory.
func testServer(t *testing.T) *server {
	t.Helper()
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Storage.SQLitePath = filepath.Join(cfg.DataDir, "parley.db")
	cfg.Listen.C2S, cfg.Listen.C2STLS = "127.0.0.1:0", "off"
	cfg.Listen.HTTPS, cfg.Listen.HTTP, cfg.Listen.Metrics = "127.0.0.1:0", "off", "off"
	s, err := newServer(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDefectUploadPublicURLDefaultsFromListener: httpupload.public_url used to default to
// https://<domain>:5443 whatever listen.https said. It takes the HTTPS listener's port now, and a configured URL
// on a port neither HTTP listener has is warned about.
func TestDefectUploadPublicURLDefaultsFromListener(t *testing.T) {
	cfg := defaultConfig()
	cfg.Domain = "example.net"
	cfg.Listen.HTTPS = ":15443"
	for _, tc := range []struct {
		name, public, https, http string
		want                      string
		warn                      bool
	}{
		{"default from listen.https", "", "[::]:15443", "127.0.0.1:5280", "https://example.net:15443", false},
		{"default port", "", "0.0.0.0:5443", "", "https://example.net:5443", false},
		{"https off", "", "", "127.0.0.1:5280", "https://example.net", true},
		{"configured, same port", "https://files.example.net:15443/x", "[::]:15443", "", "https://files.example.net:15443/x", false},
		{"configured, the plain listener", "http://example.net:5280", "[::]:15443", "127.0.0.1:5280", "http://example.net:5280", false},
		{"configured, other port", "https://example.net:5443", "[::]:15443", "127.0.0.1:5280", "https://example.net:5443", true},
		{"configured, proxy on 443", "https://example.net/files", "[::]:15443", "127.0.0.1:5280", "https://example.net/files", true},
	} {
		c := cfg
		c.HTTPUpload.PublicURL = tc.public
		got, warn := uploadPublicURL(c, tc.https, tc.http)
		if got != tc.want || (warn != "") != tc.warn {
			t.Errorf("%s: got %q, warning %q; want %q, warning %v", tc.name, got, warn, tc.want, tc.warn)
		}
	}
	// The server itself: the upload module hands out URLs for the port it listens on.
	s := testServer(t)
	defer s.close()
	_, port, _ := strings.Cut(s.addrs["https"], ":")
	for _, m := range s.mods {
		if hr, ok := m.(interface{ PublicURL() string }); ok {
			if want := "https://localhost:" + port; hr.PublicURL() != want {
				t.Errorf("upload public URL %s, want %s", hr.PublicURL(), want)
			}
			return
		}
	}
	t.Fatal("no module reports its public URL")
}

// lateRunner is a module whose Run writes to the store after its context ends, as a runner flushing state on
// its way out does.
type lateRunner struct {
	s   *server
	err chan error
}

func (*lateRunner) Name() string                  { return "late-runner" }
func (*lateRunner) Register(h *module.Host) error { return nil }
func (r *lateRunner) Run(ctx context.Context) {
	<-ctx.Done()
	time.Sleep(200 * time.Millisecond)
	r.err <- r.s.store.PutValue(context.Background(), "localhost", "test/late-runner", []byte("x"))
}

// TestShutdownWaitsForRunnersBeforeClosingStore: shutdown used to close the store while module runners were
// still running; a runner that writes on its way out got "database is closed".
func TestShutdownWaitsForRunnersBeforeClosingStore(t *testing.T) {
	s := testServer(t)
	r := &lateRunner{s: s, err: make(chan error, 1)}
	s.mods = append(s.mods, r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return")
	}
	select {
	case err := <-r.err:
		if err != nil {
			t.Fatalf("the runner's write at shutdown failed: %v", err)
		}
	default:
		t.Fatal("run returned before the runner finished")
	}
}

// TestModuleMetricsAndRoutesFromModuleValues: /metrics and the HTTP mux take what each module offers through
// module.MetricsReporter and module.HTTPRoutes, with no list of module types in cmd/parley.
func TestModuleMetricsAndRoutesFromModuleValues(t *testing.T) {
	s := testServer(t)
	defer s.close()
	rec := httptest.NewRecorder()
	s.metrics(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{"parley_sessions ", "parley_archive_messages_total 0", "parley_archive_duplicates_total 0",
		"parley_push_notifications_total 0", "parley_push_failed_total 0", "parley_push_coalesced_total 0", "parley_muc_rooms 0", "parley_muc_deliveries_total 0", "parley_offline_stored_total 0",
		"parley_offline_delivered_total 0", "parley_offline_expired_total 0", "parley_upload_slots_total 0",
		"# TYPE parley_offline_stored_total counter"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	mux, err := s.webMux()
	if err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/upload/bad-token/x.txt", nil))
	if rec.Code != http.StatusForbidden && rec.Code != http.StatusBadRequest {
		t.Errorf("GET /upload/… answered %d, not by the upload handler", rec.Code)
	}
	// A second module with the same pattern fails and names both.
	s.mods = append(s.mods, routesModule{"other", "/upload/"})
	if _, err := s.webMux(); err == nil || !strings.Contains(err.Error(), "httpupload") || !strings.Contains(err.Error(), "other") {
		t.Errorf("duplicate route: %v", err)
	}
}

type routesModule struct{ name, pattern string }

func (m routesModule) Name() string                { return m.name }
func (routesModule) Register(h *module.Host) error { return nil }
func (m routesModule) Routes() []module.Route {
	return []module.Route{{Pattern: m.pattern, Handler: http.NotFoundHandler()}}
}

type invalidModule struct{ routesModule }

func (invalidModule) Validate() error { return errors.New("muc.domain: clashes with upload.domain") }

// A module value that implements module.Validator is checked before the server registers anything; one without
// it is not asked.
func TestModuleValidatorsRun(t *testing.T) {
	mods := []module.Module{routesModule{"fine", "/a/"}, invalidModule{routesModule{"bad", "/b/"}}}
	err := validateModules(mods)
	if err == nil || !strings.Contains(err.Error(), "module bad: muc.domain: clashes") || strings.Contains(err.Error(), "fine") {
		t.Fatalf("validateModules: %v", err)
	}
	if err := validateModules(mods[:1]); err != nil {
		t.Fatal(err)
	}
}
