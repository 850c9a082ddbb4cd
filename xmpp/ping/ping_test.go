package ping_test

import (
	"slices"
	"testing"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/ping"
)

func TestPingIsAnswered(t *testing.T) {
	ctx := t.Context()
	h := moduletest.New(t, ping.New())
	phone := h.Online(ctx, "alice@example.net/phone", 0)
	for _, to := range []string{moduletest.Domain, "alice@example.net", ""} {
		r := h.SendIQTo(ctx, phone, to, "get", "<ping xmlns='urn:xmpp:ping'/>")
		if r.Type != "result" || len(r.Payload()) != 0 || r.ID == "" || !r.To.Equal(phone.JID()) {
			t.Errorf("ping to %q: %s, want an empty result to the sender", to, r.Raw)
		}
	}
	if r := h.SendIQTo(ctx, phone, moduletest.Domain, "set", "<ping xmlns='urn:xmpp:ping'/>"); moduletest.ErrorCondition(r) != "service-unavailable" {
		t.Errorf("ping of type set: %s, want service-unavailable", r.Raw)
	}
	for _, tg := range []module.Target{module.Server, module.Account} {
		if !slices.Contains(h.Registry.Features(tg), ping.NS) {
			t.Errorf("%s features %v lack %s", tg, h.Registry.Features(tg), ping.NS)
		}
	}
}
