package conformance

// The core of RFC 6120/6121 and the XEPs Parley ships with, as clients see them: service discovery and
// capabilities, ping and version, keepalive, in-band registration, presence rules, the delivery rules for
// addresses that do not (or no longer) exist, resource conflicts, offline storage and the metrics endpoint.

import (
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawLogin logs user in over STARTTLS with SCRAM-SHA-256 and binds resource, by hand.
func rawLogin(t *testing.T, srv *Server, user, password, resource string) *xmppConn {
	t.Helper()
	x, _ := dialTLS(t, srv, user+"/"+resource, srv.TLSConfig())
	if got := x.scramAuth("SCRAM-SHA-256", user, password, "n", nil); got != "success" {
		t.Fatalf("login %s: %s", user, got)
	}
	if j := x.bind(resource); j != user+"@localhost/"+resource {
		t.Fatalf("bound %q", j)
	}
	return x
}

// iq sends an IQ whose id is id and returns the answer with that id, skipping anything else.
func (x *xmppConn) iq(id, raw string) string {
	x.t.Helper()
	x.send(raw)
	return x.waitFor(5*time.Second, "<iq", "id='"+id+"'")
}

// goOnline makes a mellium client an interested, available resource (RFC 6121 2.1.6, 4.2).
func goOnline(c *Client) {
	c.t.Helper()
	c.Send(`<iq type='get' id='roster-first'><query xmlns='jabber:iq:roster'/></iq>`)
	c.Expect(5*time.Second, `id="roster-first"`, `type="result"`)
	c.Send(`<presence/>`)
	c.Expect(5*time.Second, "<presence", `from="`+c.JID.String()+`"`)
}

// subscribeApproved has a subscribe to b's presence and b approve it (RFC 6121 3.1); a's roster item for b
// becomes "to", or "both" if b was already subscribed to a.
func subscribeApproved(a, b *Client) {
	a.t.Helper()
	a.Send(`<presence to='` + b.JID.Bare().String() + `' type='subscribe'/>`)
	b.Expect(5*time.Second, `type="subscribe"`, `from="`+a.JID.Bare().String()+`"`)
	b.Send(`<presence to='` + a.JID.Bare().String() + `' type='subscribed'/>`)
	for {
		push := a.Expect(5*time.Second, "jabber:iq:roster", `jid="`+b.JID.Bare().String()+`"`)
		if strings.Contains(push, `subscription="to"`) || strings.Contains(push, `subscription="both"`) {
			return
		}
	}
}

type discoIdentity struct {
	Category string `xml:"category,attr"`
	Type     string `xml:"type,attr"`
	Lang     string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Name     string `xml:"name,attr"`
}

type discoInfo struct {
	Type  string `xml:"type,attr"`
	Query struct {
		Node       string          `xml:"node,attr"`
		Identities []discoIdentity `xml:"identity"`
		Features   []struct {
			Var string `xml:"var,attr"`
		} `xml:"feature"`
	} `xml:"http://jabber.org/protocol/disco#info query"`
}

func parseDiscoInfo(t *testing.T, raw string) discoInfo {
	t.Helper()
	var d discoInfo
	if err := xml.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatalf("disco#info answer %s: %v", raw, err)
	}
	if d.Type != "result" {
		t.Fatalf("disco#info not answered with a result: %s", raw)
	}
	return d
}

func (d discoInfo) features() []string {
	var out []string
	for _, f := range d.Query.Features {
		out = append(out, f.Var)
	}
	return out
}

func (d discoInfo) hasIdentity(category, typ string) bool {
	for _, id := range d.Query.Identities {
		if id.Category == category && id.Type == typ {
			return true
		}
	}
	return false
}

// capsVer computes the XEP-0115 verification string (section 5.1) of a disco#info answer without data forms:
// identities sorted by category, type and xml:lang as "category/type/lang/name<", then features sorted by octet
// as "var<", SHA-1, base64.
func capsVer(d discoInfo) string {
	ids := append([]discoIdentity(nil), d.Query.Identities...)
	sort.Slice(ids, func(i, j int) bool {
		a, b := ids[i], ids[j]
		if a.Category != b.Category {
			return a.Category < b.Category
		}
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return a.Lang < b.Lang
	})
	fs := d.features()
	sort.Strings(fs)
	var s strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&s, "%s/%s/%s/%s<", id.Category, id.Type, id.Lang, id.Name)
	}
	for _, f := range fs {
		s.WriteString(f + "<")
	}
	sum := sha1.Sum([]byte(s.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

var capsAttr = regexp.MustCompile(`<c xmlns='http://jabber.org/protocol/caps'[^>]*>`)

func xmlAttr(el, name string) string {
	re := regexp.MustCompile(`\s` + name + `=['"]([^'"]*)['"]`)
	if m := re.FindStringSubmatch(el); m != nil {
		return m[1]
	}
	return ""
}

// XEP-0030 on the server and on an account, and the XEP-0115 capabilities in the stream features, recomputed here
// from the disco#info answer.
func TestDiscoInfoAndCaps(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	x, _ := dialTLS(t, srv, "alice", srv.TLSConfig())
	if got := x.scramAuth("SCRAM-SHA-256", "alice", "alice-secret", "n", nil); got != "success" {
		t.Fatal(got)
	}
	feat := x.open()
	for _, f := range []string{"urn:ietf:params:xml:ns:xmpp-bind", "urn:xmpp:features:rosterver", "urn:xmpp:features:pre-approval"} {
		if !strings.Contains(feat, f) {
			t.Errorf("stream features after authentication lack %s: %s", f, feat)
		}
	}
	c := capsAttr.FindString(feat)
	if c == "" {
		t.Fatalf("no XEP-0115 <c/> in the stream features: %s", feat)
	}
	x.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>disco</resource></bind></iq>`)
	x.expect(`id='b'`, `type='result'`)

	server := parseDiscoInfo(t, x.iq("d1", `<iq type='get' to='localhost' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`))
	if !server.hasIdentity("server", "im") {
		t.Errorf("server identity is not server/im: %+v", server.Query.Identities)
	}
	for _, f := range []string{"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items", "urn:xmpp:ping",
		"jabber:iq:version", "msgoffline", "jabber:iq:register"} {
		if !listHas(server.features(), f) {
			t.Errorf("server disco#info lacks feature %s (has %v)", f, server.features())
		}
	}

	// XEP-0115 5.1: the ver in the stream features is the hash of exactly this answer.
	if xmlAttr(c, "hash") != "sha-1" {
		t.Errorf("caps hash %q, want sha-1: %s", xmlAttr(c, "hash"), c)
	}
	if want := capsVer(server); xmlAttr(c, "ver") != want {
		t.Errorf("caps ver %q in the stream features, but disco#info hashes to %q", xmlAttr(c, "ver"), want)
	}
	// 6.2: the node#ver query is answered with the same information.
	node := xmlAttr(c, "node") + "#" + xmlAttr(c, "ver")
	nodeInfo := parseDiscoInfo(t, x.iq("d2", `<iq type='get' to='localhost' id='d2'><query xmlns='http://jabber.org/protocol/disco#info' node='`+node+`'/></iq>`))
	if nodeInfo.Query.Node != node || capsVer(nodeInfo) != capsVer(server) {
		t.Errorf("disco#info for node %s differs: %+v", node, nodeInfo)
	}

	items := x.iq("d3", `<iq type='get' to='localhost' id='d3'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`)
	if !strings.Contains(items, "type='result'") || !strings.Contains(items, "disco#items") {
		t.Errorf("disco#items: %s", items)
	}

	// The account: the user's own bare JID and another user's.
	for _, to := range []string{"alice@localhost", "bob@localhost"} {
		acct := parseDiscoInfo(t, x.iq("a-"+to, `<iq type='get' to='`+to+`' id='a-`+to+`'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`))
		if !acct.hasIdentity("account", "registered") {
			t.Errorf("%s identity is not account/registered: %+v", to, acct.Query.Identities)
		}
		if !listHas(acct.features(), "http://jabber.org/protocol/disco#info") {
			t.Errorf("%s disco#info lacks disco#info: %v", to, acct.features())
		}
	}
}

// XEP-0199 and XEP-0092 answered by the server.
func TestPingAndVersion(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	x := rawLogin(t, srv, "alice", "alice-secret", "pv")
	if got := x.iq("p1", `<iq type='get' to='localhost' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`); !strings.Contains(got, "type='result'") {
		t.Errorf("ping to the server: %s", got)
	}
	if got := x.iq("p2", `<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>`); !strings.Contains(got, "type='result'") {
		t.Errorf("ping to the own account (no to): %s", got)
	}
	got := x.iq("v1", `<iq type='get' to='localhost' id='v1'><query xmlns='jabber:iq:version'/></iq>`)
	var v struct {
		Type  string `xml:"type,attr"`
		Query struct {
			Name    string `xml:"name"`
			Version string `xml:"version"`
			OS      string `xml:"os"`
		} `xml:"jabber:iq:version query"`
	}
	if err := xml.Unmarshal([]byte(got), &v); err != nil || v.Type != "result" {
		t.Fatalf("version: %s", got)
	}
	if v.Query.Name != "Parley" || v.Query.Version == "" {
		t.Errorf("version answered name %q version %q, want Parley and a version", v.Query.Name, v.Query.Version)
	}
	if v.Query.OS != "" {
		t.Errorf("OS disclosed with version.show_os off: %q", v.Query.OS)
	}
}

var pingID = regexp.MustCompile(`<iq[^>]*\sid='([^']+)'[^>]*>\s*<ping xmlns='urn:xmpp:ping'`)

// XEP-0199 keepalive: the server pings an idle client; one that answers stays connected, one that never answers
// is disconnected with <connection-timeout/>.
func TestServerPingsIdleClients(t *testing.T) {
	srv := Start(t, "c2s:\n  ping_interval: 1s\n  ping_timeout: 1s\n")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")

	t.Run("answers", func(t *testing.T) {
		x := rawLogin(t, srv, "alice", "alice-secret", "answers")
		answered := 0
		end := time.Now().Add(4 * time.Second)
		for time.Now().Before(end) {
			el, err := x.next(time.Until(end))
			if err != nil {
				if isNetTimeout(err) {
					break
				}
				t.Fatalf("connection lost after %d pings: %v", answered, err)
			}
			if strings.Contains(el, "stream:error") || el == "</stream:stream>" {
				t.Fatalf("stream ended after %d answered pings: %s", answered, el)
			}
			if m := pingID.FindStringSubmatch(el); m != nil {
				if !strings.Contains(el, "type='get'") || !strings.Contains(el, "from='localhost'") {
					t.Errorf("server ping is not an IQ get from the server: %s", el)
				}
				x.send(`<iq type='result' to='localhost' id='` + m[1] + `'/>`)
				answered++
			}
		}
		if answered < 2 {
			t.Errorf("%d server pings in 4s with ping_interval 1s, want at least 2", answered)
		}
		if got := x.iq("still", `<iq type='get' to='localhost' id='still'><ping xmlns='urn:xmpp:ping'/></iq>`); !strings.Contains(got, "type='result'") {
			t.Fatalf("after 4s: %s", got)
		}
	})

	t.Run("silent", func(t *testing.T) {
		x := rawLogin(t, srv, "bob", "bob-secret", "silent")
		start := time.Now()
		got := x.closed(8 * time.Second)
		if !strings.Contains(got, "<ping xmlns='urn:xmpp:ping'") {
			t.Errorf("no ping before the disconnect: %s", got)
		}
		if !strings.Contains(got, "<connection-timeout") {
			t.Errorf("disconnected without <connection-timeout/>: %s", got)
		}
		t.Logf("disconnected after %s", time.Since(start).Round(100*time.Millisecond))
	})
}

func isNetTimeout(err error) bool {
	ne, ok := err.(interface{ Timeout() bool })
	return ok && ne.Timeout()
}

// XEP-0077 in-band registration is off unless configured: not advertised, and a registration IQ before
// authentication is refused.
func TestRegistrationOffByDefault(t *testing.T) {
	srv := Start(t, "")
	x, feat := dialTLS(t, srv, "register off", srv.TLSConfig())
	if strings.Contains(feat, "iq-register") {
		t.Fatalf("registration advertised while off: %s", feat)
	}
	x.send(`<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>mallory</username><password>mallory-secret</password></query></iq>`)
	el, err := x.next(5 * time.Second)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if !strings.Contains(el, "stream:error") && !(strings.Contains(el, "<iq") && strings.Contains(el, "type='error'")) {
		t.Fatalf("registration IQ before authentication answered with %s, want an error", el)
	}
	y, _ := dialTLS(t, srv, "login", srv.TLSConfig())
	if got := y.scramAuth("SCRAM-SHA-256", "mallory", "mallory-secret", "n", nil); got != "not-authorized" {
		t.Fatalf("the account was created anyway: %s", got)
	}
}

// iqErrorCondition returns the defined condition of an IQ or message error, "" for anything else.
func iqErrorCondition(el string) string {
	var v struct {
		Type  string `xml:"type,attr"`
		Error struct {
			Inner []struct {
				XMLName xml.Name
			} `xml:",any"`
		} `xml:"error"`
	}
	if xml.Unmarshal([]byte(el), &v) != nil || v.Type != "error" {
		return ""
	}
	for _, c := range v.Error.Inner {
		if c.XMLName.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.XMLName.Local != "text" {
			return c.XMLName.Local
		}
	}
	return "?"
}

// XEP-0077 3.1 with register.open: the form, an account created before authentication, a login with it (on the
// same stream and a new one), conflict for a taken name, the password length rule, and the per-IP limit.
func TestRegistrationOpen(t *testing.T) {
	srv := Start(t, "register:\n  open: true\n  min_password_length: 6\n  per_ip: 2\n")
	x, feat := dialTLS(t, srv, "register", srv.TLSConfig())
	if !strings.Contains(feat, "<register xmlns='http://jabber.org/features/iq-register'/>") {
		t.Fatalf("registration not advertised: %s", feat)
	}
	form := x.iq("f1", `<iq type='get' id='f1'><query xmlns='jabber:iq:register'/></iq>`)
	if !strings.Contains(form, "type='result'") || !strings.Contains(form, "<username/>") || !strings.Contains(form, "<password/>") {
		t.Fatalf("registration form: %s", form)
	}
	// Too short a password is refused and costs no registration.
	if got := iqErrorCondition(x.iq("r0", `<iq type='set' id='r0'><query xmlns='jabber:iq:register'><username>newbie</username><password>12345</password></query></iq>`)); got != "not-acceptable" {
		t.Errorf("5-character password with min_password_length 6: %s, want not-acceptable", got)
	}
	if got := x.iq("r1", `<iq type='set' id='r1'><query xmlns='jabber:iq:register'><username>newbie</username><password>newbie-secret</password></query></iq>`); !strings.Contains(got, "type='result'") {
		t.Fatalf("registration: %s", got)
	}
	// The stream goes on to authenticate with the new account.
	if got := x.scramAuth("SCRAM-SHA-512", "newbie", "newbie-secret", "n", nil); got != "success" {
		t.Fatalf("login on the registering stream: %s", got)
	}
	if j := x.bind("first"); j != "newbie@localhost/first" {
		t.Fatalf("bound %s", j)
	}
	rawLogin(t, srv, "newbie", "newbie-secret", "second")

	y, _ := dialTLS(t, srv, "register again", srv.TLSConfig())
	if got := iqErrorCondition(y.iq("r2", `<iq type='set' id='r2'><query xmlns='jabber:iq:register'><username>newbie</username><password>other-secret</password></query></iq>`)); got != "conflict" {
		t.Errorf("taken username: %s, want conflict", got)
	}
	// per_ip 2: that was the second registration attempt from 127.0.0.1; the third is refused.
	if got := iqErrorCondition(y.iq("r3", `<iq type='set' id='r3'><query xmlns='jabber:iq:register'><username>third</username><password>third-secret</password></query></iq>`)); got != "resource-constraint" {
		t.Errorf("third registration from one IP with per_ip 2: %s, want resource-constraint", got)
	}
	z, _ := dialTLS(t, srv, "third login", srv.TLSConfig())
	if got := z.scramAuth("SCRAM-SHA-256", "third", "third-secret", "n", nil); got != "not-authorized" {
		t.Errorf("the refused registration created the account anyway: %s", got)
	}
	// The first account still has its own password.
	rawLogin(t, srv, "newbie", "newbie-secret", "third")
}

// XEP-0077 3.3: an authenticated user changes the password. The old password then fails with every mechanism and
// the new one works; an empty password changes nothing (MUST), and nobody changes another user's password.
func TestRegisterPasswordChange(t *testing.T) {
	srv := Start(t, noThrottle)
	srv.AddUser("bob", "bob-secret")
	cases := []struct{ name, to string }{
		{"without to", ""},
		// The XEP's own example addresses the server: <iq type='set' to='shakespeare.lit' id='change1'>.
		{"to the server", " to='localhost'"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			user := fmt.Sprintf("alice%d", i)
			srv.AddUser(user, "first-password")
			x := rawLogin(t, srv, user, "first-password", "pw")
			got := x.iq("c1", `<iq type='set'`+c.to+` id='c1'><query xmlns='jabber:iq:register'><username>`+user+`</username><password>second-password</password></query></iq>`)
			if !strings.Contains(got, "type='result'") {
				t.Fatalf("password change: %s", got)
			}
			for _, m := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"} {
				sc := scramCase{mech: m, tlsMax: tls.VersionTLS13}
				if _, got := sc.login(t, srv, user, "first-password"); got != "not-authorized" {
					t.Errorf("%s with the old password: %s", m, got)
				}
				if _, got := sc.login(t, srv, user, "second-password"); got != "success" {
					t.Errorf("%s with the new password: %s", m, got)
				}
			}
		})
	}
	t.Run("refusals", func(t *testing.T) {
		srv.AddUser("carol", "carol-password")
		x := rawLogin(t, srv, "carol", "carol-password", "pw")
		if got := iqErrorCondition(x.iq("e1", `<iq type='set' id='e1'><query xmlns='jabber:iq:register'><username>carol</username><password/></query></iq>`)); got == "" {
			t.Errorf("empty password accepted")
		}
		if got := iqErrorCondition(x.iq("e2", `<iq type='set' id='e2'><query xmlns='jabber:iq:register'><username>carol</username><password>short</password></query></iq>`)); got != "not-acceptable" {
			t.Errorf("password below register.min_password_length: %s, want not-acceptable", got)
		}
		if got := iqErrorCondition(x.iq("e3", `<iq type='set' id='e3'><query xmlns='jabber:iq:register'><username>bob</username><password>carol-owns-bob</password></query></iq>`)); got == "" {
			t.Errorf("changed another user's password")
		}
		if got := iqErrorCondition(x.iq("e4", `<iq type='set' to='bob@localhost' id='e4'><query xmlns='jabber:iq:register'><username>bob</username><password>carol-owns-bob</password></query></iq>`)); got == "" {
			t.Errorf("changed another user's password by addressing the account")
		}
		rawLogin(t, srv, "carol", "carol-password", "still")
		rawLogin(t, srv, "bob", "bob-secret", "still")
	})
}

// XEP-0077 3.2: <remove/> deletes the account; every session of it ends with <not-authorized/>, the account can
// no longer log in, messages to it bounce, and its roster is gone (a new account of the same name starts empty).
// RFC 6121 4.5.2: the contacts of those sessions get unavailable presence when they end, whatever the reason.
func TestRegisterRemoveAccount(t *testing.T) {
	srv := Start(t, noThrottle)
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "")
	bob := Dial(t, srv, "bob", "bob-secret", "")
	goOnline(alice)
	goOnline(bob)
	subscribeApproved(alice, bob)
	subscribeApproved(bob, alice)
	bob.Expect(5*time.Second, "<presence", `from="`+alice.JID.String()+`"`)

	other := rawLogin(t, srv, "alice", "alice-secret", "other")
	x := rawLogin(t, srv, "alice", "alice-secret", "remover")
	x.send(`<presence/>`)
	bob.Expect(5*time.Second, "<presence", `from="alice@localhost/remover"`)
	x.send(`<iq type='set' id='unreg1'><query xmlns='jabber:iq:register'><remove/></query></iq>`)
	got := x.closed(5 * time.Second)
	if !strings.Contains(got, "id='unreg1'") || !strings.Contains(got, "type='result'") {
		t.Errorf("no result for the removal before the stream closed: %s", got)
	}
	if !strings.Contains(got, "<not-authorized") {
		t.Errorf("removing session not ended with <not-authorized/>: %s", got)
	}
	if got := other.closed(5 * time.Second); !strings.Contains(got, "<not-authorized") {
		t.Errorf("other session of the removed account not ended with <not-authorized/>: %s", got)
	}

	// bob was told each of alice's sessions came online, and must be told they ended (checked before the
	// later Expect calls, which skip what they do not match).
	want := map[string]bool{"alice@localhost/remover": true, alice.JID.String(): true}
	timeout := time.After(5 * time.Second)
collect:
	for len(want) > 0 {
		select {
		case s := <-bob.In:
			for full := range want {
				if strings.Contains(s, `type="unavailable"`) && strings.Contains(s, `from="`+full+`"`) {
					delete(want, full)
				}
			}
		case <-timeout:
			break collect
		}
	}
	var missing []string
	for full := range want {
		missing = append(missing, full)
	}
	if len(missing) > 0 {
		t.Errorf("bob (subscribed to alice) never got unavailable presence from %v after the account removal ended "+
			"those sessions: the contacts still see them online", missing)
	}

	y, _ := dialTLS(t, srv, "login removed", srv.TLSConfig())
	if got := y.scramAuth("SCRAM-SHA-256", "alice", "alice-secret", "n", nil); got != "not-authorized" {
		t.Errorf("login to the removed account: %s", got)
	}
	bob.Send(`<message to='alice@localhost' type='chat' id='gone1'><body>are you there?</body></message>`)
	bob.Expect(5*time.Second, `id="gone1"`, `type="error"`, "service-unavailable")

	srv.AddUser("alice", "new-alice-secret")
	z := rawLogin(t, srv, "alice", "new-alice-secret", "fresh")
	if r := z.iq("r", `<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>`); strings.Contains(r, "bob@localhost") {
		t.Errorf("the new account inherited the removed one's roster: %s", r)
	}

}

// XEP-0077 3.2: "the server SHOULD also cancel all existing presence subscriptions related to that entity". A
// contact who shared a subscription with the removed account learns of it (RFC 6121 3.2, 3.3) and its roster
// item no longer claims one; otherwise whoever registers the name next receives that contact's presence without
// ever having asked.
func TestRegisterRemoveCancelsSubscriptions(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "")
	bob := Dial(t, srv, "bob", "bob-secret", "")
	goOnline(alice)
	goOnline(bob)
	subscribeApproved(alice, bob)
	subscribeApproved(bob, alice)
	alice.Send(`<iq type='set' id='unreg1'><query xmlns='jabber:iq:register'><remove/></query></iq>`)
	time.Sleep(500 * time.Millisecond)

	// Someone else registers the free name.
	srv.AddUser("alice", "someone-else")
	mallory := Dial(t, srv, "alice", "someone-else", "")
	goOnline(mallory)
	bob.Send(`<presence><status>only for my subscribers</status></presence>`)
	mallory.ExpectNone(time.Second, "only for my subscribers")

	bob.Send(`<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>`)
	if r := bob.Expect(5*time.Second, `id="r"`); strings.Contains(r, `subscription="both"`) || strings.Contains(r, `subscription="from"`) {
		t.Errorf("bob's roster still shares a subscription with the removed account: %s", r)
	}
}

// RFC 6121 4.6: directed presence reaches its target, and when the session ends the target gets unavailable.
func TestDirectedPresence(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := Dial(t, srv, "bob", "bob-secret", "")
	goOnline(bob)

	t.Run("after initial presence", func(t *testing.T) {
		alice := Dial(t, srv, "alice", "alice-secret", "")
		goOnline(alice)
		alice.Send(`<presence to='` + bob.JID.String() + `'><status>just for bob</status></presence>`)
		bob.Expect(5*time.Second, "<presence", `from="`+alice.JID.String()+`"`, "just for bob")
		alice.S.Close()
		bob.Expect(5*time.Second, "<presence", `type="unavailable"`, `from="`+alice.JID.String()+`"`)
	})
	// RFC 3921 5.1.4 case 3, kept by RFC 6121 4.6: directed presence sent without initial presence is remembered
	// the same way, so the target learns when the session ends.
	t.Run("without initial presence", func(t *testing.T) {
		alice := Dial(t, srv, "alice", "alice-secret", "")
		alice.Send(`<presence to='` + bob.JID.String() + `'><status>invisible except to bob</status></presence>`)
		bob.Expect(5*time.Second, "<presence", `from="`+alice.JID.String()+`"`, "invisible except to bob")
		alice.S.Close()
		bob.Expect(5*time.Second, "<presence", `type="unavailable"`, `from="`+alice.JID.String()+`"`)
	})
	t.Run("directed unavailable first", func(t *testing.T) {
		alice := Dial(t, srv, "alice", "alice-secret", "")
		goOnline(alice)
		alice.Send(`<presence to='` + bob.JID.String() + `'/>`)
		bob.Expect(5*time.Second, "<presence", `from="`+alice.JID.String()+`"`)
		alice.Send(`<presence to='` + bob.JID.String() + `' type='unavailable'/>`)
		bob.Expect(5*time.Second, "<presence", `type="unavailable"`, `from="`+alice.JID.String()+`"`)
		alice.S.Close()
		bob.ExpectNone(time.Second, `from="`+alice.JID.String()+`"`)
	})
}

// RFC 6121 3.4: a "subscribed" sent before any request is a pre-approval; the contact's later request is
// approved without asking the user.
func TestSubscriptionPreApproval(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "")
	bob := Dial(t, srv, "bob", "bob-secret", "")
	goOnline(alice)
	goOnline(bob)

	alice.Send(`<presence to='bob@localhost' type='subscribed'/>`)
	alice.Expect(5*time.Second, "jabber:iq:roster", `jid="bob@localhost"`, `approved="true"`, `subscription="none"`)
	bob.ExpectNone(500*time.Millisecond, `type="subscribed"`)
	alice.Send(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	if r := alice.Expect(5*time.Second, `id="r1"`); !strings.Contains(r, `approved="true"`) {
		t.Fatalf("roster does not show the pre-approval: %s", r)
	}

	bob.Send(`<presence to='alice@localhost' type='subscribe'/>`)
	bob.Expect(5*time.Second, "<presence", `type="subscribed"`, `from="alice@localhost"`)
	bob.Expect(5*time.Second, "<presence", `from="`+alice.JID.String()+`"`)
	push := alice.Expect(5*time.Second, "jabber:iq:roster", `jid="bob@localhost"`, `subscription="from"`)
	if strings.Contains(push, "approved") {
		t.Errorf("approved flag kept after use: %s", push)
	}
	alice.ExpectNone(500*time.Millisecond, `type="subscribe"`)

	subscribeApproved(alice, bob)
	alice.Send(`<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>`)
	if r := alice.Expect(5*time.Second, `id="r2"`); !strings.Contains(r, `subscription="both"`) {
		t.Fatalf("roster after both directions: %s", r)
	}
}

// RFC 6121 4.2.2 and 4.3: on initial presence the server probes the contacts the user is subscribed to, so
// their current presence arrives without them sending anything.
func TestPresenceProbeOnLogin(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := Dial(t, srv, "bob", "bob-secret", "")
	goOnline(bob)
	bob.Send(`<presence><show>dnd</show><status>busy writing</status></presence>`)
	alice := Dial(t, srv, "alice", "alice-secret", "")
	goOnline(alice)
	subscribeApproved(alice, bob)
	alice.S.Close()
	time.Sleep(200 * time.Millisecond)

	again := Dial(t, srv, "alice", "alice-secret", "")
	again.Send(`<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>`)
	again.Expect(5*time.Second, `id="r"`)
	again.Send(`<presence/>`)
	got := again.Expect(5*time.Second, "<presence", `from="`+bob.JID.String()+`"`)
	if !strings.Contains(got, "busy writing") || !strings.Contains(got, "dnd") {
		t.Errorf("probe answered with %s, want bob's current presence", got)
	}
}

// RFC 6121 8.5.3.2.1: a message to a full JID with no such resource is delivered as if to the bare JID for
// chat and normal, dropped for headline, bounced for groupchat; an IQ is answered with service-unavailable.
func TestFullJIDWithoutResource(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "")
	bob := Dial(t, srv, "bob", "bob-secret", "")
	goOnline(alice)
	goOnline(bob)
	gone := "bob@localhost/gone"
	alice.Send(`<message to='` + gone + `' type='chat' id='m1'><body>chat to a gone resource</body></message>`)
	got := bob.Expect(5*time.Second, "chat to a gone resource")
	if !strings.Contains(got, `from="`+alice.JID.String()+`"`) {
		t.Errorf("rerouted message lost its sender: %s", got)
	}
	alice.Send(`<message to='` + gone + `' id='m2'><body>normal to a gone resource</body></message>`)
	bob.Expect(5*time.Second, "normal to a gone resource")
	alice.Send(`<message to='` + gone + `' type='headline' id='m3'><body>headline to a gone resource</body></message>`)
	bob.ExpectNone(500*time.Millisecond, "headline to a gone resource")
	alice.Send(`<message to='` + gone + `' type='groupchat' id='m4'><body>groupchat to a gone resource</body></message>`)
	alice.Expect(5*time.Second, `id="m4"`, `type="error"`, "service-unavailable")
	bob.ExpectNone(200*time.Millisecond, "groupchat to a gone resource")
	alice.Send(`<iq type='get' to='` + gone + `' id='i1'><ping xmlns='urn:xmpp:ping'/></iq>`)
	alice.Expect(5*time.Second, `id="i1"`, `type="error"`, "service-unavailable")
}

// RFC 6120 8.4 and RFC 6121 8.5.1: an IQ nobody handles, and any stanza to an account that does not exist, get
// service-unavailable (never a result on behalf of a non-existent account).
func TestServiceUnavailable(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	x := rawLogin(t, srv, "alice", "alice-secret", "su")
	cases := []struct{ name, iq string }{
		{"unknown namespace to the server", `<iq type='get' to='localhost' id='ID'><query xmlns='urn:example:nothing'/></iq>`},
		{"unknown namespace to the own account", `<iq type='get' id='ID'><query xmlns='urn:example:nothing'/></iq>`},
		{"unknown namespace to another account", `<iq type='get' to='bob@localhost' id='ID'><query xmlns='urn:example:nothing'/></iq>`},
		{"set of a get-only namespace", `<iq type='set' to='localhost' id='ID'><query xmlns='jabber:iq:version'/></iq>`},
		{"ping to a nonexistent account", `<iq type='get' to='nobody@localhost' id='ID'><ping xmlns='urn:xmpp:ping'/></iq>`},
		{"disco#info of a nonexistent account", `<iq type='get' to='nobody@localhost' id='ID'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`},
		{"iq to a resource of a nonexistent account", `<iq type='get' to='nobody@localhost/r' id='ID'><ping xmlns='urn:xmpp:ping'/></iq>`},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("su%d", i)
			got := x.iq(id, strings.Replace(c.iq, "'ID'", "'"+id+"'", 1))
			if cond := iqErrorCondition(got); cond != "service-unavailable" {
				t.Errorf("got %s, want a service-unavailable error", got)
			}
		})
	}
	t.Run("message to a nonexistent account", func(t *testing.T) {
		for i, to := range []string{"nobody@localhost", "nobody@localhost/r"} {
			id := fmt.Sprintf("msg%d", i)
			x.send(`<message to='` + to + `' type='chat' id='` + id + `'><body>hello?</body></message>`)
			got := x.waitFor(5*time.Second, "<message", "id='"+id+"'")
			if cond := iqErrorCondition(got); cond != "service-unavailable" {
				t.Errorf("message to %s: got %s, want a service-unavailable error", to, got)
			}
		}
	})
}

// RFC 6120 7.7.2.2 with c2s.resource_conflict kick_old (the default): binding a resource in use ends the older
// session with <conflict/> and the new one takes its place.
func TestResourceConflictKicksOldSession(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	old := rawLogin(t, srv, "alice", "alice-secret", "same")
	old.send(`<presence/>`)
	newer := rawLogin(t, srv, "alice", "alice-secret", "same")
	got := old.closed(5 * time.Second)
	if !strings.Contains(got, "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'") {
		t.Fatalf("old session not ended with a <conflict/> stream error: %s", got)
	}
	bob := Dial(t, srv, "bob", "bob-secret", "")
	bob.Send(`<message to='alice@localhost/same' type='chat'><body>to the newer session</body></message>`)
	newer.waitFor(5*time.Second, "<message", "to the newer session")
}

// With c2s.resource_conflict refuse the new bind fails with conflict and the old session is untouched.
func TestResourceConflictRefuse(t *testing.T) {
	srv := Start(t, "c2s:\n  resource_conflict: refuse\n")
	srv.AddUser("alice", "alice-secret")
	old := rawLogin(t, srv, "alice", "alice-secret", "same")
	x, _ := dialTLS(t, srv, "second", srv.TLSConfig())
	if got := x.scramAuth("SCRAM-SHA-256", "alice", "alice-secret", "n", nil); got != "success" {
		t.Fatal(got)
	}
	x.open()
	x.send(`<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>same</resource></bind></iq>`)
	if got := iqErrorCondition(x.expect("id='b2'")); got != "conflict" {
		t.Fatalf("second bind of a resource in use: %s, want conflict", got)
	}
	if got := old.iq("p", `<iq type='get' to='localhost' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`); !strings.Contains(got, "type='result'") {
		t.Fatalf("old session: %s", got)
	}
}

var delayStamp = regexp.MustCompile(`<delay xmlns='urn:xmpp:delay' from='localhost' stamp='([^']+)'`)

// XEP-0160: 20 messages to an offline account arrive at its next login in order, each exactly once, with a
// XEP-0203 delay; a later login gets none (the store was emptied).
func TestOfflineMessages(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := Dial(t, srv, "bob", "bob-secret", "")
	const n = 20
	before := time.Now().UTC().Add(-time.Second)
	for i := 0; i < n; i++ {
		bob.Send(fmt.Sprintf(`<message to='alice@localhost' type='chat' id='off%d'><body>offline %02d</body></message>`, i, i))
	}
	bob.ExpectNone(500*time.Millisecond, `type="error"`)

	x := rawLogin(t, srv, "alice", "alice-secret", "back")
	x.send(`<presence/>`)
	var last time.Time
	for i := 0; i < n; i++ {
		el := x.waitFor(10*time.Second, "<message")
		want := fmt.Sprintf("offline %02d", i)
		if !strings.Contains(el, "<body>"+want+"</body>") {
			t.Fatalf("message %d: %s, want body %q (order or loss)", i, el, want)
		}
		m := delayStamp.FindStringSubmatch(el)
		if m == nil {
			t.Fatalf("message %d has no <delay xmlns='urn:xmpp:delay' from='localhost' stamp=…/>: %s", i, el)
		}
		ts, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatalf("delay stamp %q is not a XEP-0082 date-time: %v", m[1], err)
		}
		if ts.Before(before) || ts.After(time.Now().Add(time.Second)) || ts.Before(last) {
			t.Errorf("delay stamp %s out of order or range", m[1])
		}
		last = ts
		if !strings.Contains(el, "from='"+bob.JID.String()+"'") {
			t.Errorf("stored message lost its sender: %s", el)
		}
	}
	// Exactly once: nothing more arrives.
	quiet := time.Now().Add(time.Second)
	for {
		el, err := x.next(time.Until(quiet))
		if err != nil {
			break
		}
		if strings.Contains(el, "<message") {
			t.Fatalf("extra message after the 20: %s", el)
		}
	}
	x.send(`</stream:stream>`)
	x.closed(5 * time.Second)

	y := rawLogin(t, srv, "alice", "alice-secret", "again")
	y.send(`<presence/>`)
	deadline := time.Now().Add(1500 * time.Millisecond)
	for {
		el, err := y.next(time.Until(deadline))
		if err != nil {
			break
		}
		if strings.Contains(el, "<message") {
			t.Fatalf("offline message delivered twice: %s", el)
		}
	}
}

var promLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? -?[0-9.eE+-]+$`)

// The metrics endpoint speaks the Prometheus text format and counts sessions and routed stanzas.
func TestMetricsEndpoint(t *testing.T) {
	srv := Start(t, "")
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	alice := Dial(t, srv, "alice", "alice-secret", "")
	bob := Dial(t, srv, "bob", "bob-secret", "")
	goOnline(bob)
	for i := 0; i < 3; i++ {
		alice.Send(`<message to='bob@localhost' type='chat'><body>counted</body></message>`)
		bob.Expect(5*time.Second, "counted")
	}
	resp, err := http.Get("http://" + srv.Addrs["metrics"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	t.Logf("GET /metrics: %s\n%s", resp.Header.Get("Content-Type"), body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	values := map[string]float64{}
	types := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		switch {
		case strings.HasPrefix(l, "# TYPE "):
			f := strings.Fields(l)
			if len(f) != 4 {
				t.Errorf("bad TYPE line %q", l)
				continue
			}
			types[f[2]] = f[3]
		case strings.HasPrefix(l, "# HELP "):
		case promLine.MatchString(l):
			i := strings.LastIndexByte(l, ' ')
			v, _ := strconv.ParseFloat(l[i+1:], 64)
			values[l[:i]] = v
		default:
			t.Errorf("not Prometheus text format: %q", l)
		}
	}
	if types["parley_sessions"] != "gauge" || values["parley_sessions"] != 2 {
		t.Errorf("parley_sessions: type %q value %v, want a gauge of 2", types["parley_sessions"], values["parley_sessions"])
	}
	if types["parley_routed_total"] != "counter" || values[`parley_routed_total{kind="message"}`] < 3 {
		t.Errorf("parley_routed_total: type %q, messages %v, want a counter of at least 3",
			types["parley_routed_total"], values[`parley_routed_total{kind="message"}`])
	}
	alice.S.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + srv.Addrs["metrics"] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "\nparley_sessions 1\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("parley_sessions did not drop to 1 after a logout:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
