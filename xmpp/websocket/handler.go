// Package websocket serves XMPP over WebSocket (RFC 7395) as a transport adapter for the c2s session core: it
// upgrades HTTP requests and hands each connection to c2s as a net.Conn whose byte stream looks like a TCP XMPP
// stream, so negotiation, SASL, stream management, carbons and MAM behave exactly as on TCP. It also serves
// the XEP-0156 discovery documents (/.well-known/host-meta and host-meta.json).
package websocket

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/coder/websocket"
)

// Subprotocol is the WebSocket subprotocol of RFC 7395.
const Subprotocol = "xmpp"

// AcceptFunc serves one connection and returns when it has ended, like (*c2s.Server).ServeConn. ip is the
// client's address (behind a trusted proxy, the one it forwarded); secure says the WebSocket is encrypted
// (wss, or a trusted TLS-terminating proxy), so the stream must offer no STARTTLS. The function owns conn
// and closes it; the handler does not close it when the function returns.
type AcceptFunc func(conn net.Conn, ip string, secure bool)

// Stats are the handler's counters for the metrics endpoint.
type Stats struct {
	Upgrades atomic.Uint64 // WebSocket connections accepted
	Refused  atomic.Uint64 // upgrade requests refused (subprotocol, origin, insecure)
	Open     atomic.Int64  // WebSocket connections open
}

// Handler accepts XMPP WebSocket connections at Config.Path.
type Handler struct {
	cfg       Config
	accept    AcceptFunc
	log       *slog.Logger
	origins   []originPattern
	anyOrigin bool
	public    *url.URL
	proxies   []netip.Prefix // websocket.trusted_proxies
	Stats     Stats
}

// New returns a handler that passes each accepted connection to accept.
func New(cfg Config, accept AcceptFunc, log *slog.Logger) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if accept == nil {
		return nil, errors.New("websocket: no accept function")
	}
	cfg.setDefaults()
	if log == nil {
		log = slog.Default()
	}
	h := &Handler{cfg: cfg, accept: accept, log: log}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			h.anyOrigin = true
			continue
		}
		p, _ := parseOriginPattern(o)
		h.origins = append(h.origins, p)
	}
	if cfg.PublicURL != "" {
		h.public, _ = url.Parse(cfg.PublicURL)
	}
	h.proxies, _ = parsePrefixes(cfg.TrustedProxies)
	return h, nil
}

// Register adds the WebSocket endpoint and the XEP-0156 documents to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle(h.cfg.Path, h)
	mux.Handle("/.well-known/host-meta", h.HostMeta())
	mux.Handle("/.well-known/host-meta.json", h.HostMetaJSON())
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, code int, why string) {
	h.Stats.Refused.Add(1)
	h.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "why", why)
	http.Error(w, why, code)
}

// ServeHTTP upgrades the request and serves the connection until it ends.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		h.refuse(w, r, http.StatusMethodNotAllowed, "XMPP over WebSocket: GET with Upgrade: websocket")
		return
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		h.refuse(w, r, http.StatusUpgradeRequired, "XMPP over WebSocket (RFC 7395): connect with a WebSocket client and the xmpp subprotocol")
		return
	}
	// RFC 7395 section 3.2: without the xmpp subprotocol this is not an XMPP WebSocket.
	if !headerHasToken(r.Header, "Sec-WebSocket-Protocol", Subprotocol) {
		h.refuse(w, r, http.StatusBadRequest, "the xmpp WebSocket subprotocol is required (RFC 7395)")
		return
	}
	if !h.originAllowed(r) {
		h.refuse(w, r, http.StatusForbidden, "origin not allowed")
		return
	}
	secure, ip := h.classify(r)
	if !secure && !h.cfg.AllowPlaintext {
		// RFC 7395 section 3.8: TLS is the WebSocket's (wss), never STARTTLS inside it.
		h.refuse(w, r, http.StatusForbidden, "XMPP over WebSocket requires TLS: use wss://")
		return
	}
	var c *Conn
	rw := &batchResponse{ResponseWriter: w}
	ws, err := websocket.Accept(rw, r, &websocket.AcceptOptions{
		Subprotocols:       []string{Subprotocol},
		InsecureSkipVerify: true, // checked above
		CompressionMode:    websocket.CompressionDisabled,
		OnPingReceived: func(context.Context, []byte) bool {
			if c != nil {
				c.touch()
			}
			return true
		},
	})
	if err != nil {
		h.Stats.Refused.Add(1)
		h.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	if ws.Subprotocol() != Subprotocol {
		ws.Close(websocket.StatusPolicyViolation, "xmpp subprotocol required")
		return
	}
	ws.SetReadLimit(int64(h.cfg.MaxMessage))
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	remote := net.Addr(&net.TCPAddr{})
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		remote = net.TCPAddrFromAddrPort(ap)
	}
	if a, err := netip.ParseAddr(ip); err == nil && ip != hostOf(r.RemoteAddr) {
		remote = net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
	}
	c = newConn(ws, rw.conn, local, remote, h.cfg, h.log.With("remote", ip))
	h.Stats.Upgrades.Add(1)
	h.Stats.Open.Add(1)
	c.onClose = func() { h.Stats.Open.Add(-1) }
	c.start()
	h.log.Debug("websocket connection", "ip", ip, "secure", secure, "origin", r.Header.Get("Origin"))
	h.accept(c, ip, secure)
}

// originAllowed applies the Origin policy: no Origin (not a browser), the host the request was sent to, the
// host of public_url, or an allowed_origins entry.
func (h *Handler) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || h.anyOrigin {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.Path != "" && u.Path != "/" || u.User != nil {
		return false // includes "null"
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if host == strings.ToLower(r.Host) || h.public != nil && host == strings.ToLower(h.public.Host) {
		return true
	}
	for _, p := range h.origins {
		if p.match(scheme, host) {
			return true
		}
	}
	return false
}

// classify says whether the request is secure and which client address it comes from. A request from
// loopback with trust_proxy_tls, or from a trusted_proxies network, comes through a proxy whose forwarded
// address is the client's; trust_proxy_tls also takes such a request as secure unless the proxy says the client
// used plain http.
func (h *Handler) classify(r *http.Request) (secure bool, ip string) {
	peer := hostOf(r.RemoteAddr)
	secure, ip = r.TLS != nil, peer
	a, err := netip.ParseAddr(peer)
	if err != nil {
		return secure, ip
	}
	a = a.Unmap()
	listed := h.trusted(a)
	if !listed && !(h.cfg.TrustProxyTLS && a.IsLoopback()) {
		return secure, ip
	}
	if h.cfg.TrustProxyTLS {
		switch forwardedProto(r) {
		case "", "https", "wss":
			secure = true
		}
	}
	if fwd := h.forwardedFor(r); fwd != "" {
		ip = fwd
	}
	return secure, ip
}

// trusted reports whether a is in a trusted_proxies network.
func (h *Handler) trusted(a netip.Addr) bool {
	for _, p := range h.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

// forwardedProto is the scheme the proxy says the client used, lower case, or "".
func forwardedProto(r *http.Request) string {
	if v := r.Header.Get("X-Forwarded-Proto"); v != "" {
		first, _, _ := strings.Cut(v, ",")
		return strings.ToLower(strings.TrimSpace(first))
	}
	if v := lastForwarded(r, "proto"); v != "" {
		return strings.ToLower(v)
	}
	return ""
}

// forwardedFor is the client address the proxy reports: X-Real-IP, else the right-most X-Forwarded-For entry
// that is not a trusted proxy (each proxy appends the address it got the request from, so entries further left
// were written by the client and prove nothing), else Forwarded for=. Empty when none is a valid IP address.
func (h *Handler) forwardedFor(r *http.Request) string {
	if v := validForwarded(r.Header.Get("X-Real-IP")); v != "" {
		return v
	}
	if xs := r.Header.Values("X-Forwarded-For"); len(xs) > 0 {
		entries := strings.Split(strings.Join(xs, ","), ",")
		for i := len(entries) - 1; i >= 0; i-- {
			v := validForwarded(entries[i])
			if v == "" {
				break
			}
			if a, err := netip.ParseAddr(v); err == nil && h.trusted(a) && i > 0 {
				continue // another proxy of ours in the chain
			}
			return v
		}
	}
	return validForwarded(lastForwarded(r, "for"))
}

// validForwarded returns the address of a forwarded entry ("192.0.2.1", "[2001:db8::1]:443", quoted), or "".
func validForwarded(s string) string {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if strings.HasPrefix(s, "[") {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr().String()
		}
		s = strings.Trim(s, "[]")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().String()
	}
	return ""
}

// lastForwarded returns a parameter of the last element of the Forwarded header (RFC 7239).
func lastForwarded(r *http.Request, key string) string {
	vs := r.Header.Values("Forwarded")
	if len(vs) == 0 {
		return ""
	}
	last := vs[len(vs)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	for _, kv := range strings.Split(last, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && strings.EqualFold(k, key) {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func headerHasToken(hdr http.Header, name, token string) bool {
	for _, v := range hdr.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// ---- XEP-0156: discovering the WebSocket endpoint ----

// RelWebSocket is the XEP-0156 link relation of a WebSocket endpoint.
const RelWebSocket = "urn:xmpp:alt-connections:websocket"

// URL returns the WebSocket URL advertised to a discovery request: public_url, or one built from the request.
func (h *Handler) URL(r *http.Request) string {
	if h.cfg.PublicURL != "" {
		return h.cfg.PublicURL
	}
	scheme := "ws"
	if secure, _ := h.classify(r); secure {
		scheme = "wss"
	}
	return (&url.URL{Scheme: scheme, Host: r.Host, Path: h.cfg.Path}).String()
}

type xrdLink struct {
	Rel  string `xml:"rel,attr" json:"rel"`
	Href string `xml:"href,attr" json:"href"`
}

type xrd struct {
	XMLName xml.Name  `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
	Links   []xrdLink `xml:"Link"`
}

func discoveryHeaders(w http.ResponseWriter, r *http.Request, contentType string) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return false
	}
	w.Header().Set("Content-Type", contentType)
	// XEP-0156 section 3.2: web clients on other origins read these documents.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	return true
}

// HostMeta serves /.well-known/host-meta (XRD, RFC 6415) with the WebSocket link.
func (h *Handler) HostMeta() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !discoveryHeaders(w, r, "application/xrd+xml; charset=utf-8") {
			return
		}
		b, _ := xml.MarshalIndent(xrd{Links: []xrdLink{{Rel: RelWebSocket, Href: h.URL(r)}}}, "", "  ")
		w.Write([]byte(xml.Header))
		w.Write(b)
		w.Write([]byte("\n"))
	})
}

// HostMetaJSON serves /.well-known/host-meta.json (JRD, RFC 6415) with the WebSocket link.
func (h *Handler) HostMetaJSON() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !discoveryHeaders(w, r, "application/json") {
			return
		}
		b, _ := json.Marshal(struct {
			Links []xrdLink `json:"links"`
		}{[]xrdLink{{Rel: RelWebSocket, Href: h.URL(r)}}})
		w.Write(append(b, '\n'))
	})
}
