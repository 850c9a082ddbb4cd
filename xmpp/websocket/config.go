package websocket

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// DefaultMaxMessage is the default largest WebSocket message accepted: the c2s default max_stanza (256 KiB)
// plus room for whitespace around the element, so that an oversized stanza is refused by the stream reader
// with a policy-violation stream error rather than by the WebSocket layer with a bare close frame.
const DefaultMaxMessage = 256<<10 + 4096

// Config configures XMPP over WebSocket (RFC 7395) and the XEP-0156 discovery documents. The zero value of
// each field means its documented default.
type Config struct {
	// Path is where WebSocket upgrades are accepted. Default "/xmpp-websocket".
	Path string `yaml:"path"`
	// AllowedOrigins lists the browser origins, besides the server's own, that may open a WebSocket: exact
	// origins ("https://chat.example.com", scheme and port count), wildcard subdomains
	// ("https://*.example.com"), or "*" for any origin. A request whose Origin names the host it was sent to
	// (the Host header, or the host of public_url) is always allowed, and so is a request without an Origin
	// header (not a browser). Default: empty, same-origin browser pages only.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// MaxMessage is the largest WebSocket message accepted, in bytes; past it the connection is closed with
	// status 1009. Set it a little above c2s.max_stanza (the stream reader's own limit, which answers with a
	// policy-violation stream error). Default 266240 (256 KiB + 4 KiB).
	MaxMessage int `yaml:"max_message"`
	// PingInterval is how long the connection may be silent before the server sends a WebSocket ping.
	// Default 30s.
	PingInterval time.Duration `yaml:"ping_interval"`
	// IdleTimeout closes a connection from which nothing at all (message, pong or ping) has arrived for this
	// long: with pings every PingInterval, a live peer is never idle, so this finds dead peers. XMPP-level
	// idleness is the c2s keepalive's business. Must be longer than PingInterval. Default 90s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// TrustProxyTLS treats requests that come from a loopback address as secure and takes the client address
	// from X-Real-IP or X-Forwarded-For: set it when a TLS-terminating reverse proxy on the same host forwards
	// wss:// to the plain HTTP listener. A loopback request with X-Forwarded-Proto (or Forwarded proto=) other
	// than https/wss is still insecure. Default false: only requests that arrived over TLS are secure.
	TrustProxyTLS bool `yaml:"trust_proxy_tls"`
	// TrustedProxies lists the networks (CIDR, or single addresses) of reverse proxies whose forwarded client
	// address is believed: for a request from one of them, the client is X-Real-IP, else the right-most
	// X-Forwarded-For entry that is not itself a trusted proxy, else the last Forwarded for=. That address is
	// what the per-address connection and login limits count (c2s.conn_rate_per_ip, c2s.auth_failures_per_ip),
	// so that the users behind a proxy are not one address. With trust_proxy_tls, requests from these proxies
	// are also taken as secure, like those from loopback. Default: empty (loopback only, with trust_proxy_tls).
	TrustedProxies []string `yaml:"trusted_proxies"`
	// AllowPlaintext accepts WebSocket connections that are not secure. XMPP over WebSocket cannot negotiate
	// STARTTLS (RFC 7395 section 3.8), so this only works when c2s.allow_plaintext is also set. Default false:
	// such upgrades are refused with 403.
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// PublicURL is the wss:// URL that clients use, advertised in /.well-known/host-meta (XEP-0156), e.g.
	// "wss://chat.example.com/xmpp-websocket". Default: built from each discovery request (wss when the
	// request is secure, its Host header, and Path); set it in production.
	PublicURL string `yaml:"public_url"`
}

func (c *Config) setDefaults() {
	if c.Path == "" {
		c.Path = "/xmpp-websocket"
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.PingInterval == 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 90 * time.Second
	}
}

// Validate checks the configuration, naming the offending key.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if !strings.HasPrefix(c.Path, "/") || strings.HasPrefix(c.Path, "/.well-known/") {
		errs = append(errs, fmt.Errorf("websocket.path: %q must start with / and not be under /.well-known/", c.Path))
	}
	if c.MaxMessage < 10000 {
		errs = append(errs, fmt.Errorf("websocket.max_message: %d is below the 10000 bytes RFC 6120 13.12 requires", c.MaxMessage))
	}
	if c.PingInterval < 0 {
		errs = append(errs, errors.New("websocket.ping_interval: negative duration"))
	}
	if c.IdleTimeout <= c.PingInterval {
		errs = append(errs, fmt.Errorf("websocket.idle_timeout: %v must be longer than ping_interval (%v)", c.IdleTimeout, c.PingInterval))
	}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			continue
		}
		if _, err := parseOriginPattern(o); err != nil {
			errs = append(errs, fmt.Errorf("websocket.allowed_origins: %q: %v", o, err))
		}
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("websocket.trusted_proxies: %w", err))
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "wss" && u.Scheme != "ws") || u.Host == "" {
			errs = append(errs, fmt.Errorf("websocket.public_url: %q is not a ws:// or wss:// URL", c.PublicURL))
		}
	}
	return errors.Join(errs...)
}

// originPattern is one allowed_origins entry: scheme, and a host that may start with "*." for any subdomain.
type originPattern struct {
	scheme, host string
	wildcard     bool // host is a suffix: ".example.com"
}

func parseOriginPattern(s string) (originPattern, error) {
	scheme, host, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || host == "" {
		return originPattern{}, errors.New("want scheme://host[:port], scheme://*.domain or *")
	}
	if strings.ContainsAny(host, "/?#@ ") {
		return originPattern{}, errors.New("an origin has no path, query, user or spaces")
	}
	p := originPattern{scheme: strings.ToLower(scheme), host: strings.ToLower(host)}
	if rest, ok := strings.CutPrefix(p.host, "*."); ok {
		if rest == "" || strings.Contains(rest, "*") {
			return originPattern{}, errors.New("a wildcard must be *.domain")
		}
		p.host, p.wildcard = "."+rest, true
	} else if strings.Contains(p.host, "*") {
		return originPattern{}, errors.New("a wildcard must be a leading *. label")
	}
	return p, nil
}

func (p originPattern) match(scheme, host string) bool {
	if scheme != p.scheme {
		return false
	}
	if p.wildcard {
		return strings.HasSuffix(host, p.host) && len(host) > len(p.host)
	}
	return host == p.host
}

// parsePrefixes parses trusted_proxies entries: CIDR prefixes or single addresses.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range list {
		e = strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(e); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR prefix nor an address", e)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
