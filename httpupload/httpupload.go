// Package httpupload implements XEP-0363: HTTP File Upload. The service has its own JID (upload.<domain>),
// listed in the server's disco#items. A client asks it for a slot for one file (name, size, content type);
// the service checks the size limit, the account's quota and request rate, and answers with a URL to PUT the
// file to and a URL to GET it from. The bytes then go over HTTP: to Parley's own handler with the local
// backend, straight to the bucket with the s3 backend. Files expire after a retention period; a sweeper
// deletes them.
//
// There is no slot table. A slot is a key "owner/slot/filename" in the blob store: owner is an HMAC of the
// account's bare JID, slot a random id. What a PUT may write is in the signed URL; what is stored is listed
// by the store itself (size, time), which is enough to count quotas and expire files on any node, across
// restarts. Slots handed out but not yet used are held in memory on the node that issued them until their
// PUT URL expires. README.md has the details.
package httpupload

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/form"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// Namespaces.
const (
	NS        = "urn:xmpp:http:upload:0"
	nsInfo    = "http://jabber.org/protocol/disco#info"
	nsItems   = "http://jabber.org/protocol/disco#items"
	secretKey = "httpupload/secret"
)

// Deps is what the module needs from the server besides its configuration.
type Deps struct {
	// Domain is the server's domain; the service defaults to upload.<Domain>.
	Domain string
	// DataDir is the server's data directory; the local backend stores files in DataDir/uploads.
	DataDir string
	// KV keeps the generated secret when none is configured (owner Domain, key "httpupload/secret").
	KV storage.KV
	// Blobs is the store of the s3 backend (storage/s3); nil with the local backend.
	Blobs storage.Blobs
}

// Module is the upload service.
type Module struct {
	cfg     Config
	blobs   storage.Blobs
	disk    *disk // the local backend, nil with s3
	sign    *signer
	base    *url.URL // PublicURL
	handler *handler
	// redirectGets: the download URL in a slot points at Parley, which redirects to a fresh presigned URL (s3
	// without a public base URL).
	redirectGets bool
	domain       string // the server's
	service      jid.JID
	router       module.Router
	log          *slog.Logger
	now          func() time.Time

	mu      sync.Mutex
	pending map[string][]reservation // owner id -> slots handed out whose PUT URL is still valid
	recent  map[string][]time.Time   // owner id -> times of slot requests in the last minute

	Stats Stats
}

// reservation is a slot handed out on this node and maybe not yet used; it counts against the quota until it
// is listed in the store or its PUT URL expires.
type reservation struct {
	key     string
	size    int64
	expires time.Time
}

// Stats are the module's counters, exported as metrics.
type Stats struct {
	Slots        atomic.Uint64 // slots handed out
	TooLarge     atomic.Uint64 // requests refused: file larger than max_file_size
	OverQuota    atomic.Uint64 // requests refused: quota
	RateLimited  atomic.Uint64 // requests refused: slots_per_minute
	Refused      atomic.Uint64 // requests refused otherwise (not allowed, bad file name, size or type)
	Errors       atomic.Uint64 // requests that failed on storage
	Expired      atomic.Uint64 // files deleted by the sweeper
	ExpiredBytes atomic.Uint64
}

// New builds the module with its backend: files under d.DataDir/uploads, or d.Blobs for s3. The secret comes
// from cfg.Secret, else from d.KV (generated there on first start).
func New(ctx context.Context, cfg Config, d Deps) (*Module, error) {
	cfg.setDefaults(d.Domain)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	secret := []byte(cfg.Secret)
	if len(secret) == 0 {
		if d.KV == nil {
			return nil, errors.New("httpupload: no secret configured and no store to keep one")
		}
		var err error
		if secret, err = loadSecret(ctx, d.KV, d.Domain); err != nil {
			return nil, err
		}
	}
	base, err := url.Parse(strings.TrimRight(cfg.PublicURL, "/") + "/")
	if err != nil {
		return nil, fmt.Errorf("httpupload.public_url: %w", err)
	}
	m := &Module{
		cfg:     cfg,
		sign:    newSigner(secret),
		base:    base,
		domain:  d.Domain,
		log:     slog.Default().With("module", "httpupload"),
		now:     time.Now,
		pending: make(map[string][]reservation),
		recent:  make(map[string][]time.Time),
	}
	m.handler = &handler{sign: m.sign, m: m}
	switch cfg.Backend {
	case "s3":
		if d.Blobs == nil {
			return nil, errors.New("httpupload: backend s3 needs a blob store")
		}
		m.blobs = d.Blobs
		m.redirectGets = cfg.S3.PublicBaseURL == ""
		m.handler.redir = func(ctx context.Context, key, ct string) (string, error) {
			return m.blobs.GetURL(ctx, key, ct, redirectTTL)
		}
	default:
		if d.DataDir == "" {
			return nil, errors.New("httpupload: backend local needs the data directory")
		}
		if m.disk, err = newDisk(filepath.Join(d.DataDir, "uploads"), m.sign, cfg.Retention); err != nil {
			return nil, err
		}
		m.blobs = m.disk
		m.handler.disk = m.disk
	}
	return m, nil
}

// loadSecret returns the secret kept in the store, generating it on first use. Nodes that start together may
// both generate one: the last write wins and is read back, so every node ends up with the stored value.
func loadSecret(ctx context.Context, kv storage.KV, domain string) ([]byte, error) {
	v, err := kv.Value(ctx, domain, secretKey)
	if err == nil && len(v) >= 32 {
		return v, nil
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("httpupload: secret: %w", err)
	}
	v = make([]byte, 32)
	rand.Read(v)
	if err := kv.PutValue(ctx, domain, secretKey, v); err != nil {
		return nil, fmt.Errorf("httpupload: secret: %w", err)
	}
	if v, err = kv.Value(ctx, domain, secretKey); err != nil {
		return nil, fmt.Errorf("httpupload: secret: %w", err)
	}
	return v, nil
}

// Name implements module.Module.
func (*Module) Name() string { return "httpupload" }

// Register implements module.Module: the service domain takes every stanza addressed to it and is listed in
// the server's disco#items. Its disco#info (identity store/file, feature urn:xmpp:http:upload:0, max file size)
// is answered by the service itself.
func (m *Module) Register(h *module.Host) error {
	m.router = h.Router()
	m.log = h.Log()
	if m.domain == "" {
		m.domain = h.Domain().Domainpart()
	}
	svc, err := jid.Parse(m.cfg.Domain)
	if err != nil {
		return fmt.Errorf("httpupload.domain: %w", err)
	}
	m.service = svc
	return h.Service(svc, "HTTP File Upload", m)
}

// Handler returns the HTTP handler to mount at Prefix on the server's HTTP listener.
func (m *Module) Handler() http.Handler { return m.handler }

// Domain returns the service's JID.
func (m *Module) Domain() string { return m.cfg.Domain }

// HandleStanza implements module.ServiceHandler.
func (m *Module) HandleStanza(ctx context.Context, _ module.Origin, s *stanza.Stanza) {
	switch s.Kind {
	case stanza.IQ:
		if !s.IsIQRequest() {
			return
		}
		m.handleIQ(ctx, s)
	case stanza.Message:
		if s.Type != "error" && s.Type != "groupchat" && s.Type != "headline" {
			m.router.Route(ctx, stanza.ErrorReply(s, m.service, stanza.ErrServiceUnavailable))
		}
	}
	// Presence to the service means nothing to it.
}

func (m *Module) handleIQ(ctx context.Context, s *stanza.Stanza) {
	local, ns, raw, ok := stanza.FirstChild(s.Payload())
	var inner []byte
	var err error
	switch {
	case !ok:
		err = stanza.ErrBadRequest
	case s.Type == "get" && ns == nsInfo && local == "query":
		inner, err = m.discoInfo(raw)
	case s.Type == "get" && ns == nsItems && local == "query":
		inner, err = m.discoItems(raw)
	case s.Type == "get" && ns == NS && local == "request":
		inner, err = m.requestSlot(ctx, s.From, raw)
	default:
		err = stanza.ErrServiceUnavailable
	}
	if err != nil {
		se := stanza.AsError(err)
		if se == stanza.ErrInternal {
			m.log.Error("slot request failed", "from", s.From.String(), "err", err)
		}
		m.router.Route(ctx, stanza.ErrorReply(s, m.service, se))
		return
	}
	m.router.Route(ctx, stanza.Result(s, inner))
}

type discoQuery struct {
	Node string `xml:"node,attr"`
}

// discoInfo answers disco#info (XEP-0030) with the XEP-0363 identity and feature and the maximum file size in
// a XEP-0128 form.
func (m *Module) discoInfo(raw []byte) ([]byte, error) {
	var q discoQuery
	if err := xml.Unmarshal(raw, &q); err != nil {
		return nil, stanza.ErrBadRequest
	}
	if q.Node != "" {
		return nil, stanza.ErrItemNotFound
	}
	b := []byte("<query xmlns='" + nsInfo + "'>" +
		"<identity category='store' type='file' name='HTTP File Upload'/>" +
		"<feature var='" + nsInfo + "'/><feature var='" + nsItems + "'/><feature var='" + NS + "'/>")
	f := form.New(form.TypeResult, NS).
		Add(form.Field{Var: "max-file-size", Values: []string{strconv.FormatInt(int64(m.cfg.MaxFileSize), 10)}})
	return append(f.Append(b), "</query>"...), nil
}

func (m *Module) discoItems(raw []byte) ([]byte, error) {
	var q discoQuery
	if err := xml.Unmarshal(raw, &q); err != nil {
		return nil, stanza.ErrBadRequest
	}
	if q.Node != "" {
		return nil, stanza.ErrItemNotFound
	}
	return []byte("<query xmlns='" + nsItems + "'/>"), nil
}

type slotRequest struct {
	Filename    *string `xml:"filename,attr"`
	Size        *string `xml:"size,attr"`
	ContentType string  `xml:"content-type,attr"`
}

// requestSlot checks a slot request (XEP-0363 section 4) and hands out a slot.
func (m *Module) requestSlot(ctx context.Context, from jid.JID, raw []byte) ([]byte, error) {
	if from.Localpart() == "" || !m.cfg.allowed(from.Domainpart(), m.domain) {
		m.Stats.Refused.Add(1)
		return nil, &stanza.Error{Type: "cancel", Condition: "not-allowed", Text: "only users of " + m.domain + " may upload files here"}
	}
	var req slotRequest
	if err := xml.Unmarshal(raw, &req); err != nil {
		m.Stats.Refused.Add(1)
		return nil, stanza.ErrBadRequest
	}
	ct := req.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	size, err := m.checkRequest(req.Filename, req.Size, ct)
	if err != nil {
		return nil, err
	}
	filename := *req.Filename
	owner := m.sign.ownerID(from.Bare().String())
	now := m.now()
	if err := m.checkRate(owner, now); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// The quota needs a listing, which for s3 is a request: outside the lock, then the reservations of this
	// node are added under it, so that two requests of one account cannot both take the last free bytes here.
	stored, seen, err := m.storedBytes(ctx, owner, now)
	if err != nil {
		m.Stats.Errors.Add(1)
		return nil, fmt.Errorf("httpupload: %w", err)
	}
	var id [16]byte
	rand.Read(id[:])
	key := owner + "/" + lowerBase32.EncodeToString(id[:]) + "/" + filename
	m.mu.Lock()
	used := stored
	live := m.pending[owner][:0]
	for _, r := range m.pending[owner] {
		if r.expires.After(now) {
			live = append(live, r)
			if !seen[r.key] {
				used += r.size
			}
		}
	}
	m.pending[owner] = live
	if q := int64(m.cfg.QuotaPerUser); q > 0 && used+size > q {
		m.mu.Unlock()
		m.Stats.OverQuota.Add(1)
		return nil, &stanza.Error{Type: "wait", Condition: "resource-constraint", Text: fmt.Sprintf(
			"Quota reached: %d of %d bytes used; files expire %s after upload", used, q, m.cfg.Retention)}
	}
	m.pending[owner] = append(m.pending[owner], reservation{key: key, size: size, expires: now.Add(m.cfg.PutTTL)})
	m.mu.Unlock()

	putURL, headers, err := m.blobs.PresignPut(ctx, key, size, ct, m.cfg.PutTTL)
	if err == nil {
		putURL, err = m.resolve(putURL)
	}
	var getURL string
	if err == nil {
		getURL, err = m.downloadURL(ctx, key, ct)
	}
	if err != nil {
		m.release(owner, key)
		m.Stats.Errors.Add(1)
		return nil, fmt.Errorf("httpupload: %w", err)
	}
	m.Stats.Slots.Add(1)
	m.log.Debug("slot", "from", from.String(), "key", key, "size", size, "content_type", ct)
	return m.slotXML(putURL, headers, getURL), nil
}

// checkRequest validates the file name, size and content type of a request and returns the size.
func (m *Module) checkRequest(filename, sizeAttr *string, ct string) (int64, error) {
	refuse := func(text string) error {
		m.Stats.Refused.Add(1)
		return &stanza.Error{Type: "modify", Condition: "not-acceptable", Text: text}
	}
	if filename == nil {
		return 0, refuse("the request has no file name")
	}
	if err := validFilename(*filename); err != nil {
		return 0, refuse(err.Error())
	}
	if sizeAttr == nil {
		return 0, refuse("the request has no size")
	}
	size, err := strconv.ParseInt(strings.TrimSpace(*sizeAttr), 10, 64)
	if err != nil || size <= 0 {
		return 0, refuse("the size is not a positive integer")
	}
	if err := validContentType(ct); err != nil {
		return 0, refuse(err.Error())
	}
	if max := int64(m.cfg.MaxFileSize); size > max {
		m.Stats.TooLarge.Add(1)
		app := fmt.Appendf(nil, "<file-too-large xmlns='%s'><max-file-size>%d</max-file-size></file-too-large>", NS, max)
		return 0, &stanza.Error{Type: "modify", Condition: "not-acceptable", App: app,
			Text: fmt.Sprintf("File too large: the maximum file size is %d bytes", max)}
	}
	return size, nil
}

// checkRate counts a request against slots_per_minute and refuses it, with the time a slot will be granted
// again, when the account had that many in the last minute.
func (m *Module) checkRate(owner string, now time.Time) error {
	limit := m.cfg.SlotsPerMinute
	if limit < 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	times := m.recent[owner]
	i := 0
	for i < len(times) && !times[i].After(now.Add(-time.Minute)) {
		i++
	}
	times = times[i:]
	if len(times) >= limit {
		m.recent[owner] = times
		m.Stats.RateLimited.Add(1)
		// Rounded up to the second the stamp shows, so that a client retrying at the stamp is not early.
		retry := times[len(times)-limit].Add(time.Minute + time.Second - 1).Truncate(time.Second).UTC()
		app := fmt.Appendf(nil, "<retry xmlns='%s' stamp='%s'/>", NS, retry.Format(time.RFC3339))
		return &stanza.Error{Type: "wait", Condition: "resource-constraint", App: app,
			Text: fmt.Sprintf("Too many uploads: at most %d files a minute", limit)}
	}
	m.recent[owner] = append(times, now)
	return nil
}

// storedBytes sums the sizes of the account's files within the retention, and returns their keys.
func (m *Module) storedBytes(ctx context.Context, owner string, now time.Time) (int64, map[string]bool, error) {
	if m.cfg.QuotaPerUser < 0 {
		return 0, nil, nil
	}
	cutoff := now.Add(-m.cfg.Retention)
	var total int64
	seen := make(map[string]bool)
	err := m.blobs.List(ctx, owner+"/", func(b storage.BlobInfo) error {
		if b.Modified.After(cutoff) {
			total += b.Size
			seen[b.Key] = true
		}
		return nil
	})
	return total, seen, err
}

func (m *Module) release(owner, key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.pending[owner]
	for i, r := range rs {
		if r.key == key {
			m.pending[owner] = append(rs[:i:i], rs[i+1:]...)
			break
		}
	}
}

// downloadURL is the slot's GET URL: the store's, or Parley's redirect when the store can only presign.
func (m *Module) downloadURL(ctx context.Context, key, ct string) (string, error) {
	if m.redirectGets {
		dir, name := splitKey(key)
		return m.resolve(uploadPath(m.sign.encode(token{Dir: dir, ContentType: ct}, name), name))
	}
	u, err := m.blobs.GetURL(ctx, key, ct, m.cfg.Retention)
	if err != nil {
		return "", err
	}
	return m.resolve(u)
}

// resolve makes a URL relative to the HTTP listener absolute under PublicURL (which may have a path).
func (m *Module) resolve(ref string) (string, error) {
	if !strings.HasPrefix(ref, "/") {
		return ref, nil
	}
	u, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	u.Path = strings.TrimPrefix(u.Path, "/")
	u.RawPath = strings.TrimPrefix(u.RawPath, "/")
	return m.base.ResolveReference(u).String(), nil
}

// allowedHeaders are the headers XEP-0363 section 4 lets a slot carry; a client ignores any other.
var allowedHeaders = map[string]bool{"Authorization": true, "Cookie": true, "Expires": true}

func (m *Module) slotXML(putURL string, headers map[string]string, getURL string) []byte {
	b := []byte("<slot xmlns='" + NS + "'><put url='")
	b = stanza.AppendEscape(b, putURL)
	b = append(b, "'>"...)
	for name, v := range headers {
		if !allowedHeaders[name] {
			m.log.Warn("the store wants a header XEP-0363 does not allow; uploads will fail", "header", name)
			continue
		}
		b = append(b, "<header name='"...)
		b = stanza.AppendEscape(b, name)
		b = append(b, "'>"...)
		b = stanza.AppendEscape(b, strings.Map(dropNewlines, v))
		b = append(b, "</header>"...)
	}
	b = append(b, "</put><get url='"...)
	b = stanza.AppendEscape(b, getURL)
	return append(b, "'/></slot>"...)
}

func dropNewlines(r rune) rune {
	if r == '\r' || r == '\n' {
		return -1
	}
	return r
}

// Run deletes files older than the retention every SweepInterval until ctx ends (module.Runner), and forgets
// rate and reservation records that no longer matter.
func (m *Module) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.SweepInterval)
	defer t.Stop()
	for {
		n, bytes, err := m.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			m.log.Error("expiring uploads failed", "err", err)
		} else if n > 0 {
			m.log.Info("expired uploads", "files", n, "bytes", bytes, "older_than", m.cfg.Retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep deletes every file older than the retention and returns how many files and bytes it removed.
func (m *Module) Sweep(ctx context.Context) (files int, size int64, err error) {
	now := m.now()
	cutoff := now.Add(-m.cfg.Retention)
	var expired []storage.BlobInfo
	err = m.blobs.List(ctx, "", func(b storage.BlobInfo) error {
		if b.Modified.Before(cutoff) {
			expired = append(expired, b)
		}
		return nil
	})
	for _, b := range expired {
		if derr := m.blobs.Delete(ctx, b.Key); derr != nil {
			err = errors.Join(err, derr)
			continue
		}
		files++
		size += b.Size
	}
	m.Stats.Expired.Add(uint64(files))
	m.Stats.ExpiredBytes.Add(uint64(size))
	if m.disk != nil {
		// An upload still running after a day is not coming back.
		m.disk.cleanTemp(24 * time.Hour)
	}
	m.forget(now)
	return files, size, err
}

// forget drops rate records older than a minute and reservations whose PUT URL expired.
func (m *Module) forget(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for owner, ts := range m.recent {
		if len(ts) == 0 || !ts[len(ts)-1].After(now.Add(-time.Minute)) {
			delete(m.recent, owner)
		}
	}
	for owner, rs := range m.pending {
		live := rs[:0]
		for _, r := range rs {
			if r.expires.After(now) {
				live = append(live, r)
			}
		}
		if len(live) == 0 {
			delete(m.pending, owner)
		} else {
			m.pending[owner] = live
		}
	}
}

// WriteMetrics writes the module's counters in the Prometheus text format.
func (m *Module) WriteMetrics(w io.Writer) {
	var b bytes.Buffer
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	counter("parley_upload_slots_total", "Upload slots handed out (XEP-0363).", m.Stats.Slots.Load())
	fmt.Fprintf(&b, "# HELP parley_upload_refused_total Slot requests refused, by reason.\n# TYPE parley_upload_refused_total counter\n")
	for _, r := range []struct {
		reason string
		v      uint64
	}{{"too_large", m.Stats.TooLarge.Load()}, {"quota", m.Stats.OverQuota.Load()}, {"rate", m.Stats.RateLimited.Load()},
		{"invalid", m.Stats.Refused.Load()}, {"storage_error", m.Stats.Errors.Load()}} {
		fmt.Fprintf(&b, "parley_upload_refused_total{reason=%q} %d\n", r.reason, r.v)
	}
	counter("parley_upload_expired_total", "Uploaded files deleted after the retention.", m.Stats.Expired.Load())
	counter("parley_upload_expired_bytes_total", "Bytes of uploaded files deleted after the retention.", m.Stats.ExpiredBytes.Load())
	if m.disk != nil {
		counter("parley_upload_puts_total", "Files stored through the local backend.", m.disk.uploads.Load())
		counter("parley_upload_put_bytes_total", "Bytes stored through the local backend.", m.disk.uploadBytes.Load())
		counter("parley_upload_gets_total", "Downloads served by the local backend.", m.disk.downloads.Load())
	}
	w.Write(b.Bytes())
}

var (
	_ module.Module         = (*Module)(nil)
	_ module.Runner         = (*Module)(nil)
	_ module.ServiceHandler = (*Module)(nil)
)
