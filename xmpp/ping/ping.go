// Package ping implements XEP-0199: XMPP Ping, the server's answer to a client's ping. The server's own
// keepalive pings are sent by the c2s listener, which owns the idle timer.
package ping

import (
	"context"

	"parley.im/parley/xmpp/module"
)

// NS is the XEP-0199 namespace.
const NS = "urn:xmpp:ping"

// Module answers pings addressed to the server or to the sender's own account.
type Module struct{}

// New returns the ping module.
func New() *Module { return &Module{} }

// Name implements module.Module.
func (*Module) Name() string { return "ping" }

// Register implements module.Module.
func (m *Module) Register(h *module.Host) error {
	return h.HandleIQ(module.IQRoute{Target: module.Server | module.Account, Type: "get", NS: NS, Local: "ping", Feature: NS}, m.ping)
}

func (*Module) ping(_ context.Context, iq *module.IQ) ([]byte, error) { return nil, nil }

var _ module.Module = (*Module)(nil)
