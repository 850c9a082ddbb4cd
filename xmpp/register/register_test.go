package register_test

import (
	"context"
	"errors"
	"testing"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/module/moduletest"
	"parley.im/parley/xmpp/presence"
	"parley.im/parley/xmpp/register"
	"parley.im/parley/xmpp/stanza"
)

// derive stands for SCRAM derivation: the password is kept as the stored key, so tests can tell which
// password an account has.
func derive(password string) ([]storage.ScramCredential, error) {
	return []storage.ScramCredential{{Mechanism: "SCRAM-SHA-256", Salt: []byte("salt"), Iterations: 4096,
		StoredKey: []byte(password), ServerKey: []byte("server")}}, nil
}

func password(t *testing.T, st storage.Users, user string) string {
	t.Helper()
	creds, err := st.Credentials(context.Background(), user)
	if err != nil {
		t.Fatalf("credentials of %s: %v", user, err)
	}
	return string(creds[0].StoredKey)
}

func setup(t *testing.T, cfg register.Config) (*moduletest.Host, storage.Store) {
	t.Helper()
	st := moduletest.Store(t)
	return moduletest.New(t, register.New(cfg, st, st, derive)), st
}

func create(h *moduletest.Host, ip, user, pass string) *stanza.Stanza {
	return h.PreAuthIQ(context.Background(), ip, "set", "<query xmlns='jabber:iq:register'><username>"+user+"</username><password>"+pass+"</password></query>")
}

func TestRegistrationClosedByDefault(t *testing.T) {
	h, st := setup(t, register.Config{})
	if got := moduletest.ErrorCondition(h.PreAuthIQ(t.Context(), "192.0.2.1", "get", "<query xmlns='jabber:iq:register'/>")); got != "service-unavailable" {
		t.Errorf("registration form with registration closed: %q, want service-unavailable", got)
	}
	if got := moduletest.ErrorCondition(create(h, "192.0.2.1", "eve", "longpassword")); got != "service-unavailable" {
		t.Errorf("registration with registration closed: %q, want service-unavailable", got)
	}
	if _, err := st.Credentials(t.Context(), "eve@example.net"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("account created with registration closed (err %v)", err)
	}
}

func TestOpenRegistration(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t, register.Config{Open: true, PerIP: 2})
	var form struct {
		Query *struct {
			Username *string `xml:"username"`
			Password *string `xml:"password"`
		} `xml:"jabber:iq:register query"`
	}
	moduletest.Decode(t, h.PreAuthIQ(ctx, "192.0.2.1", "get", "<query xmlns='jabber:iq:register'/>"), &form)
	if form.Query == nil || form.Query.Username == nil || form.Query.Password == nil {
		t.Fatalf("form %+v, want username and password fields", form.Query)
	}

	if r := create(h, "192.0.2.1", "eve", "longpassword"); r.Type != "result" {
		t.Fatalf("registration: %s", r.Raw)
	}
	if got := password(t, st, "eve@example.net"); got != "longpassword" {
		t.Errorf("stored password %q", got)
	}
	for _, c := range []struct{ name, user, pass, cond string }{
		{"taken", "eve", "otherpassword", "conflict"},
		{"short password", "frank", "short", "not-acceptable"},
		{"invalid username", "a@b", "longpassword", "jid-malformed"},
		{"empty username", "", "longpassword", "jid-malformed"},
	} {
		if got := moduletest.ErrorCondition(create(h, "198.51.100.1", c.user, c.pass)); got != c.cond {
			t.Errorf("%s: %q, want %q", c.name, got, c.cond)
		}
	}
	if got := password(t, st, "eve@example.net"); got != "longpassword" {
		t.Errorf("a conflicting registration changed the password to %q", got)
	}

	// Two accounts per address per window: the third is refused, another address may go on.
	if r := create(h, "192.0.2.1", "gina", "longpassword"); r.Type != "result" {
		t.Fatalf("second registration: %s", r.Raw)
	}
	if got := moduletest.ErrorCondition(create(h, "192.0.2.1", "hank", "longpassword")); got != "resource-constraint" {
		t.Errorf("third registration from one address: %q, want resource-constraint", got)
	}
	if r := create(h, "203.0.113.9", "hank", "longpassword"); r.Type != "result" {
		t.Errorf("registration from another address: %s", r.Raw)
	}
}

func TestPasswordChange(t *testing.T) {
	ctx := t.Context()
	h, st := setup(t, register.Config{})
	for _, u := range []string{"alice@example.net", "bob@example.net"} {
		if err := st.CreateUser(ctx, u, mustDerive("oldpassword")); err != nil {
			t.Fatal(err)
		}
	}
	phone := h.Online(ctx, "alice@example.net/phone", 0)

	var status struct {
		Query *struct {
			Registered *struct{} `xml:"registered"`
			Username   string    `xml:"username"`
		} `xml:"jabber:iq:register query"`
	}
	moduletest.Decode(t, h.SendIQTo(ctx, phone, moduletest.Domain, "get", "<query xmlns='jabber:iq:register'/>"), &status)
	if status.Query == nil || status.Query.Registered == nil || status.Query.Username != "alice" {
		t.Errorf("registration status %+v", status.Query)
	}

	change := "<query xmlns='jabber:iq:register'><username>alice</username><password>newpassword</password></query>"
	if r := h.SendIQTo(ctx, phone, moduletest.Domain, "set", change); r.Type != "result" {
		t.Fatalf("password change: %s", r.Raw)
	}
	if got := password(t, st, "alice@example.net"); got != "newpassword" {
		t.Errorf("password after change %q", got)
	}
	for _, c := range []struct{ name, to, payload, cond string }{
		{"someone else's username", moduletest.Domain, "<query xmlns='jabber:iq:register'><username>bob</username><password>hijacked1</password></query>", "bad-request"},
		{"short password", moduletest.Domain, "<query xmlns='jabber:iq:register'><username>alice</username><password>short</password></query>", "not-acceptable"},
		{"another account", "bob@example.net", "<query xmlns='jabber:iq:register'><username>bob</username><password>hijacked1</password></query>", "forbidden"},
	} {
		if got := moduletest.ErrorCondition(h.SendIQTo(ctx, phone, c.to, "set", c.payload)); got != c.cond {
			t.Errorf("%s: %q, want %q", c.name, got, c.cond)
		}
	}
	if got := password(t, st, "bob@example.net"); got != "oldpassword" {
		t.Errorf("bob's password became %q", got)
	}
	if got := password(t, st, "alice@example.net"); got != "newpassword" {
		t.Errorf("alice's password became %q after refused changes", got)
	}
}

func TestRemoveAccount(t *testing.T) {
	ctx := t.Context()
	st := moduletest.Store(t)
	h := moduletest.New(t, presence.New(st, st), register.New(register.Config{}, st, st, derive))
	if err := st.CreateUser(ctx, "alice@example.net", mustDerive("oldpassword")); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		owner, contact string
		sub            storage.Subscription
	}{
		{"alice@example.net", "bob@example.net", storage.SubBoth},
		{"bob@example.net", "alice@example.net", storage.SubBoth},
		{"alice@example.net", "erin@other.org", storage.SubTo},
	} {
		if _, err := st.PutRosterItem(ctx, r.owner, storage.RosterItem{JID: r.contact, Subscription: r.sub}); err != nil {
			t.Fatal(err)
		}
	}
	bob := h.Online(ctx, "bob@example.net/pc", 0)
	phone := h.Online(ctx, "alice@example.net/phone", 0)
	laptop := h.Online(ctx, "alice@example.net/laptop", 0)

	if r := h.SendIQ(ctx, phone, "set", "<query xmlns='jabber:iq:register'><remove/></query>"); r != nil {
		t.Fatalf("remove answered through the router: %s; the result must reach the session before it closes", r.Raw)
	}
	got := phone.Received()
	if len(got) != 1 || !got[0].Is(stanza.IQ, "result") {
		t.Fatalf("the removing session got %v, want the result", got)
	}
	for _, s := range []*moduletest.Session{phone, laptop} {
		if closed, cond, _ := s.Closed(); !closed || cond != "not-authorized" {
			t.Errorf("%s: closed %v with %q, want closed with not-authorized", s.JID(), closed, cond)
		}
	}
	if _, err := st.Credentials(ctx, "alice@example.net"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("account still there (err %v)", err)
	}
	// Bob's roster follows and he sees alice go; the remote contact is told.
	if it, err := st.RosterItem(ctx, "bob@example.net", "alice@example.net"); err != nil || it.Subscription != storage.SubNone {
		t.Errorf("bob's item for alice: %+v (err %v), want subscription none", it, err)
	}
	var unavailable int
	for _, p := range moduletest.Only(bob.Received(), stanza.Presence, "unavailable") {
		if p.From.Bare().String() == "alice@example.net" {
			unavailable++
		}
	}
	if unavailable != 2 {
		t.Errorf("bob saw %d of alice's two resources go unavailable", unavailable)
	}
	left := h.Router.Left()
	if len(left) != 1 || !left[0].Is(stanza.Presence, "unsubscribe") || left[0].To.String() != "erin@other.org" {
		t.Errorf("left the server: %v, want unsubscribe to erin", left)
	}
}

func mustDerive(p string) []storage.ScramCredential {
	c, _ := derive(p)
	return c
}
