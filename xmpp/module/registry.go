package module

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"strings"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/stanza"
)

// Registry holds every registration of every module. The server builds one, registers the module list into it
// and hands it to the router, which looks handlers up; nothing is registered after startup.
type Registry struct {
	iq          map[iqKey]iqEntry
	features    map[Target]map[string]string // feature -> registering module
	identities  map[Target][]Identity
	items       map[Target][]Item
	hooks       map[Stage][]namedHook
	hookFns     map[Stage][]MessageHook // the same hooks without their names, for the router's hot path
	presence    PresenceHandler
	presenceBy  string
	sessions    map[SessionEvent][]SessionHook
	streamFeat  []string
	iqResponses []IQResponseHook
	// presenceHooks see availability presence for local accounts (Host.OnPresence).
	presenceHooks []PresenceHook
	// filters are the presence and IQ filters of the Outbound (index 0) and Inbound (index 1) stages.
	filters [2][]FilterHook
	// presenceEdits may edit available presence sent by local sessions (Host.EditPresence).
	presenceEdits []PresenceEditHook
	services      map[string]serviceEntry
	names         map[string]bool
}

type iqKey struct {
	target    Target
	typ       string
	ns, local string
}

type iqEntry struct {
	fn     IQHandler
	module string
	site   string
}

type serviceEntry struct {
	h      ServiceHandler
	module string
	site   string
}

type namedHook struct {
	module string
	fn     MessageHook
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{
		iq:         make(map[iqKey]iqEntry),
		features:   make(map[Target]map[string]string),
		identities: make(map[Target][]Identity),
		items:      make(map[Target][]Item),
		hooks:      make(map[Stage][]namedHook),
		hookFns:    make(map[Stage][]MessageHook),
		sessions:   make(map[SessionEvent][]SessionHook),
		names:      make(map[string]bool),
		services:   make(map[string]serviceEntry),
	}
}

// Register runs Register of each module in order. The first error stops it; the error names the module.
func (r *Registry) Register(mods []Module, router Router, domain jid.JID, log *slog.Logger) error {
	for _, m := range mods {
		name := m.Name()
		if r.names[name] {
			return fmt.Errorf("module: two modules are named %q", name)
		}
		r.names[name] = true
		h := &Host{reg: r, module: name, log: log.With("module", name), router: router, domain: domain}
		if err := m.Register(h); err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
	}
	return nil
}

// caller names the file:line that called a Host method, for conflict messages.
func caller() string {
	_, file, line, ok := runtime.Caller(2)
	if !ok {
		return "unknown"
	}
	if i := strings.LastIndex(file, "/"); i >= 0 {
		if j := strings.LastIndex(file[:i], "/"); j >= 0 {
			file = file[j+1:]
		}
	}
	return fmt.Sprintf("%s:%d", file, line)
}

func (r *Registry) addIQ(module, site string, route IQRoute, fn IQHandler) error {
	if route.Type != "get" && route.Type != "set" {
		return fmt.Errorf("iq handler for %s %s at %s: type must be get or set, not %q", route.NS, route.Local, site, route.Type)
	}
	if route.Target == 0 || route.NS == "" || route.Local == "" || fn == nil {
		return fmt.Errorf("iq handler at %s: target, namespace, element name and handler are required", site)
	}
	for t := Server; t <= PreAuth; t <<= 1 {
		if route.Target&t == 0 {
			continue
		}
		k := iqKey{t, route.Type, route.NS, route.Local}
		if prev, ok := r.iq[k]; ok {
			return fmt.Errorf("iq %s {%s}%s for %s registered twice: by %s at %s and by %s at %s",
				route.Type, route.NS, route.Local, t, prev.module, prev.site, module, site)
		}
		r.iq[k] = iqEntry{fn: fn, module: module, site: site}
		if route.Feature != "" && t != PreAuth {
			if r.features[t] == nil {
				r.features[t] = make(map[string]string)
			}
			r.features[t][route.Feature] = module
		}
	}
	return nil
}

func (r *Registry) addFeature(module, site string, target Target, feature string) error {
	for t := Server; t <= Account; t <<= 1 {
		if target&t == 0 {
			continue
		}
		if r.features[t] == nil {
			r.features[t] = make(map[string]string)
		}
		if prev, ok := r.features[t][feature]; ok && prev != module {
			return fmt.Errorf("disco feature %q for %s advertised by both %s and %s (at %s)", feature, t, prev, module, site)
		}
		r.features[t][feature] = module
	}
	return nil
}

func (r *Registry) addIdentity(target Target, id Identity) {
	for t := Server; t <= Account; t <<= 1 {
		if target&t != 0 {
			r.identities[t] = append(r.identities[t], id)
		}
	}
}

func (r *Registry) addItem(target Target, it Item) {
	for t := Server; t <= Account; t <<= 1 {
		if target&t != 0 {
			r.items[t] = append(r.items[t], it)
		}
	}
}

func (r *Registry) addMessageHook(module string, stage Stage, fn MessageHook) {
	r.hooks[stage] = append(r.hooks[stage], namedHook{module, fn})
	r.hookFns[stage] = append(r.hookFns[stage], fn)
}

func (r *Registry) setPresence(module, site string, p PresenceHandler) error {
	if r.presence != nil {
		return fmt.Errorf("presence handler registered twice: by %s and by %s at %s", r.presenceBy, module, site)
	}
	r.presence, r.presenceBy = p, module+" at "+site
	return nil
}

func (r *Registry) addSessionHook(module string, ev SessionEvent, fn SessionHook) {
	r.sessions[ev] = append(r.sessions[ev], fn)
}

func (r *Registry) addService(module, site string, domain jid.JID, h ServiceHandler) error {
	d := domain.Domainpart()
	if domain.Localpart() != "" || domain.Resourcepart() != "" || d == "" {
		return fmt.Errorf("service at %s: %q is not a bare domain", site, domain)
	}
	if prev, ok := r.services[d]; ok {
		return fmt.Errorf("service domain %s registered twice: by %s at %s and by %s at %s", d, prev.module, prev.site, module, site)
	}
	r.services[d] = serviceEntry{h: h, module: module, site: site}
	return nil
}

// Service returns the handler of a service domain, or nil.
func (r *Registry) Service(domain string) ServiceHandler { return r.services[domain].h }

// HasServices reports whether any service domain is registered.
func (r *Registry) HasServices() bool { return len(r.services) > 0 }

func (r *Registry) addStreamFeature(xml string) { r.streamFeat = append(r.streamFeat, xml) }

// IQResponseHooks returns the hooks for IQ answers addressed to a local bare JID, in module order.
func (r *Registry) IQResponseHooks() []IQResponseHook { return r.iqResponses }

// PresenceHooks returns the hooks for availability presence that reached a local account, in module order. The
// slice must not be modified.
func (r *Registry) PresenceHooks() []PresenceHook { return r.presenceHooks }

func (r *Registry) addFilter(stage Stage, fn FilterHook) {
	if stage == Outbound || stage == Inbound {
		r.filters[stage-Outbound] = append(r.filters[stage-Outbound], fn)
	}
}

// Filters returns the presence and IQ filters of the Outbound or the Inbound stage, in module order. The slice
// must not be modified.
func (r *Registry) Filters(stage Stage) []FilterHook {
	if stage != Outbound && stage != Inbound {
		return nil
	}
	return r.filters[stage-Outbound]
}

// EditPresence runs the presence edit hooks (Host.EditPresence) on an available presence that local session s
// sent, and returns the presence to hand to the presence handler: p itself when no hook changed it. Other
// presence types pass unchanged.
func (r *Registry) EditPresence(ctx context.Context, s Session, p *stanza.Stanza) *stanza.Stanza {
	if p.Type != "" || s == nil {
		return p
	}
	for _, fn := range r.presenceEdits {
		p = fn(ctx, s, p)
	}
	return p
}

// IQHandler returns the handler for an IQ, or nil.
func (r *Registry) IQHandler(t Target, typ, ns, local string) IQHandler {
	return r.iq[iqKey{t, typ, ns, local}].fn
}

// MessageHooks returns the hooks of a stage in module order.
//
// The slice is the registry's own (hooks are added only during registration, before the server routes), so
// the router's stage runs cost no allocation; callers must not modify it.
func (r *Registry) MessageHooks(s Stage) []MessageHook { return r.hookFns[s] }

// Presence returns the presence handler, nil if no module installed one.
func (r *Registry) Presence() PresenceHandler { return r.presence }

// SessionHooks returns the hooks for an event: module order for Bound, reverse order for Closed.
func (r *Registry) SessionHooks(ev SessionEvent) []SessionHook {
	hs := append([]SessionHook(nil), r.sessions[ev]...)
	if ev == Closed {
		for i, j := 0, len(hs)-1; i < j; i, j = i+1, j-1 {
			hs[i], hs[j] = hs[j], hs[i]
		}
	}
	return hs
}

// Features returns the sorted disco features of a target.
func (r *Registry) Features(t Target) []string {
	out := make([]string, 0, len(r.features[t]))
	for f := range r.features[t] {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// Identities returns the disco identities of a target.
func (r *Registry) Identities(t Target) []Identity { return r.identities[t] }

// Items returns the disco items of a target.
func (r *Registry) Items(t Target) []Item { return r.items[t] }

// StreamFeatures returns the extra stream features offered to authenticated streams, in registration order.
func (r *Registry) StreamFeatures() []string { return r.streamFeat }

func (t Target) String() string {
	switch t {
	case Server:
		return "server"
	case Account:
		return "account"
	case PreAuth:
		return "pre-auth"
	}
	return fmt.Sprintf("target(%d)", uint8(t))
}
