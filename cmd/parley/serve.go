package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/httpupload"
	"parley.im/parley/muc"
	"parley.im/parley/offline"
	"parley.im/parley/storage"
	"parley.im/parley/storage/pg"
	"parley.im/parley/storage/s3"
	"parley.im/parley/storage/sqlite"
	"parley.im/parley/xmpp/auth"
	"parley.im/parley/xmpp/blocking"
	"parley.im/parley/xmpp/c2s"
	"parley.im/parley/xmpp/carbons"
	"parley.im/parley/xmpp/disco"
	"parley.im/parley/xmpp/mam"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/pep"
	"parley.im/parley/xmpp/ping"
	"parley.im/parley/xmpp/presence"
	"parley.im/parley/xmpp/private"
	"parley.im/parley/xmpp/push"
	"parley.im/parley/xmpp/register"
	"parley.im/parley/xmpp/roster"
	"parley.im/parley/xmpp/router"
	"parley.im/parley/xmpp/vcard"
	"parley.im/parley/xmpp/version"
	"parley.im/parley/xmpp/websocket"
)

// openStore opens the configured storage driver and applies its migrations.
func openStore(ctx context.Context, cfg Config) (storage.Store, error) {
	switch cfg.Storage.Driver {
	case "postgres":
		return pg.Open(ctx, cfg.Storage.PostgresDSN)
	default:
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
		return sqlite.Open(ctx, cfg.Storage.SQLitePath)
	}
}

// server is one running Parley node.
type server struct {
	cfg    Config
	log    *slog.Logger
	store  storage.Store
	router *router.Router
	c2s    *c2s.Server
	lns    []net.Listener
	http   *http.Server
	addrs  map[string]string
	mods   []module.Module
	ws     *websocket.Handler
	web    []*http.Server
	// runners are the Run goroutines of the modules (module.Runner): shutdown waits for them before it closes
	// the store, since a runner may write on its way out.
	runners sync.WaitGroup
}

// newUpload builds the upload service with the configured blob backend (local disk by default).
func newUpload(ctx context.Context, cfg Config, store storage.Store) (*httpupload.Module, error) {
	deps := httpupload.Deps{Domain: cfg.Domain, DataDir: cfg.DataDir, KV: store}
	if cfg.HTTPUpload.Backend == "s3" {
		b, err := s3.New(s3.Config(cfg.HTTPUpload.S3))
		if err != nil {
			return nil, fmt.Errorf("httpupload: %w", err)
		}
		deps.Blobs = b
	}
	return httpupload.New(ctx, cfg.HTTPUpload, deps)
}

// uploadPublicURL returns the base URL of upload slots, and a warning for the log when clients would find no
// Parley listener there. Unset, httpupload.public_url defaults to https://<domain>:<port of listen.https>
// (httpsAddr and httpAddr are the bound addresses of the HTTP listeners, "" when off): a fixed port 5443 would
// point every slot at a closed port when listen.https says another. A public_url whose port neither listener
// has is kept (a proxy may forward it) but warned about.
func uploadPublicURL(cfg Config, httpsAddr, httpAddr string) (public, warn string) {
	up := cfg.HTTPUpload
	if up.Backend == "s3" && up.S3.PublicBaseURL != "" {
		// Uploads go to the bucket and downloads to public_base_url: Parley's listeners serve no slot URL.
		return up.PublicURL, ""
	}
	if up.PublicURL == "" {
		if httpsAddr == "" {
			return "https://" + cfg.Domain, "listen.https is off and httpupload.public_url is not set: upload slots " +
				"point at https://" + cfg.Domain + " (port 443); set httpupload.public_url to where clients reach Parley's HTTP listener"
		}
		_, port, _ := net.SplitHostPort(httpsAddr)
		return "https://" + net.JoinHostPort(cfg.Domain, port), ""
	}
	u, err := url.Parse(up.PublicURL)
	if err != nil {
		return up.PublicURL, "" // Validate has refused it already
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	for _, a := range []string{httpsAddr, httpAddr} {
		if _, p, err := net.SplitHostPort(a); err == nil && p == port {
			return up.PublicURL, ""
		}
	}
	return up.PublicURL, fmt.Sprintf("httpupload.public_url %s is on port %s, but listen.https is %q and listen.http %q: "+
		"upload slots point at a port Parley does not listen on (right only behind a proxy that forwards it)",
		up.PublicURL, port, cfg.Listen.HTTPS, cfg.Listen.HTTP)
}

// webMux is what the HTTP listeners serve: the routes of every module that has some (module.HTTPRoutes: uploads
// and downloads of the local backend), then XMPP over WebSocket. Two modules with one pattern are an error that
// names both.
func (s *server) webMux() (*http.ServeMux, error) {
	mux := http.NewServeMux()
	by := make(map[string]string) // pattern -> module
	for _, m := range s.mods {
		hr, ok := m.(module.HTTPRoutes)
		if !ok {
			continue
		}
		for _, r := range hr.Routes() {
			if prev, dup := by[r.Pattern]; dup {
				return nil, fmt.Errorf("http route %s registered twice: by %s and by %s", r.Pattern, prev, m.Name())
			}
			by[r.Pattern] = m.Name()
			mux.Handle(r.Pattern, r.Handler)
		}
	}
	s.ws.Register(mux) // /xmpp-websocket and XEP-0156 host-meta
	return mux, nil
}

// modules is the ordered module list: the one place that says what the server does. Order matters where
// a comment says so. Adding a module is its entry here (and, if it has a configuration, its field in Config,
// whose Validate is found by type): the server finds the rest on the module value, by type assertion over this
// list: module.Validator (checked before anything registers), module.Runner (started once it listens, awaited
// at shutdown before the store closes), module.MetricsReporter (/metrics) and module.HTTPRoutes (the HTTP
// listeners' mux).
func modules(cfg Config, store storage.Store, reg *module.Registry, upload *httpupload.Module) []module.Module {
	// Archives that guarantee delivery queue their appends in the store's group commit: a connection's burst of
	// messages shares commits and is acknowledged once committed, and the copies of one message in several
	// archives commit together (see storage.Committer and module.Append).
	mamArchive := store.Archive("mam")
	offlineArchive := store.Archive("offline")
	derive := func(password string) ([]storage.ScramCredential, error) {
		return auth.DeriveAll(password, cfg.Auth.ScramIterations)
	}
	pepMod := pep.New(cfg.PEP, store, store)
	return []module.Module{
		roster.New(cfg.Roster, store, store),
		// presence uses the roster store and pushes through package roster.
		presence.New(store, store),
		// blocking (XEP-0191) before mam, carbons, push and offline: its Outbound, Inbound and Undeliverable
		// hooks end the chain for a message to or from a blocked JID, so that it is neither archived, copied,
		// announced nor stored. Its presence and IQ filters run in the router, before the presence handler.
		blocking.New(cfg.Blocking, store, store),
		// archive before carbons: it stamps the stanza-id that carbon copies carry, and it drops client retries
		// (origin-id) before anything is copied or routed.
		mam.New(cfg.Archive, mamArchive, store),
		carbons.New(),
		ping.New(),
		version.New(cfg.Version, Version),
		register.New(cfg.Register, store, store, derive),
		// pep: the PEP service on every account (XEP-0163). It needs the presence handler above (its presence
		// hook runs after that handler delivered availability) and must come before disco, which advertises its
		// pubsub features and the pubsub/pep identity. Its IQ response hook takes only its own caps queries.
		pepMod,
		// private: XEP-0049 storage; XEP-0048 bookmarks in it are the XEP-0402 PEP node's items, written through
		// pep (for notifications).
		private.New(cfg.Private, store, store, pepMod),
		// vcard: XEP-0054 with XEP-0398; a vCard photo is published as the XEP-0084 avatar through pep.
		vcard.New(cfg.VCard, store, store, pepMod),
		// push announces messages the account's devices cannot take (XEP-0357). Before offline: offline's
		// Undeliverable hook handles the message and ends the chain.
		push.New(pushConfig(cfg), store),
		// offline takes what the router could not deliver; it hooks the Undeliverable stage and Available event.
		offline.New(cfg.Offline, offlineArchive),
		// muc: the conference service on its own domain (Host.Service lists it in the server's disco#items).
		muc.New(cfg.MUC, store, store.Archive("muc")),
		// httpupload is a service on its own domain (upload.<domain>), listed in disco#items.
		upload,
		// disco last: it advertises every feature registered before it and hashes them for XEP-0115 caps.
		disco.New(reg),
	}
}

// validateModules runs Validate of every module that has one (module.Validator): checks that need the built
// module rather than its Config alone. The error names each module.
func validateModules(mods []module.Module) error {
	var errs []error
	for _, m := range mods {
		if v, ok := m.(module.Validator); ok {
			if err := v.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("module %s: %w", m.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// pushConfig is push's configuration with how long a hibernating session keeps a message (c2s.resume_timeout),
// so that a message it routes again after that is not announced twice.
func pushConfig(cfg Config) push.Config {
	pc := cfg.Push
	pc.Redelivery = cfg.C2S.ResumeTimeout
	return pc
}

// newServer builds everything and opens the listeners; run serves them.
func newServer(ctx context.Context, cfg Config, log *slog.Logger) (*server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	domain, err := jid.Parse(cfg.Domain)
	if err != nil {
		return nil, fmt.Errorf("domain: %w", err)
	}
	cert, err := loadTLS(cfg, log)
	if err != nil {
		return nil, err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, log: log, store: store, addrs: make(map[string]string)}
	fail := func(err error) (*server, error) { s.close(); return nil, err }

	listen := func(name, addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen.%s: %w", name, err)
		}
		s.lns = append(s.lns, ln)
		s.addrs[name] = ln.Addr().String()
		return ln, nil
	}
	// The HTTP listeners open before the modules are built: upload slots point at the HTTPS listener's port,
	// which is known only once it listens (listen.https may say :0). They are served further down.
	webLns := make(map[string]net.Listener)
	for name, addr := range map[string]string{"https": cfg.Listen.HTTPS, "http": cfg.Listen.HTTP} {
		if !on(addr) {
			continue
		}
		if webLns[name], err = listen(name, addr); err != nil {
			return fail(err)
		}
	}
	upCfg := cfg
	var warn string
	upCfg.HTTPUpload.PublicURL, warn = uploadPublicURL(cfg, s.addrs["https"], s.addrs["http"])
	if warn != "" {
		log.Warn(warn, "module", "httpupload")
	}
	reg := module.NewRegistry()
	upload, err := newUpload(ctx, upCfg, store)
	if err != nil {
		return fail(err)
	}
	s.mods = modules(cfg, store, reg, upload)
	if err := validateModules(s.mods); err != nil {
		return fail(err)
	}
	exists := func(ctx context.Context, bare jid.JID) bool {
		_, err := store.Credentials(ctx, bare.String())
		return err == nil || !errors.Is(err, storage.ErrNotFound)
	}
	s.router = router.New(domain, reg, exists, log.With("component", "router"))
	if err := reg.Register(s.mods, s.router, domain, log); err != nil {
		return fail(err)
	}
	s.router.Start()
	fakeKey, err := fakeSaltKey(ctx, store, domain.String())
	if err != nil {
		return fail(err)
	}
	lookup := func(ctx context.Context, user string) ([]storage.ScramCredential, error) {
		j, err := jid.New(user, domain.Domainpart(), "")
		if err != nil {
			return nil, storage.ErrNotFound
		}
		return store.Credentials(ctx, j.String())
	}
	authSrv := auth.NewServer(auth.Config{
		Domain:            domain.String(),
		FakeSaltKey:       fakeKey,
		Lookup:            lookup,
		AllowPlain:        cfg.allowPlain(),
		DefaultIterations: cfg.Auth.ScramIterations,
	})
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.c2s, err = c2s.New(cfg.C2S, domain, tlsCfg, cert.Certificate[0], s.router, reg, authSrv, log.With("component", "c2s"))
	if err != nil {
		return fail(err)
	}
	if cfg.C2S.FASTTokenExpiry >= 0 {
		key, err := fastKey(cfg.DataDir)
		if err != nil {
			return fail(err)
		}
		tokens, err := auth.NewTokens(auth.TokensConfig{KV: store, Key: key, Expiry: cfg.C2S.FASTTokenExpiry,
			Lookup: lookup, Domain: domain.Domainpart()})
		if err != nil {
			return fail(err)
		}
		s.c2s.SetFASTTokens(tokens)
	}
	// XMPP over WebSocket: each upgraded connection is served by the same c2s core as TCP.
	s.ws, err = websocket.New(cfg.WebSocket, s.c2s.ServeConn, log.With("component", "websocket"))
	if err != nil {
		return fail(err)
	}
	if _, err := listen("c2s", cfg.Listen.C2S); err != nil {
		return fail(err)
	}
	if on(cfg.Listen.C2STLS) {
		if _, err := listen("c2s_tls", cfg.Listen.C2STLS); err != nil {
			return fail(err)
		}
	}
	mux, err := s.webMux()
	if err != nil {
		return fail(err)
	}
	for _, l := range []struct {
		name string
		tls  bool
	}{{"https", true}, {"http", false}} {
		ln := webLns[l.name]
		if ln == nil {
			continue
		}
		// No ReadTimeout: an upload of max_file_size over a slow link takes minutes.
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		s.web = append(s.web, hs)
		if l.tls {
			hs.TLSConfig = tlsCfg.Clone()
			go hs.ServeTLS(ln, "", "")
		} else {
			go hs.Serve(ln)
		}
	}
	if on(cfg.Listen.Metrics) {
		ln, err := listen("metrics", cfg.Listen.Metrics)
		if err != nil {
			return fail(err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", s.metrics)
		if cfg.Listen.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go s.http.Serve(ln)
	}
	return s, nil
}

// fakeSaltKey returns the secret from which SCRAM answers for unknown users derive their salts. It is kept in
// the database, so the fake salts stay the same across restarts and across the nodes of a cluster: a salt that
// changed would tell an attacker the account does not exist.
func fakeSaltKey(ctx context.Context, kv storage.KV, domain string) ([]byte, error) {
	const key = "auth/fake-salt-key"
	v, err := kv.Value(ctx, domain, key)
	if err == nil && len(v) >= 32 {
		return v, nil
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("auth: %w", err)
	}
	v = make([]byte, 32)
	if _, err := rand.Read(v); err != nil {
		return nil, err
	}
	if err := kv.PutValue(ctx, domain, key, v); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return v, nil
}

// fastKey returns the secret FAST tokens are derived from (auth.Tokens), kept in data_dir/fast.key and not in
// the database, so that a copy of the database holds no usable token. It is made on first use; nodes that share
// one database must share the file.
func fastKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, "fast.key")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("fast: %w", err)
	}
	b := make([]byte, 32)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("fast: %w", err)
	}
	return b, nil
}

func on(addr string) bool { return addr != "" && addr != "off" }

// run serves until ctx is done, then shuts down: sessions get system-shutdown and their unavailable presence
// is processed before storage closes.
func (s *server) run(ctx context.Context) error {
	errc := make(chan error, 2)
	for _, ln := range s.lns {
		name := ""
		for n, a := range s.addrs {
			if a == ln.Addr().String() {
				name = n
			}
		}
		switch name {
		case "c2s":
			go func() { errc <- s.c2s.Serve(ln, false) }()
		case "c2s_tls":
			go func() { errc <- s.c2s.Serve(ln, true) }()
		}
	}
	// Runners get their own context: shutdown ends them after the sessions are gone (whose last stanzas may
	// still reach a module) and waits for them before the store closes.
	rctx, stopRunners := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRunners()
	for _, m := range s.mods {
		if r, ok := m.(module.Runner); ok {
			s.runners.Add(1)
			go func() {
				defer s.runners.Done()
				r.Run(rctx)
			}()
		}
	}
	trim := 30 * time.Second
	if s.cfg.Runtime.IdleTrim != nil {
		trim = *s.cfg.Runtime.IdleTrim
	}
	go trimIdle(ctx, trim, s.log)
	s.log.Info("parley serving", "domain", s.cfg.Domain, "c2s", s.addrs["c2s"], "c2s_tls", s.addrs["c2s_tls"],
		"metrics", s.addrs["metrics"], "storage", s.cfg.Storage.Driver)
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			s.log.Error("listener failed", "err", err)
		}
	}
	s.log.Info("shutting down")
	for _, ln := range s.lns {
		ln.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.c2s.Shutdown(sctx)
	stopRunners()
	// A budget of its own: a slow session shutdown must not leave the runners no time.
	rwctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	s.waitRunners(rwctx)
	s.close()
	return nil
}

// waitRunners waits until every module runner has returned, or ctx ends (a runner stuck in I/O must not hold
// the process forever; the store then closes under it, and the runner's writes fail).
func (s *server) waitRunners(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.runners.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("module runners did not stop in time; closing the store anyway")
	}
}

func (s *server) close() {
	for _, ln := range s.lns {
		ln.Close()
	}
	if s.http != nil {
		s.http.Close()
	}
	for _, hs := range s.web {
		hs.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// metrics writes the Prometheus text exposition format.
func (s *server) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	var b strings.Builder
	gauge := func(name, help string, v int64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	cs, rs := &s.c2s.Stats, &s.router.Stats
	gauge("parley_c2s_connections", "Open client connections.", cs.Connections.Load())
	gauge("parley_sessions", "Bound client sessions.", rs.Sessions.Load())
	counter("parley_c2s_accepted_total", "Client connections accepted.", cs.Accepted.Load())
	counter("parley_c2s_refused_total", "Client connections refused by the per-address rate or cap.", cs.Refused.Load())
	counter("parley_auth_success_total", "Successful SASL authentications.", cs.AuthSuccesses.Load())
	counter("parley_auth_failure_total", "Failed SASL authentications.", cs.AuthFailures.Load())
	counter("parley_stream_errors_total", "Stream errors sent.", cs.StreamErrors.Load())
	counter("parley_c2s_stanzas_in_total", "Stanzas received from clients.", cs.StanzasIn.Load())
	counter("parley_c2s_bytes_in_total", "Stanza bytes received from clients.", cs.BytesIn.Load())
	fmt.Fprintf(&b, "# HELP parley_routed_total Stanzas routed, by kind.\n# TYPE parley_routed_total counter\n")
	fmt.Fprintf(&b, "parley_routed_total{kind=\"message\"} %d\n", rs.Messages.Load())
	fmt.Fprintf(&b, "parley_routed_total{kind=\"presence\"} %d\n", rs.Presences.Load())
	fmt.Fprintf(&b, "parley_routed_total{kind=\"iq\"} %d\n", rs.IQs.Load())
	counter("parley_stanza_errors_total", "Error replies generated by the router.", rs.Errors.Load())
	// Module counters: each module that has some writes them itself (module.MetricsReporter).
	for _, m := range s.mods {
		if mr, ok := m.(module.MetricsReporter); ok {
			mr.WriteMetrics(&b)
		}
	}
	w.Write([]byte(b.String()))
}

// serveCmd is `parley serve`.
func serveCmd(cfg Config, log *slog.Logger, readyFile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := newServer(ctx, cfg, log)
	if err != nil {
		return err
	}
	if readyFile != "" {
		b, _ := json.Marshal(s.addrs)
		if err := os.WriteFile(readyFile, b, 0o644); err != nil {
			s.close()
			return fmt.Errorf("ready file: %w", err)
		}
	}
	if cfg.Domain == "localhost" {
		where := s.addrs["c2s"] + " (STARTTLS)"
		if a := s.addrs["c2s_tls"]; a != "" {
			where += " and " + a + " (direct TLS)"
		}
		fmt.Fprintf(os.Stderr, "\nParley is serving localhost on %s.\n"+
			"Add a user:   go run ./cmd/parley user add alice@localhost\n"+
			"Then connect a client (Gajim, profanity, Conversations) as alice@localhost and accept the self-signed certificate.\n\n",
			where)
	}
	return s.run(ctx)
}
