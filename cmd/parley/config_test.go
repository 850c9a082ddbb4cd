package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
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
