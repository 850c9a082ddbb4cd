package version_test

import (
	"runtime"
	"slices"
	"testing"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/version"
)

type answer struct {
	Query *struct {
		Name    string  `xml:"name"`
		Version string  `xml:"version"`
		OS      *string `xml:"os"`
	} `xml:"jabber:iq:version query"`
}

func TestServerVersion(t *testing.T) {
	ctx := t.Context()
	h := moduletest.New(t, version.New(version.Config{}, "1.2.3<beta>"))
	phone := h.Online(ctx, "alice@example.net/phone", 0)
	var a answer
	moduletest.Decode(t, h.SendIQTo(ctx, phone, moduletest.Domain, "get", "<query xmlns='jabber:iq:version'/>"), &a)
	if a.Query == nil || a.Query.Name != "Parley" || a.Query.Version != "1.2.3<beta>" || a.Query.OS != nil {
		t.Errorf("answer %+v, want name, escaped version and no os", a.Query)
	}
	if !slices.Contains(h.Registry.Features(module.Server), version.NS) {
		t.Errorf("server features %v lack %s", h.Registry.Features(module.Server), version.NS)
	}
	// The module speaks for the server, not for accounts.
	if r := h.SendIQTo(ctx, phone, "bob@example.net", "get", "<query xmlns='jabber:iq:version'/>"); moduletest.ErrorCondition(r) != "service-unavailable" {
		t.Errorf("version of an account: %s, want service-unavailable", r.Raw)
	}
}

func TestShowOS(t *testing.T) {
	ctx := t.Context()
	h := moduletest.New(t, version.New(version.Config{ShowOS: true}, "1"))
	phone := h.Online(ctx, "alice@example.net/phone", 0)
	var a answer
	moduletest.Decode(t, h.SendIQTo(ctx, phone, moduletest.Domain, "get", "<query xmlns='jabber:iq:version'/>"), &a)
	if a.Query == nil || a.Query.OS == nil || *a.Query.OS != runtime.GOOS {
		t.Errorf("answer %+v, want os %s", a.Query, runtime.GOOS)
	}
}
