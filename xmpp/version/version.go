// Package version implements XEP-0092: Software Version, for the server itself.
package version

import (
	"context"
	"runtime"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// NS is the XEP-0092 namespace.
const NS = "jabber:iq:version"

// Config configures the module.
type Config struct {
	// ShowOS adds the operating system to the answer. Default false: it helps attackers more than users.
	ShowOS bool `yaml:"show_os"`
}

// Validate implements the config contract; every value is valid.
func (Config) Validate() error { return nil }

// Module answers version queries addressed to the server.
type Module struct {
	cfg     Config
	name    string
	version string
}

// New returns the module; version is the server's release string.
func New(cfg Config, version string) *Module {
	return &Module{cfg: cfg, name: "Parley", version: version}
}

// Name implements module.Module.
func (*Module) Name() string { return "version" }

// Register implements module.Module.
func (m *Module) Register(h *module.Host) error {
	return h.HandleIQ(module.IQRoute{Target: module.Server, Type: "get", NS: NS, Local: "query", Feature: NS}, m.query)
}

func (m *Module) query(context.Context, *module.IQ) ([]byte, error) {
	b := []byte("<query xmlns='" + NS + "'><name>")
	b = stanza.AppendEscape(b, m.name)
	b = append(b, "</name><version>"...)
	b = stanza.AppendEscape(b, m.version)
	b = append(b, "</version>"...)
	if m.cfg.ShowOS {
		b = append(b, "<os>"...)
		b = stanza.AppendEscape(b, runtime.GOOS)
		b = append(b, "</os>"...)
	}
	return append(b, "</query>"...), nil
}

var _ module.Module = (*Module)(nil)
