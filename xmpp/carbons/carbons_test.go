package carbons_test

import (
	"slices"
	"testing"

	"parley.im/parley/xmpp/carbons"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/stanza"
)

type carbon struct {
	From string `xml:"from,attr"`
	To   string `xml:"to,attr"`
	Type string `xml:"type,attr"`
	Body string `xml:"body"`
	Sent *struct {
		Forwarded forwarded `xml:"urn:xmpp:forward:0 forwarded"`
	} `xml:"urn:xmpp:carbons:2 sent"`
	Received *struct {
		Forwarded forwarded `xml:"urn:xmpp:forward:0 forwarded"`
	} `xml:"urn:xmpp:carbons:2 received"`
}

type forwarded struct {
	Message struct {
		From string `xml:"from,attr"`
		To   string `xml:"to,attr"`
		Body string `xml:"body"`
	} `xml:"jabber:client message"`
}

const (
	enable  = "<enable xmlns='urn:xmpp:carbons:2'/>"
	disable = "<disable xmlns='urn:xmpp:carbons:2'/>"
)

// account is alice with three available resources; laptop and tablet enabled carbons.
type account struct {
	h                     *moduletest.Host
	phone, laptop, tablet *moduletest.Session
}

func setup(t *testing.T) account {
	t.Helper()
	ctx := t.Context()
	h := moduletest.New(t, carbons.New())
	a := account{h: h,
		phone:  h.Online(ctx, "alice@example.net/phone", 5),
		laptop: h.Online(ctx, "alice@example.net/laptop", 0),
		tablet: h.Online(ctx, "alice@example.net/tablet", 0),
	}
	for _, s := range []*moduletest.Session{a.laptop, a.tablet} {
		if r := h.SendIQ(ctx, s, "set", enable); r.Type != "result" {
			t.Fatalf("enable: %s", r.Raw)
		}
	}
	return a
}

func decodeCarbons(t *testing.T, s *moduletest.Session) []carbon {
	t.Helper()
	var out []carbon
	for _, st := range moduletest.Only(s.Received(), stanza.Message, "*") {
		var c carbon
		moduletest.Decode(t, st, &c)
		out = append(out, c)
	}
	return out
}

func TestSentMessagesAreCopiedToOtherEnabledResources(t *testing.T) {
	ctx := t.Context()
	a := setup(t)
	a.h.SendIQ(ctx, a.phone, "set", enable) // the sender's own carbons never copy back to it

	a.h.SendMessage(ctx, a.phone, moduletest.Message("alice@example.net/phone", "bob@other.org", "chat", "<body>hi</body>"))

	if left := a.h.Router.Left(); len(left) != 1 || left[0].To.String() != "bob@other.org" {
		t.Errorf("the message itself: %v, want it routed to bob", left)
	}
	if got := a.phone.Received(); len(got) != 0 {
		t.Errorf("the sending resource got %d copies", len(got))
	}
	for _, s := range []*moduletest.Session{a.laptop, a.tablet} {
		cs := decodeCarbons(t, s)
		if len(cs) != 1 || cs[0].Sent == nil {
			t.Fatalf("%s got %v, want one sent carbon", s.JID(), cs)
		}
		c := cs[0]
		if c.From != "alice@example.net" || c.To != s.JID().String() || c.Type != "chat" {
			t.Errorf("%s: carbon envelope from %q to %q type %q", s.JID(), c.From, c.To, c.Type)
		}
		if m := c.Sent.Forwarded.Message; m.Body != "hi" || m.To != "bob@other.org" || m.From != "alice@example.net/phone" {
			t.Errorf("%s: forwarded message %+v", s.JID(), m)
		}
	}
}

func TestReceivedMessagesAreCopiedToOtherEnabledResources(t *testing.T) {
	ctx := t.Context()
	a := setup(t)
	// To the bare JID: the highest-priority resource (phone) gets it, the enabled others a received carbon.
	a.h.Router.Route(ctx, moduletest.Message("bob@other.org/x", "alice@example.net", "chat", "<body>one</body>"))
	// To the laptop's full JID: the laptop gets it, the tablet a carbon, the phone (not enabled) nothing.
	a.h.Router.Route(ctx, moduletest.Message("bob@other.org/x", "alice@example.net/laptop", "chat", "<body>two</body>"))

	bodies := func(s *moduletest.Session) (direct, received []string) {
		for _, c := range decodeCarbons(t, s) {
			if c.Received != nil {
				received = append(received, c.Received.Forwarded.Message.Body)
				if c.From != "alice@example.net" {
					t.Errorf("carbon from %q, want the account's bare JID", c.From)
				}
			} else if c.Sent == nil {
				direct = append(direct, c.Body)
			}
		}
		return
	}
	if d, r := bodies(a.phone); !slices.Equal(d, []string{"one"}) || len(r) != 0 {
		t.Errorf("phone: messages %q, carbons %q; want [one], none", d, r)
	}
	if d, r := bodies(a.laptop); !slices.Equal(d, []string{"two"}) || !slices.Equal(r, []string{"one"}) {
		t.Errorf("laptop: messages %q, carbons %q; want [two], [one]", d, r)
	}
	if d, r := bodies(a.tablet); len(d) != 0 || !slices.Equal(r, []string{"one", "two"}) {
		t.Errorf("tablet: %d messages, carbons %q; want 0, [one two]", len(d), r)
	}
}

func TestDisableStopsCopies(t *testing.T) {
	ctx := t.Context()
	a := setup(t)
	if r := a.h.SendIQ(ctx, a.laptop, "set", disable); r.Type != "result" {
		t.Fatalf("disable: %s", r.Raw)
	}
	a.h.SendMessage(ctx, a.phone, moduletest.Message("alice@example.net/phone", "bob@other.org", "chat", "<body>hi</body>"))
	if n := len(a.laptop.Received()); n != 0 {
		t.Errorf("a resource that disabled carbons got %d copies", n)
	}
	if n := len(a.tablet.Received()); n != 1 {
		t.Errorf("the enabled resource got %d copies, want 1", n)
	}
}

func TestMessagesThatAreNotCopied(t *testing.T) {
	ctx := t.Context()
	for _, c := range []struct{ name, typ, inner string }{
		{"private", "chat", "<body>x</body><private xmlns='urn:xmpp:carbons:2'/>"},
		{"no-copy hint", "chat", "<body>x</body><no-copy xmlns='urn:xmpp:hints'/>"},
		{"groupchat", "groupchat", "<body>x</body>"},
		{"headline", "headline", "<body>x</body>"},
		{"error", "error", "<body>x</body>"},
		{"normal without content", "", "<thread>t</thread>"},
		{"a carbon", "chat", "<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'/></received>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := setup(t)
			a.h.Outbound(ctx, a.phone, moduletest.Message("alice@example.net/phone", "bob@other.org", c.typ, c.inner))
			a.h.Inbound(ctx, moduletest.Message("bob@other.org/x", "alice@example.net/phone", c.typ, c.inner), a.phone)
			if n := len(a.laptop.Received()) + len(a.tablet.Received()); n != 0 {
				t.Errorf("%d copies, want none", n)
			}
		})
	}
	// Normal messages with content are copied, as chat ones are.
	a := setup(t)
	a.h.Outbound(ctx, a.phone, moduletest.Message("alice@example.net/phone", "bob@other.org", "", "<body>x</body>"))
	a.h.Outbound(ctx, a.phone, moduletest.Message("alice@example.net/phone", "bob@other.org", "", "<received xmlns='urn:xmpp:receipts' id='1'/>"))
	if n := len(a.laptop.Received()); n != 2 {
		t.Errorf("normal messages with a body or a receipt: %d copies, want 2", n)
	}
}

func TestHooksLetTheMessageThrough(t *testing.T) {
	ctx := t.Context()
	a := setup(t)
	m := moduletest.Message("alice@example.net/phone", "bob@other.org", "chat", "<body>hi</body>")
	if res := a.h.Outbound(ctx, a.phone, m); res.Verdict != module.Continue || res.Err != nil || res.Stanza != m {
		t.Errorf("outbound: %+v, want the message to continue unchanged", res)
	}
	in := moduletest.Message("bob@other.org/x", "alice@example.net/phone", "chat", "<body>hi</body>")
	if res := a.h.Inbound(ctx, in, a.phone); res.Verdict != module.Continue || res.Err != nil || res.Stanza != in {
		t.Errorf("inbound: %+v, want the message to continue unchanged", res)
	}
}

func TestToggleIsForTheSendersOwnAccount(t *testing.T) {
	ctx := t.Context()
	a := setup(t)
	bob := a.h.Online(ctx, "bob@example.net/pc", 0)
	if got := moduletest.ErrorCondition(a.h.SendIQTo(ctx, bob, "alice@example.net", "set", enable)); got != "forbidden" {
		t.Errorf("enabling carbons on another account: %q, want forbidden", got)
	}
	for _, tg := range []module.Target{module.Server, module.Account} {
		if !slices.Contains(a.h.Registry.Features(tg), carbons.NS) {
			t.Errorf("%s features %v lack %s", tg, a.h.Registry.Features(tg), carbons.NS)
		}
	}
}
