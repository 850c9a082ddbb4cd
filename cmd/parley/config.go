package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"mellium.im/xmpp/jid"

	"parley.im/parley/httpupload"
	"parley.im/parley/muc"
	"parley.im/parley/offline"
	"parley.im/parley/xmpp/blocking"
	"parley.im/parley/xmpp/c2s"
	"parley.im/parley/xmpp/mam"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/pep"
	"parley.im/parley/xmpp/private"
	"parley.im/parley/xmpp/push"
	"parley.im/parley/xmpp/register"
	"parley.im/parley/xmpp/roster"
	"parley.im/parley/xmpp/vcard"
	"parley.im/parley/xmpp/version"
	"parley.im/parley/xmpp/websocket"
)

// Config is the whole server configuration: one YAML file (docs/CONFIG.md documents every key), then
// environment variables PARLEY_<KEY> (dots and dashes become underscores: PARLEY_C2S_MAX_STANZA), then
// command-line -set key=value, each overriding the one before.
type Config struct {
	// Domain is the XMPP domain served. Default "localhost".
	Domain string `yaml:"domain"`
	// DataDir holds the SQLite database, the generated certificate and uploads. Default "./data".
	DataDir string `yaml:"data_dir"`
	Log     struct {
		// Level is debug, info, warn or error. Default info.
		Level string `yaml:"level"`
		// Format is text or json. Default text.
		Format string `yaml:"format"`
	} `yaml:"log"`
	Listen struct {
		// C2S is the STARTTLS client port. Default ":5222".
		C2S string `yaml:"c2s"`
		// C2STLS is the direct-TLS client port (XEP-0368). Default ":5223"; "off" disables it.
		C2STLS string `yaml:"c2s_tls"`
		// Metrics serves Prometheus text metrics at /metrics. Default "127.0.0.1:5290"; "off" disables it.
		Metrics string `yaml:"metrics"`
		// Pprof also serves Go's profiler (net/http/pprof) at /debug/pprof/ on the metrics listener, for
		// profiling a running server (`go tool pprof http://127.0.0.1:5290/debug/pprof/profile`). Default false:
		// a profile shows memory contents such as stanzas in flight.
		Pprof bool `yaml:"pprof"`
		// HTTPS is the HTTP listener with TLS (the server's certificate): uploads (XEP-0363) and XMPP over
		// WebSocket. Default ":5443"; "off" disables it.
		HTTPS string `yaml:"https"`
		// HTTP is the plain HTTP listener, for a TLS-terminating proxy on the same host. Default
		// "127.0.0.1:5280"; "off" disables it.
		HTTP string `yaml:"http"`
	} `yaml:"listen"`
	TLS struct {
		// CertFile and KeyFile are PEM files. Default: a self-signed certificate for the domain, generated in
		// DataDir on first start.
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	Storage struct {
		// Driver is sqlite (embedded, the default) or postgres.
		Driver string `yaml:"driver"`
		// SQLitePath defaults to DataDir/parley.db.
		SQLitePath string `yaml:"sqlite_path"`
		// PostgresDSN is a libpq connection string or URL, required with driver postgres.
		PostgresDSN string `yaml:"postgres_dsn"`
	} `yaml:"storage"`
	Auth struct {
		// ScramIterations is the PBKDF2 iteration count for new credentials. Default 4096 (RFC 7677 minimum).
		ScramIterations int `yaml:"scram_iterations"`
		// AllowPlain offers SASL PLAIN over TLS, for clients without SCRAM. Default true.
		AllowPlain *bool `yaml:"allow_plain"`
	} `yaml:"auth"`
	Runtime struct {
		// IdleTrim is how often a quiet server collects garbage and gives free memory back to the operating
		// system (see trimIdle). Default 30s; 0 leaves it all to the Go runtime.
		IdleTrim *time.Duration `yaml:"idle_trim"`
	} `yaml:"runtime"`
	C2S      c2s.Config      `yaml:"c2s"`
	Register register.Config `yaml:"register"`
	Roster   roster.Config   `yaml:"roster"`
	Version  version.Config  `yaml:"version"`
	Offline  offline.Config  `yaml:"offline"`
	Archive  mam.Config      `yaml:"archive"`
	MUC      muc.Config      `yaml:"muc"`
	Push     push.Config     `yaml:"push"`
	// PEP is the XEP-0163 service on every account.
	PEP pep.Config `yaml:"pep"`
	// Blocking is XEP-0191 blocking command.
	Blocking blocking.Config `yaml:"blocking"`
	// Private is XEP-0049 private XML storage (with XEP-0048/XEP-0402 bookmarks conversion).
	Private private.Config `yaml:"private"`
	// VCard is XEP-0054 vcard-temp for accounts (with XEP-0398 avatar conversion).
	VCard vcard.Config `yaml:"vcard"`
	// HTTPUpload is the XEP-0363 service.
	HTTPUpload httpupload.Config `yaml:"httpupload"`
	// WebSocket is XMPP over WebSocket (RFC 7395) on the HTTP listeners.
	WebSocket websocket.Config `yaml:"websocket"`
}

func defaultConfig() Config {
	var c Config
	c.Domain = "localhost"
	c.DataDir = "./data"
	c.Log.Level, c.Log.Format = "info", "text"
	c.Listen.C2S, c.Listen.C2STLS, c.Listen.Metrics = ":5222", ":5223", "127.0.0.1:5290"
	c.Listen.HTTPS, c.Listen.HTTP = ":5443", "127.0.0.1:5280"
	c.Storage.Driver = "sqlite"
	c.Auth.ScramIterations = 4096
	return c
}

// loadConfig reads the file (if path is not empty), then the environment, then the -set overrides.
func loadConfig(path string, sets []string) (Config, error) {
	c := defaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
	}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "PARLEY_") || strings.HasPrefix(k, "PARLEY_TEST_") || k == "PARLEY_REQUIRE_SERVICES" {
			continue
		}
		key := strings.ToLower(strings.TrimPrefix(k, "PARLEY_"))
		if err := setKey(&c, key, v, true); err != nil {
			return c, fmt.Errorf("config: environment %s: %w", k, err)
		}
	}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return c, fmt.Errorf("config: -set %q: want key=value", s)
		}
		if err := setKey(&c, k, v, false); err != nil {
			return c, fmt.Errorf("config: -set %s: %w", k, err)
		}
	}
	if c.Storage.SQLitePath == "" {
		c.Storage.SQLitePath = filepath.Join(c.DataDir, "parley.db")
	}
	return c, nil
}

// setKey sets the field named by a dotted yaml key ("c2s.max_stanza"). From the environment, underscores may
// stand for the dots, so each path is matched with dots and underscores treated alike.
func setKey(c *Config, key, value string, env bool) error {
	v := reflect.ValueOf(c).Elem()
	f, ok := findField(v, key, env)
	if !ok {
		if env {
			return nil // PARLEY_* variables of other tools are not ours to reject
		}
		return fmt.Errorf("no such key %q", key)
	}
	return setValue(f, value)
}

func findField(v reflect.Value, key string, env bool) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		f := v.Field(i)
		if key == name || (env && key == strings.ReplaceAll(name, ".", "_")) {
			return f, true
		}
		sep := "."
		if env {
			sep = "_"
		}
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Duration(0)) && strings.HasPrefix(key, name+sep) {
			if g, ok := findField(f, key[len(name)+1:], env); ok {
				return g, true
			}
		}
	}
	return reflect.Value{}, false
}

func setValue(f reflect.Value, s string) error {
	if f.Kind() == reflect.Pointer {
		nv := reflect.New(f.Type().Elem())
		if err := setValue(nv.Elem(), s); err != nil {
			return err
		}
		f.Set(nv)
		return nil
	}
	switch {
	case f.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(n))
	case f.Kind() == reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		f.SetFloat(n)
	default:
		return fmt.Errorf("cannot set a %s from text", f.Type())
	}
	return nil
}

// Validate checks every key before anything listens; the error names each bad key.
func (c Config) Validate() error {
	var errs []error
	if _, err := jid.Parse(c.Domain); err != nil || c.Domain == "" || strings.ContainsAny(c.Domain, "@/") {
		errs = append(errs, fmt.Errorf("domain: %q is not a valid domain", c.Domain))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level))
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: %q is not text or json", c.Log.Format))
	}
	switch c.Storage.Driver {
	case "sqlite":
	case "postgres":
		if c.Storage.PostgresDSN == "" {
			errs = append(errs, errors.New("storage.postgres_dsn: required with storage.driver postgres"))
		}
	default:
		errs = append(errs, fmt.Errorf("storage.driver: %q is not sqlite or postgres", c.Storage.Driver))
	}
	if c.Runtime.IdleTrim != nil && *c.Runtime.IdleTrim < 0 {
		errs = append(errs, errors.New("runtime.idle_trim: must not be negative"))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls.cert_file and tls.key_file: set both or neither"))
	}
	if c.Auth.ScramIterations < 4096 || c.Auth.ScramIterations > 10_000_000 {
		errs = append(errs, fmt.Errorf("auth.scram_iterations: %d is outside 4096..10000000", c.Auth.ScramIterations))
	}
	if c.Listen.C2S == "" {
		errs = append(errs, errors.New("listen.c2s: required"))
	}
	errs = append(errs, c.validateSections()...)
	return errors.Join(errs...)
}

// validateSections runs Validate of every configuration section that has one (module.Validator: the c2s,
// websocket and module configs), in field order. Found by type, not listed: a module's config is checked once
// it has its field in Config.
func (c Config) validateSections() []error {
	var errs []error
	v := reflect.ValueOf(c)
	for i := 0; i < v.NumField(); i++ {
		if val, ok := v.Field(i).Interface().(module.Validator); ok {
			if err := val.Validate(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

func (c Config) allowPlain() bool { return c.Auth.AllowPlain == nil || *c.Auth.AllowPlain }
