package c2s

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/storage"
	"parley.im/parley/xmpp/auth"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/router"
)

// memKV is a storage.KV in memory, for FAST tokens in tests.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (k *memKV) Value(_ context.Context, owner, key string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[owner+"\x00"+key]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return v, nil
}

func (k *memKV) PutValue(_ context.Context, owner, key string, v []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[owner+"\x00"+key] = append([]byte(nil), v...)
	return nil
}

func (k *memKV) DeleteValue(_ context.Context, owner, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, owner+"\x00"+key)
	return nil
}

func (k *memKV) Keys(context.Context, string, string) ([]string, error) { return nil, nil }

const loginPassword = "correct horse battery staple"

// loginServer is a c2s server with one account (alice) and FAST, served on loopback through ServeConn as a
// secure transport (as behind a TLS-terminating proxy), so that the figures are those of the negotiation and
// not of TLS.
func loginServer(tb testing.TB) (*Server, string) {
	tb.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	domain := jid.MustParse("example.net")
	reg := module.NewRegistry()
	r := router.New(domain, reg, nil, log)
	if err := reg.Register(nil, r, domain, log); err != nil {
		tb.Fatal(err)
	}
	r.Start()
	creds, err := auth.DeriveAll(loginPassword, auth.DefaultIterations)
	if err != nil {
		tb.Fatal(err)
	}
	lookup := func(_ context.Context, user string) ([]storage.ScramCredential, error) {
		if user != "alice" {
			return nil, storage.ErrNotFound
		}
		return creds, nil
	}
	a := auth.NewServer(auth.Config{Lookup: lookup, AllowPlain: true, Domain: "example.net"})
	srv, err := New(Config{AllowPlaintext: true, ConnRatePerIP: -1}, domain, nil, nil, r, reg, a, log)
	if err != nil {
		tb.Fatal(err)
	}
	tokens, err := auth.NewTokens(auth.TokensConfig{KV: &memKV{m: map[string][]byte{}}, Key: bytes.Repeat([]byte{7}, 32),
		Lookup: lookup, Domain: "example.net"})
	if err != nil {
		tb.Fatal(err)
	}
	srv.SetFASTTokens(tokens)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(nc, "127.0.0.1", true)
		}
	}()
	return srv, ln.Addr().String()
}

// loginClient drives one login and counts its round trips: each time it sends and then waits for an answer.
type loginClient struct {
	tb     testing.TB
	nc     net.Conn
	buf    []byte
	rt     int
	salted []byte // SCRAM's SaltedPassword, cached as real clients do
}

func (c *loginClient) send(s string) {
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.tb.Fatal(err)
	}
}

// await reads until the input holds want, counting one round trip, and returns the input up to it.
func (c *loginClient) await(want string) string {
	c.rt++
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	tmp := make([]byte, 8192)
	for {
		if i := strings.Index(string(c.buf), want); i >= 0 {
			out := string(c.buf[:i+len(want)])
			c.buf = c.buf[i+len(want):]
			return out
		}
		n, err := c.nc.Read(tmp)
		c.buf = append(c.buf, tmp[:n]...)
		if err != nil {
			c.tb.Fatalf("waiting for %q: %v; got %q", want, err, c.buf)
		}
	}
}

const loginHeader = `<?xml version='1.0'?><stream:stream to='example.net' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`

var challengeRe = regexp.MustCompile(`<challenge xmlns='[^']+'>([^<]+)</challenge>`)

// scram runs the SCRAM-SHA-256 client; open and resp wrap its messages for SASL or SASL2.
func (c *loginClient) scram(open func(string) string, resp func(string) string, done string) string {
	first := "n=alice,r=benchclientnonce0123456789"
	c.send(open(base64.StdEncoding.EncodeToString([]byte("n,," + first))))
	got := c.await("</challenge>")
	m := challengeRe.FindStringSubmatch(got)
	if m == nil {
		c.tb.Fatalf("no challenge: %s", got)
	}
	sf, _ := base64.StdEncoding.DecodeString(m[1])
	attrs := map[string]string{}
	for _, kv := range strings.Split(string(sf), ",") {
		k, v, _ := strings.Cut(kv, "=")
		attrs[k] = v
	}
	if c.salted == nil {
		salt, _ := base64.StdEncoding.DecodeString(attrs["s"])
		c.salted, _ = pbkdf2.Key(sha256.New, loginPassword, salt, auth.DefaultIterations, 32)
	}
	mac := func(k []byte, s string) []byte {
		h := hmac.New(sha256.New, k)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	ck := mac(c.salted, "Client Key")
	sk := sha256.Sum256(ck)
	noProof := "c=biws,r=" + attrs["r"]
	sig := mac(sk[:], first+","+string(sf)+","+noProof)
	for i := range ck {
		ck[i] ^= sig[i]
	}
	c.send(resp(base64.StdEncoding.EncodeToString([]byte(noProof + ",p=" + base64.StdEncoding.EncodeToString(ck)))))
	return c.await(done)
}

func (c *loginClient) dial(addr string) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		c.tb.Fatal(err)
	}
	c.nc, c.buf, c.rt = nc, c.buf[:0], 0
	c.send(loginHeader)
	c.await("</stream:features>")
}

func (c *loginClient) close() {
	c.send("</stream:stream>")
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, c.nc)
	c.nc.Close()
}

const benchUA = `<user-agent id='bench-device-0001'><software>bench</software></user-agent>`

var tokenAttrRe = regexp.MustCompile(`token='([^']+)'`)

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLogin is one whole login on loopback, client and server in this process, from the stream header to
// a bound resource: SCRAM-SHA-256 with SASL (RFC 6120: restart, bind IQ), SCRAM-SHA-256 with SASL2 and Bind 2
// inline, and a FAST token (HT-SHA-256-NONE) with SASL2 and Bind 2. It reports the round trips of one login
// (rt/login) and the process CPU per login (cpu-ns/login, both sides: the client's PBKDF2 is cached, as real
// clients cache SaltedPassword, so what remains is the protocol).
func BenchmarkLogin(b *testing.B) {
	_, addr := loginServer(b)
	run := func(b *testing.B, login func(c *loginClient)) {
		c := &loginClient{tb: b}
		login(c) // warm up: caches, token
		c.close()
		b.ReportAllocs()
		cpu0 := cpuTime()
		rt := 0
		for b.Loop() {
			login(c)
			rt = c.rt
			c.close()
		}
		b.ReportMetric(float64(rt), "rt/login")
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/login")
	}
	b.Run("SASL1-SCRAM-SHA-256", func(b *testing.B) {
		run(b, func(c *loginClient) {
			c.dial(addr)
			c.scram(func(s string) string {
				return `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>` + s + `</auth>`
			}, func(s string) string {
				return `<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + s + `</response>`
			}, "</success>")
			c.send(loginHeader)
			c.await("</stream:features>")
			c.send(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>bench</resource></bind></iq>`)
			c.await("</iq>")
		})
	})
	b.Run("SASL2-Bind2-SCRAM-SHA-256", func(b *testing.B) {
		run(b, func(c *loginClient) {
			c.dial(addr)
			c.scram(func(s string) string {
				return `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'><initial-response>` + s +
					`</initial-response>` + benchUA + `<bind xmlns='urn:xmpp:bind:0'><tag>bench</tag></bind></authenticate>`
			}, func(s string) string {
				return `<response xmlns='urn:xmpp:sasl:2'>` + s + `</response>`
			}, "</success>")
		})
	})
	var token string
	b.Run("SASL2-Bind2-FAST", func(b *testing.B) {
		run(b, func(c *loginClient) {
			if token == "" {
				c.dial(addr)
				out := c.scram(func(s string) string {
					return `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'><initial-response>` + s +
						`</initial-response>` + benchUA + `<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>`
				}, func(s string) string {
					return `<response xmlns='urn:xmpp:sasl:2'>` + s + `</response>`
				}, "</success>")
				token = tokenAttrRe.FindStringSubmatch(out)[1]
				c.close()
			}
			c.dial(addr)
			m := hmac.New(sha256.New, []byte(token))
			m.Write([]byte("Initiator"))
			ir := base64.StdEncoding.EncodeToString(append([]byte("alice\x00"), m.Sum(nil)...))
			c.send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><initial-response>` + ir +
				`</initial-response>` + benchUA + `<fast xmlns='urn:xmpp:fast:0'/><bind xmlns='urn:xmpp:bind:0'><tag>bench</tag></bind></authenticate>`)
			if out := c.await("</success>"); !strings.Contains(out, "<bound") {
				b.Fatalf("FAST login: %s", out)
			}
		})
	})
}

// The logins of BenchmarkLogin work and take the round trips docs/BENCHMARKS.md reports.
func TestLoginRoundTrips(t *testing.T) {
	_, addr := loginServer(t)
	c := &loginClient{tb: t}
	c.dial(addr)
	c.scram(func(s string) string {
		return `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>` + s + `</auth>`
	}, func(s string) string {
		return `<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + s + `</response>`
	}, "</success>")
	c.send(loginHeader)
	c.await("</stream:features>")
	c.send(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>bench</resource></bind></iq>`)
	if out := c.await("</iq>"); !strings.Contains(out, "alice@example.net/bench") || c.rt != 5 {
		t.Fatalf("SASL1 login: %d round trips, %s", c.rt, out)
	}
	c.close()

	c.dial(addr)
	out := c.scram(func(s string) string {
		return `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'><initial-response>` + s + `</initial-response>` + benchUA +
			`<bind xmlns='urn:xmpp:bind:0'><tag>bench</tag></bind><request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>`
	}, func(s string) string { return `<response xmlns='urn:xmpp:sasl:2'>` + s + `</response>` }, "</success>")
	if !strings.Contains(out, "<bound xmlns='urn:xmpp:bind:0'>") || !strings.Contains(out, "alice@example.net/bench.") || c.rt != 3 {
		t.Fatalf("SASL2 login: %d round trips, %s", c.rt, out)
	}
	token := tokenAttrRe.FindStringSubmatch(out)[1]
	c.close()

	c.dial(addr)
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("Initiator"))
	ir := base64.StdEncoding.EncodeToString(append([]byte("alice\x00"), m.Sum(nil)...))
	c.send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><initial-response>` + ir + `</initial-response>` + benchUA +
		`<fast xmlns='urn:xmpp:fast:0'/><bind xmlns='urn:xmpp:bind:0'><tag>bench</tag></bind></authenticate>`)
	if out := c.await("</success>"); !strings.Contains(out, "<bound") || c.rt != 2 {
		t.Fatalf("FAST login: %d round trips, %s", c.rt, out)
	}
	c.close()

	// A wrong token is refused like a wrong password.
	c.dial(addr)
	c.send(`<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><initial-response>` +
		base64.StdEncoding.EncodeToString(append([]byte("alice\x00"), make([]byte, 32)...)) + `</initial-response>` + benchUA + `</authenticate>`)
	if out := c.await("</failure>"); !strings.Contains(out, "<not-authorized") {
		t.Fatalf("wrong token: %s", out)
	}
	c.close()
}
