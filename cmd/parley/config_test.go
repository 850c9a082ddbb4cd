package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"parley.im/parley/xmpp/module"
)

// Every configuration key is documented in docs/CONFIG.md.
func TestEveryKeyIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, ty reflect.Type)
	n := 0
	walk = func(prefix string, ty reflect.Type) {
		for i := 0; i < ty.NumField(); i++ {
			name, _, _ := strings.Cut(ty.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			ft := ty.Field(i).Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)) {
				walk(prefix+name+".", ft)
				continue
			}
			n++
			if !strings.Contains(string(doc), "`"+prefix+name+"`") {
				t.Errorf("config key %s is not in docs/CONFIG.md", prefix+name)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
	if n < 20 {
		t.Fatalf("walked only %d keys", n)
	}
}

func TestOverridesFileThenEnvThenFlags(t *testing.T) {
	f := t.TempDir() + "/p.yml"
	os.WriteFile(f, []byte("domain: file.example\nc2s:\n  max_stanza: 50000\n  ping_interval: 2m\n"), 0o600)
	t.Setenv("PARLEY_C2S_MAX_STANZA", "60000")
	t.Setenv("PARLEY_LOG_LEVEL", "debug")
	cfg, err := loadConfig(f, []string{"c2s.max_stanza=70000", "auth.allow_plain=false"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Domain != "file.example" || cfg.C2S.MaxStanza != 70000 || cfg.C2S.PingInterval != 2*time.Minute ||
		cfg.Log.Level != "debug" || cfg.allowPlain() {
		t.Fatalf("got %+v", cfg)
	}
	cfg, err = loadConfig(f, nil)
	if err != nil || cfg.C2S.MaxStanza != 60000 {
		t.Fatalf("env override: %d %v", cfg.C2S.MaxStanza, err)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	f := t.TempDir() + "/p.yml"
	os.WriteFile(f, []byte("c2s:\n  max_stanzas: 5\n"), 0o600)
	if _, err := loadConfig(f, nil); err == nil || !strings.Contains(err.Error(), "max_stanzas") {
		t.Fatalf("unknown key: %v", err)
	}
	cfg, err := loadConfig("", []string{"c2s.max_stanza=100", "storage.driver=mysql", "log.level=loud"})
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	for _, key := range []string{"c2s.max_stanza", "storage.driver", "log.level"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("validation error %v does not name %s", err, key)
		}
	}
	if _, err := loadConfig("", []string{"nope.key=1"}); err == nil {
		t.Error("-set of an unknown key accepted")
	}
}

// TestEveryConfigSectionIsValidated: Validate finds the sections' Validate methods by type (module.Validator),
// so each must be on the value, not the pointer, or it would be skipped silently; and a section's error
// reaches Config.Validate.
func TestEveryConfigSectionIsValidated(t *testing.T) {
	ty := reflect.TypeOf(Config{})
	validator := reflect.TypeOf((*module.Validator)(nil)).Elem()
	n := 0
	for i := 0; i < ty.NumField(); i++ {
		f := ty.Field(i)
		if f.Type.Kind() != reflect.Struct || f.Type.PkgPath() == "" || f.Type.PkgPath() == ty.PkgPath() {
			continue // anonymous structs of cmd/parley are checked by Config.Validate itself
		}
		if reflect.PointerTo(f.Type).Implements(validator) && !f.Type.Implements(validator) {
			t.Errorf("%s (%s): Validate has a pointer receiver and would not be called", f.Name, f.Type)
		}
		if !f.Type.Implements(validator) {
			t.Errorf("%s (%s) has no Validate() error (STYLE.md rule 8)", f.Name, f.Type)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("found only %d module config sections", n)
	}
	cfg, err := loadConfig("", []string{"httpupload.backend=ftp", "websocket.path=nope"})
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	for _, key := range []string{"httpupload.backend", "websocket.path"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("validation error %v does not name %s", err, key)
		}
	}
}
