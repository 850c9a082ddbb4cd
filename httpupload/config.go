package httpupload

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// Config configures the upload service. Zero values take the defaults below.
type Config struct {
	// Domain is the service's JID. Default "upload." + the server's domain.
	Domain string `yaml:"domain"`
	// MaxFileSize is the largest file a slot may be requested for, in bytes. Default 104857600 (100 MiB).
	MaxFileSize int `yaml:"max_file_size"`
	// QuotaPerUser caps the bytes one account has stored (and reserved by slots not yet used) within the
	// retention. Default 1073741824 (1 GiB); -1 is unlimited.
	QuotaPerUser int `yaml:"quota_per_user"`
	// SlotsPerMinute caps the slot requests of one account in any minute. Default 30; -1 is unlimited.
	SlotsPerMinute int `yaml:"slots_per_minute"`
	// Retention is how long an uploaded file is kept. Default 720h (30 days).
	Retention time.Duration `yaml:"retention"`
	// SweepInterval is how often expired files are deleted. Default 1h.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// PutTTL is how long a slot's PUT URL can be used. Default 5m.
	PutTTL time.Duration `yaml:"put_ttl"`
	// Backend is where files are stored: "local" (under the data directory, served by Parley's HTTP
	// listener; the default) or "s3".
	Backend string `yaml:"backend"`
	// PublicURL is the base URL clients reach Parley's HTTP listener at; upload and download URLs of the
	// local backend, and download redirects of the s3 backend, are under it. cmd/parley defaults it to
	// "https://" + the server's domain + ":" + the port of listen.https; New, given none, uses port 5443.
	PublicURL string `yaml:"public_url"`
	// Secret signs upload URLs and derives the storage prefix of each account. Every node must have the same.
	// Default: 32 random bytes generated on first start and kept in the database (so it survives restarts and
	// is shared by the nodes of a cluster). Changing it invalidates every URL handed out before.
	Secret string `yaml:"secret"`
	// AllowedDomains lists the domains besides the server's own whose users may request slots; "*" allows
	// everyone. Default: only local users.
	AllowedDomains []string `yaml:"allowed_domains"`
	// S3 configures the s3 backend.
	S3 S3Config `yaml:"s3"`
}

// S3Config configures the s3 backend. It has the fields of storage/s3.Config in the same order, so that
// cmd/parley converts it with s3.Config(cfg.S3) (this package may not import a storage driver).
type S3Config struct {
	// Endpoint is the base URL of the S3 API. Empty means AWS S3 for Region.
	Endpoint string `yaml:"endpoint"`
	// Region is the bucket's region. Default "us-east-1".
	Region string `yaml:"region"`
	// Bucket holds the uploads. Required with backend s3.
	Bucket string `yaml:"bucket"`
	// AccessKey and SecretKey are static credentials. Default: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	// PathStyle addresses the bucket as endpoint/bucket/key (MinIO, versitygw, Garage). Default false
	// (virtual-hosted, as AWS).
	PathStyle bool `yaml:"path_style"`
	// PublicBaseURL, if set, is where objects are readable without a signature (a public bucket, a CDN);
	// download URLs then point there directly instead of at a Parley redirect.
	PublicBaseURL string `yaml:"public_base_url"`
	// Prefix is put before every key ("parley/"), so that uploads can share a bucket. Default none.
	Prefix string `yaml:"prefix"`
}

// Defaults.
const (
	DefaultMaxFileSize    = 100 << 20
	DefaultQuotaPerUser   = 1 << 30
	DefaultSlotsPerMinute = 30
	DefaultRetention      = 30 * 24 * time.Hour
	DefaultSweepInterval  = time.Hour
	DefaultPutTTL         = 5 * time.Minute
	DefaultPublicPort     = "5443"
)

func (c *Config) setDefaults(serverDomain string) {
	if c.Domain == "" && serverDomain != "" {
		c.Domain = "upload." + serverDomain
	}
	if c.MaxFileSize == 0 {
		c.MaxFileSize = DefaultMaxFileSize
	}
	if c.QuotaPerUser == 0 {
		c.QuotaPerUser = DefaultQuotaPerUser
	}
	if c.SlotsPerMinute == 0 {
		c.SlotsPerMinute = DefaultSlotsPerMinute
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.PutTTL == 0 {
		c.PutTTL = DefaultPutTTL
	}
	if c.Backend == "" {
		c.Backend = "local"
	}
	if c.PublicURL == "" && serverDomain != "" {
		c.PublicURL = "https://" + serverDomain + ":" + DefaultPublicPort
	}
}

// Validate checks the configuration; each error names its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("httpupload."+key+": "+format, args...))
	}
	if c.Domain != "" {
		if j, err := jid.Parse(c.Domain); err != nil || j.Localpart() != "" || j.Resourcepart() != "" {
			bad("domain", "%q is not a domain", c.Domain)
		}
	}
	if c.MaxFileSize < 0 {
		bad("max_file_size", "must not be negative")
	}
	if c.QuotaPerUser < -1 {
		bad("quota_per_user", "must be positive, or -1 for unlimited")
	}
	if c.QuotaPerUser > 0 && c.QuotaPerUser < max(c.MaxFileSize, 0) {
		bad("quota_per_user", "%d is smaller than max_file_size (%d)", c.QuotaPerUser, c.MaxFileSize)
	}
	if c.QuotaPerUser == 0 && c.MaxFileSize > DefaultQuotaPerUser {
		bad("quota_per_user", "the default (%d) is smaller than max_file_size (%d)", DefaultQuotaPerUser, c.MaxFileSize)
	}
	if c.SlotsPerMinute < -1 {
		bad("slots_per_minute", "must be positive, or -1 for unlimited")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"retention", c.Retention}, {"sweep_interval", c.SweepInterval}, {"put_ttl", c.PutTTL}} {
		if d.v < 0 {
			bad(d.key, "must not be negative")
		}
	}
	if c.PutTTL > 7*24*time.Hour {
		bad("put_ttl", "must be at most 168h (an S3 presigned URL lives at most seven days)")
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
			u.RawQuery != "" || u.Fragment != "" {
			bad("public_url", "%q is not an http or https base URL", c.PublicURL)
		}
	}
	if c.Secret != "" && len(c.Secret) < 16 {
		bad("secret", "must be at least 16 characters")
	}
	for _, d := range c.AllowedDomains {
		if d == "*" {
			continue
		}
		if j, err := jid.Parse(d); err != nil || j.Localpart() != "" || j.Resourcepart() != "" {
			bad("allowed_domains", "%q is not a domain", d)
		}
	}
	switch c.Backend {
	case "", "local":
	case "s3":
		if c.S3.Bucket == "" {
			bad("s3.bucket", "required with backend s3")
		}
		for _, u := range []struct{ key, v string }{{"s3.endpoint", c.S3.Endpoint}, {"s3.public_base_url", c.S3.PublicBaseURL}} {
			if u.v == "" {
				continue
			}
			if p, err := url.Parse(u.v); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				bad(u.key, "%q is not an http or https URL", u.v)
			}
		}
		if (c.S3.AccessKey == "") != (c.S3.SecretKey == "") {
			bad("s3.access_key", "set both s3.access_key and s3.secret_key, or neither")
		}
		if strings.HasPrefix(c.S3.Prefix, "/") {
			bad("s3.prefix", "%q must not start with /", c.S3.Prefix)
		}
	default:
		bad("backend", "%q is not local or s3", c.Backend)
	}
	return errors.Join(errs...)
}

// allowed reports whether users of domain may request slots.
func (c Config) allowed(domain, serverDomain string) bool {
	if domain == serverDomain {
		return true
	}
	for _, d := range c.AllowedDomains {
		if d == "*" || strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}
