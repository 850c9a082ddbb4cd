package disco_test

import (
	"slices"
	"testing"

	"parley.im/parley/xmpp/carbons"
	"parley.im/parley/xmpp/disco"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/ping"
	"parley.im/parley/xmpp/version"
)

// service stands for a module that lists a service and an extra identity.
type service struct{}

func (service) Name() string { return "service" }
func (service) Register(h *module.Host) error {
	h.DiscoItem(module.Server, "upload.example.net", "HTTP upload")
	h.Identity(module.Server, module.Identity{Category: "store", Type: "file"})
	return h.Feature(module.Account, "urn:example:account-only")
}

type identity struct {
	Category string `xml:"category,attr"`
	Type     string `xml:"type,attr"`
	Name     string `xml:"name,attr"`
}

type info struct {
	Query *struct {
		Node       string     `xml:"node,attr"`
		Identities []identity `xml:"identity"`
		Features   []struct {
			Var string `xml:"var,attr"`
		} `xml:"feature"`
	} `xml:"http://jabber.org/protocol/disco#info query"`
}

func (i info) features() []string {
	var out []string
	for _, f := range i.Query.Features {
		out = append(out, f.Var)
	}
	return out
}

func setup(t *testing.T) *moduletest.Host {
	t.Helper()
	h := moduletest.NewHost(t)
	// disco comes last, as in the server's module list: it reads what the others registered.
	if err := h.Register(ping.New(), version.New(version.Config{}, "1"), carbons.New(), service{}, disco.New(h.Registry)); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestServerInfoListsEveryModulesFeatures(t *testing.T) {
	ctx := t.Context()
	h := setup(t)
	phone := h.Online(ctx, "alice@example.net/phone", 0)
	var i info
	moduletest.Decode(t, h.SendIQTo(ctx, phone, moduletest.Domain, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>"), &i)
	if i.Query == nil {
		t.Fatal("no disco#info query in the answer")
	}
	want := []string{carbons.NS, disco.NSInfo, disco.NSItems, version.NS, ping.NS}
	slices.Sort(want)
	if got := i.features(); !slices.Equal(got, want) {
		t.Errorf("server features %q, want %q", got, want)
	}
	if !slices.Contains(i.Query.Identities, identity{"server", "im", "Parley"}) || !slices.Contains(i.Query.Identities, identity{Category: "store", Type: "file"}) {
		t.Errorf("server identities %+v", i.Query.Identities)
	}
}

func TestAccountInfo(t *testing.T) {
	ctx := t.Context()
	h := setup(t)
	phone := h.Online(ctx, "alice@example.net/phone", 0)
	for _, to := range []string{"", "alice@example.net", "bob@example.net"} {
		var i info
		moduletest.Decode(t, h.SendIQTo(ctx, phone, to, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>"), &i)
		if i.Query == nil {
			t.Fatalf("to %q: no answer", to)
		}
		fs := i.features()
		if !slices.Contains(fs, "urn:example:account-only") || !slices.Contains(fs, carbons.NS) || slices.Contains(fs, version.NS) {
			t.Errorf("to %q: account features %q", to, fs)
		}
		if !slices.Equal(i.Query.Identities, []identity{{Category: "account", Type: "registered"}}) {
			t.Errorf("to %q: identities %+v, want account/registered", to, i.Query.Identities)
		}
	}
}

func TestItems(t *testing.T) {
	ctx := t.Context()
	h := setup(t)
	phone := h.Online(ctx, "alice@example.net/phone", 0)
	var items struct {
		Query *struct {
			Items []struct {
				JID  string `xml:"jid,attr"`
				Name string `xml:"name,attr"`
			} `xml:"item"`
		} `xml:"http://jabber.org/protocol/disco#items query"`
	}
	moduletest.Decode(t, h.SendIQTo(ctx, phone, moduletest.Domain, "get", "<query xmlns='http://jabber.org/protocol/disco#items'/>"), &items)
	if items.Query == nil || len(items.Query.Items) != 1 || items.Query.Items[0].JID != "upload.example.net" || items.Query.Items[0].Name != "HTTP upload" {
		t.Errorf("server items %+v, want the upload service", items.Query)
	}
	r := h.SendIQTo(ctx, phone, moduletest.Domain, "get", "<query xmlns='http://jabber.org/protocol/disco#items' node='nope'/>")
	if got := moduletest.ErrorCondition(r); got != "item-not-found" {
		t.Errorf("items of an unknown node: %q, want item-not-found", got)
	}
}

func TestCapsMatchInfo(t *testing.T) {
	ctx := t.Context()
	h := setup(t)
	phone := h.Online(ctx, "alice@example.net/phone", 0)
	var i info
	moduletest.Decode(t, h.SendIQTo(ctx, phone, moduletest.Domain, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>"), &i)
	var ids []module.Identity
	for _, id := range i.Query.Identities {
		ids = append(ids, module.Identity{Category: id.Category, Type: id.Type, Name: id.Name})
	}
	ver := disco.CapsVer(ids, i.features())
	want := "<c xmlns='" + disco.NSCaps + "' hash='sha-1' node='" + disco.CapsNode + "' ver='" + ver + "'/>"
	if !slices.Contains(h.Registry.StreamFeatures(), want) {
		t.Errorf("stream features %q lack %q: the advertised hash does not match disco#info", h.Registry.StreamFeatures(), want)
	}
	// The caps node answers as the server does; another node does not exist.
	var n info
	moduletest.Decode(t, h.SendIQTo(ctx, phone, moduletest.Domain, "get", "<query xmlns='http://jabber.org/protocol/disco#info' node='"+disco.CapsNode+"#"+ver+"'/>"), &n)
	if n.Query == nil || n.Query.Node != disco.CapsNode+"#"+ver || !slices.Equal(n.features(), i.features()) {
		t.Errorf("caps node answer %+v", n.Query)
	}
	r := h.SendIQTo(ctx, phone, moduletest.Domain, "get", "<query xmlns='http://jabber.org/protocol/disco#info' node='"+disco.CapsNode+"#stale'/>")
	if got := moduletest.ErrorCondition(r); got != "item-not-found" {
		t.Errorf("a stale caps node: %q, want item-not-found", got)
	}
}

func TestCapsVerExample(t *testing.T) {
	// XEP-0115 section 5.2, simple generation example.
	got := disco.CapsVer([]module.Identity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}},
		[]string{"http://jabber.org/protocol/muc", "http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#items"})
	if got != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Errorf("CapsVer = %q, want the XEP's QgayPKawpkPSDYmwT/WM94uAlu0=", got)
	}
}
