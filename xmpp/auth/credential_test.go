package auth

import (
	"bytes"
	"testing"
)

func TestDeriveCredential(t *testing.T) {
	for _, h := range hashes {
		c, err := DeriveCredential(h, "pencil", 4096)
		if err != nil {
			t.Fatal(err)
		}
		if c.Mechanism != h.Mechanism() || len(c.Salt) != 16 || c.Iterations != 4096 ||
			len(c.StoredKey) != h.size() || len(c.ServerKey) != h.size() {
			t.Errorf("%v: %+v", h, c)
		}
		again, _ := DeriveCredential(h, "pencil", 4096)
		if bytes.Equal(c.Salt, again.Salt) || bytes.Equal(c.StoredKey, again.StoredKey) {
			t.Errorf("%v: salt not fresh", h)
		}
		same, _ := deriveWithSalt(h, "pencil", c.Salt, 4096)
		if !bytes.Equal(same.StoredKey, c.StoredKey) || !bytes.Equal(same.ServerKey, c.ServerKey) {
			t.Errorf("%v: not reproducible", h)
		}
	}
	for _, tc := range []struct {
		h    Hash
		pw   string
		iter int
	}{
		{0, "pencil", 4096},
		{Hash(9), "pencil", 4096},
		{SHA256, "pencil", 4095},
		{SHA256, "", 4096},             // OpaqueString rejects the empty string
		{SHA256, "pen\u0000cil", 4096}, // and control characters
	} {
		if _, err := DeriveCredential(tc.h, tc.pw, tc.iter); err == nil {
			t.Errorf("DeriveCredential(%v, %q, %d) succeeded", tc.h, tc.pw, tc.iter)
		}
	}
}

func TestDeriveAll(t *testing.T) {
	all, err := DeriveAll("pencil", 4096)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range all {
		got = append(got, c.Mechanism)
	}
	if len(got) != 3 || got[0] != "SCRAM-SHA-512" || got[1] != "SCRAM-SHA-256" || got[2] != "SCRAM-SHA-1" {
		t.Fatalf("DeriveAll mechanisms %v", got)
	}
	if _, err := DeriveAll("pencil", 1); err == nil {
		t.Error("DeriveAll accepted 1 iteration")
	}
	if Hash(7).String() != "Hash(7)" || SHA512.String() != "SCRAM-SHA-512" {
		t.Error("Hash.String")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err == nil {
		t.Error("no Lookup accepted")
	}
	cfg := Config{Lookup: mapLookup(nil), FakeSaltKey: []byte("short"), DefaultIterations: -1, Domain: "bad domain/x"}
	if err := cfg.Validate(); err == nil {
		t.Error("bad config accepted")
	}
	if err := (Config{Lookup: mapLookup(nil), Domain: "example.net"}).Validate(); err != nil {
		t.Error(err)
	}
}
