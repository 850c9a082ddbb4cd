// Package register implements XEP-0077: In-Band Registration: account creation before authentication (off by
// default, throttled per IP), password change and account removal for authenticated users.
package register

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// NS is the XEP-0077 namespace.
const NS = "jabber:iq:register"

// Config configures registration.
type Config struct {
	// Open allows anyone to create an account before authenticating. Default false.
	Open bool `yaml:"open"`
	// PerIP is how many accounts one IP address may create per Window. Default 3; negative means unlimited.
	PerIP int `yaml:"per_ip"`
	// Window is the throttling window. Default 1h.
	Window time.Duration `yaml:"window"`
	// MinPasswordLength is the shortest password accepted, in characters. Default 8.
	MinPasswordLength int `yaml:"min_password_length"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Window < 0 {
		return errors.New("register.window: must not be negative")
	}
	if c.MinPasswordLength < 0 {
		return errors.New("register.min_password_length: must not be negative")
	}
	return nil
}

// Credentials derives the stored SCRAM credentials for a password (package auth's DeriveAll with the server's
// iteration count).
type Credentials func(password string) ([]storage.ScramCredential, error)

// Module serves jabber:iq:register.
type Module struct {
	cfg    Config
	users  storage.Users
	roster storage.Roster
	derive Credentials
	router module.Router

	mu     sync.Mutex
	perIP  map[string][]time.Time
	domain jid.JID
}

// New returns the module.
func New(cfg Config, users storage.Users, roster storage.Roster, derive Credentials) *Module {
	if cfg.PerIP == 0 {
		cfg.PerIP = 3
	}
	if cfg.Window == 0 {
		cfg.Window = time.Hour
	}
	if cfg.MinPasswordLength == 0 {
		cfg.MinPasswordLength = 8
	}
	return &Module{cfg: cfg, users: users, roster: roster, derive: derive, perIP: make(map[string][]time.Time)}
}

// Name implements module.Module.
func (*Module) Name() string { return "register" }

// Register implements module.Module.
func (m *Module) Register(h *module.Host) error {
	m.router = h.Router()
	m.domain = h.Domain()
	if m.cfg.Open {
		if err := h.HandleIQ(module.IQRoute{Target: module.PreAuth, Type: "get", NS: NS, Local: "query"}, m.form); err != nil {
			return err
		}
		if err := h.HandleIQ(module.IQRoute{Target: module.PreAuth, Type: "set", NS: NS, Local: "query"}, m.create); err != nil {
			return err
		}
	}
	// Authenticated users change their password or remove their account with IQs to the server (XEP-0077
	// section 3.2, 3.3) or, as some clients do, to their own account.
	both := module.Server | module.Account
	if err := h.HandleIQ(module.IQRoute{Target: both, Type: "get", NS: NS, Local: "query", Feature: NS}, m.status); err != nil {
		return err
	}
	return h.HandleIQ(module.IQRoute{Target: both, Type: "set", NS: NS, Local: "query"}, m.change)
}

// own reports whether an authenticated IQ is about the sender's own account: addressed to the server, to the
// sender's bare JID, or to nobody.
func (m *Module) own(iq *module.IQ) bool {
	if iq.Origin.Session == nil {
		return false
	}
	return iq.ToSelf() || iq.To.Equal(m.domain)
}

type queryXML struct {
	Username *string   `xml:"username"`
	Password *string   `xml:"password"`
	Remove   *struct{} `xml:"remove"`
}

func (m *Module) form(context.Context, *module.IQ) ([]byte, error) {
	return []byte("<query xmlns='" + NS + "'><instructions>Choose a username and password.</instructions><username/><password/></query>"), nil
}

func (m *Module) create(ctx context.Context, iq *module.IQ) ([]byte, error) {
	var q queryXML
	if err := xml.Unmarshal(iq.Payload, &q); err != nil || q.Username == nil || q.Password == nil {
		return nil, stanza.Errorf("not-acceptable", "username and password are required")
	}
	user, err := jid.New(*q.Username, m.domain.Domainpart(), "")
	if err != nil || *q.Username == "" {
		return nil, stanza.Errorf("jid-malformed", "username is not a valid localpart")
	}
	if err := m.checkPassword(*q.Password); err != nil {
		return nil, err
	}
	if !m.allow(iq.RemoteAddr, time.Now()) {
		return nil, &stanza.Error{Condition: "resource-constraint", Text: "too many registrations from your address; try later"}
	}
	creds, err := m.derive(*q.Password)
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	switch err := m.users.CreateUser(ctx, user.String(), creds); {
	case errors.Is(err, storage.ErrConflict):
		return nil, stanza.Errorf("conflict", "that username is taken")
	case err != nil:
		return nil, fmt.Errorf("register: %w", err)
	}
	return nil, nil
}

func (m *Module) checkPassword(p string) error {
	if utf8.RuneCountInString(p) < m.cfg.MinPasswordLength {
		return stanza.Errorf("not-acceptable", fmt.Sprintf("the password needs at least %d characters", m.cfg.MinPasswordLength))
	}
	if len(p) > 1024 {
		return stanza.Errorf("not-acceptable", "password too long")
	}
	return nil
}

// allow applies the per-IP registration limit.
func (m *Module) allow(ip string, now time.Time) bool {
	if m.cfg.PerIP < 0 {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	recent := m.perIP[ip][:0]
	for _, t := range m.perIP[ip] {
		if now.Sub(t) < m.cfg.Window {
			recent = append(recent, t)
		}
	}
	if len(recent) >= m.cfg.PerIP {
		m.perIP[ip] = recent
		return false
	}
	m.perIP[ip] = append(recent, now)
	if len(m.perIP) > 100000 {
		// Bound memory under a flood of addresses: forget the oldest windows wholesale.
		m.perIP = make(map[string][]time.Time)
	}
	return true
}

func (m *Module) status(_ context.Context, iq *module.IQ) ([]byte, error) {
	if !m.own(iq) {
		return nil, stanza.ErrForbidden
	}
	b := []byte("<query xmlns='" + NS + "'><registered/><username>")
	b = stanza.AppendEscape(b, iq.From.Localpart())
	return append(b, "</username><password/></query>"...), nil
}

// change handles password change and account removal by the account itself.
func (m *Module) change(ctx context.Context, iq *module.IQ) ([]byte, error) {
	if !m.own(iq) {
		return nil, stanza.ErrForbidden
	}
	var q queryXML
	if err := xml.Unmarshal(iq.Payload, &q); err != nil {
		return nil, stanza.ErrBadRequest
	}
	owner := iq.From.Bare()
	if q.Remove != nil {
		m.cancelSubscriptions(ctx, owner)
		if err := m.users.DeleteUser(ctx, owner.String()); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("register: %w", err)
		}
		// XEP-0077 3.2: the account is gone; every session of it ends. The result goes out first.
		if iq.Origin.Session != nil {
			iq.Origin.Session.Send(stanza.Result(iq.Stanza, nil))
		}
		for _, s := range m.router.Sessions(owner) {
			s.Close("not-authorized", "account removed")
		}
		return nil, module.ErrAnswered
	}
	if q.Password == nil || (q.Username != nil && *q.Username != owner.Localpart()) {
		return nil, stanza.Errorf("bad-request", "a password change carries the username and the new password")
	}
	if err := m.checkPassword(*q.Password); err != nil {
		return nil, err
	}
	creds, err := m.derive(*q.Password)
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	if err := m.users.SetCredentials(ctx, owner.String(), creds); err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	return nil, nil
}

// cancelSubscriptions ends every subscription of an account that is being removed, as if its user had sent
// unsubscribe and unsubscribed to each contact: the contacts' rosters follow, and those who saw the account's
// presence see it go unavailable.
func (m *Module) cancelSubscriptions(ctx context.Context, owner jid.JID) {
	items, _, err := m.roster.Roster(ctx, owner.String())
	if err != nil {
		return
	}
	sessions := m.router.Sessions(owner)
	for _, it := range items {
		contact, err := jid.Parse(it.JID)
		if err != nil {
			continue
		}
		if it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth {
			for _, s := range sessions {
				if s.Available() {
					m.router.Route(ctx, stanza.New(stanza.Presence, "unavailable", "", s.JID(), contact, nil))
				}
			}
			m.router.Route(ctx, stanza.New(stanza.Presence, "unsubscribed", "", owner, contact, nil))
		}
		if it.Subscription == storage.SubTo || it.Subscription == storage.SubBoth || it.AskOut {
			m.router.Route(ctx, stanza.New(stanza.Presence, "unsubscribe", "", owner, contact, nil))
		}
	}
}

var _ module.Module = (*Module)(nil)
