package conformance

// Clients nobody here wrote, as Debian ships them: slixmpp (python3-slixmpp, driven by peers/slix_client.py)
// and go-sendxmpp, each talking to a mellium client through a real Parley. Without PARLEY_REQUIRE_SERVICES a
// missing peer makes its test SKIP with the reason; with it (CI) the test fails.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// requirePeer skips (or, with PARLEY_REQUIRE_SERVICES set, fails) the test when a peer client is missing.
func requirePeer(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("PARLEY_REQUIRE_SERVICES") != "" {
		t.Fatalf("%s is required (PARLEY_REQUIRE_SERVICES is set) but unavailable: %v", what, err)
	}
	t.Skipf("%s unavailable: %v (install it, or set PARLEY_REQUIRE_SERVICES=1 to make this a failure)", what, err)
}

// debianPython is Debian's interpreter, which has python3-slixmpp; the python3 first on PATH may be another one.
const debianPython = "/usr/bin/python3"

var slixOnce struct {
	sync.Once
	err error
}

func requireSlixmpp(t *testing.T) {
	t.Helper()
	slixOnce.Do(func() {
		out, err := exec.Command(debianPython, "-c", "import slixmpp; print(slixmpp.__version__)").CombinedOutput()
		if err != nil {
			slixOnce.err = fmt.Errorf("%s -c 'import slixmpp': %v: %s", debianPython, err, strings.TrimSpace(string(out)))
		}
	})
	requirePeer(t, "python3-slixmpp", slixOnce.err)
}

// peer is a running peer client whose stdout lines are collected.
type peer struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	lines  chan string
	mu     sync.Mutex
	out    []string
	stderr *syncBuffer
	exited chan struct{}
	err    error
}

// startPeer runs cmd, logging every stdout and stderr line into the test log at the end (or on failure).
func startPeer(t *testing.T, name string, cmd *exec.Cmd) *peer {
	t.Helper()
	p := &peer{t: t, name: name, cmd: cmd, lines: make(chan string, 100), stderr: &syncBuffer{}, exited: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = p.stderr
	t.Logf("%s: %s", name, strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
		if testing.Verbose() || t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr:\n%s", name, p.Output(), name, p.stderr.String())
		}
	})
	return p
}

// Output returns the stdout lines so far.
func (p *peer) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.out, "\n")
}

// waitLine waits for a stdout line containing sub and returns it; it fails early if the peer exits first.
func (p *peer) waitLine(d time.Duration, sub string) string {
	p.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, sub) {
				return l
			}
		case <-p.exited:
			// Drain what was printed before the exit.
			for {
				select {
				case l := <-p.lines:
					if strings.Contains(l, sub) {
						return l
					}
					continue
				default:
				}
				break
			}
			p.t.Fatalf("%s exited (%v) before printing %q (its output is below)", p.name, p.err, sub)
		case <-timeout:
			p.t.Fatalf("%s printed no line with %q within %s (its output is below)", p.name, sub, d)
		}
	}
}

// wait waits for the peer to exit and fails unless it exited with status 0.
func (p *peer) wait(d time.Duration) {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		p.t.Fatalf("%s still running after %s (its output is below)", p.name, d)
	}
	if p.err != nil {
		p.t.Fatalf("%s failed: %v (its output is below)", p.name, p.err)
	}
}

// expectWhilePeer is Client.Expect that gives up as soon as the peer has exited.
func expectWhilePeer(c *Client, p *peer, d time.Duration, subs ...string) string {
	c.t.Helper()
	timeout := time.After(d)
	var skipped []string
	for {
		select {
		case s := <-c.In:
			ok := true
			for _, sub := range subs {
				ok = ok && strings.Contains(s, sub)
			}
			if ok {
				return s
			}
			skipped = append(skipped, s)
		case <-p.exited:
			c.t.Fatalf("%s exited (%v) before %s got a stanza with %q (its output is below)", p.name, p.err, c.JID, subs)
		case <-timeout:
			c.t.Fatalf("%s: no stanza with %q within %s; got instead:\n%s", c.JID, subs, d, strings.Join(skipped, "\n"))
		}
	}
}

var fromAttr = regexp.MustCompile(`from="([^"]+)"`)

// slixmppSession runs the slixmpp peer as alice against a mellium bob: log in, roster, subscribe (bob approves),
// a message each way. It returns the peer's output.
func slixmppSession(t *testing.T, mechs, extraYAML string) string {
	requireSlixmpp(t)
	srv := Start(t, extraYAML)
	srv.AddUser("alice", "alice-secret")
	srv.AddUser("bob", "bob-secret")
	bob := Dial(t, srv, "bob", "bob-secret", "mellium")
	bob.Send(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`)
	bob.Expect(5*time.Second, `id="r1"`, `type="result"`)
	bob.Send(`<presence/>`)
	bob.Expect(5*time.Second, "<presence", `from="`+bob.JID.String()+`"`)

	script, _ := filepath.Abs(filepath.Join("peers", "slix_client.py"))
	args := []string{script, "--jid", "alice@localhost", "--password", "alice-secret", "--port", port(t, srv.Addrs["c2s"]),
		"--ca", filepath.Join(srv.Dir, "tls", "localhost.crt"), "--peer", "bob@localhost",
		"--send", "hello from slixmpp", "--expect", "hello from mellium", "--timeout", "20"}
	if mechs != "" {
		args = append(args, "--mechs", mechs)
	}
	p := startPeer(t, "slixmpp", exec.Command(debianPython, args...))

	// bob gets the subscription request and approves it.
	expectWhilePeer(bob, p, 25*time.Second, "<presence", `type="subscribe"`, `from="alice@localhost"`)
	bob.Send(`<presence to='alice@localhost' type='subscribed'/>`)
	// alice's message, from her full JID; bob answers that JID.
	msg := expectWhilePeer(bob, p, 25*time.Second, "<message", "hello from slixmpp")
	m := fromAttr.FindStringSubmatch(msg)
	if m == nil || !strings.HasPrefix(m[1], "alice@localhost/") {
		t.Fatalf("message not from alice's full JID: %s", msg)
	}
	bob.Send(`<message to='` + m[1] + `' type='chat'><body>hello from mellium</body></message>`)
	p.wait(30 * time.Second)
	out := p.Output()
	for _, want := range []string{"OK auth ", "OK roster 0", "OK subscribed bob@localhost", "OK roster-item bob@localhost to",
		"SENT hello from slixmpp", "RECV hello from mellium", "DONE"} {
		if !strings.Contains(out, want) {
			t.Errorf("slixmpp did not print %q; stdout:\n%s", want, out)
		}
	}
	return out
}

func port(t *testing.T, addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("no port in %q", addr)
	}
	return addr[i+1:]
}

// slixmpp with the mechanisms it picks by itself. slixmpp 1.8.3 (Debian bookworm) knows only the tls-unique
// channel binding: it tries SCRAM-SHA-512-PLUS (if it has it), -256-PLUS and -1-PLUS with p=tls-unique (Parley
// offers tls-exporter and tls-server-end-point, XEP-0440), then the plain SCRAM variants with the "y" flag. That
// "y" follows -PLUS attempts refused only for their binding type on the same stream, so it is no downgrade and
// Parley accepts it (auth.Stream): slixmpp logs in with SCRAM, not PLAIN.
func TestSlixmppDefaultMechanism(t *testing.T) {
	out := slixmppSession(t, "", "")
	got := strings.TrimPrefix(firstLine(out, "OK auth "), "OK auth ")
	if !strings.HasPrefix(got, "SCRAM-SHA-") || strings.HasSuffix(got, "-PLUS") {
		t.Errorf("slixmpp logged in with %q, want a SCRAM mechanism without -PLUS", got)
	}
	t.Logf("slixmpp logged in with: %s", got)
}

// slixmpp restricted to a mechanism list, as a user would configure it. PLAIN alone logs in with PLAIN. A SCRAM
// hash forced together with its -PLUS variant (what "use SCRAM-SHA-256" means to slixmpp, which always tries
// the -PLUS variant it is allowed first) logs in with that SCRAM hash after the tls-unique refusal, also with
// auth.allow_plain: false, where PLAIN is not there to fall back on (issue 13, acceptance 2).
func TestSlixmppForcedMechanisms(t *testing.T) {
	for _, tc := range []struct{ mechs, want, yaml string }{
		{"PLAIN", "PLAIN", ""},
		{"SCRAM-SHA-1-PLUS,SCRAM-SHA-1,PLAIN", "SCRAM-SHA-1", ""},
		{"SCRAM-SHA-1-PLUS,SCRAM-SHA-1", "SCRAM-SHA-1", "auth:\n  allow_plain: false\n"},
		{"SCRAM-SHA-256-PLUS,SCRAM-SHA-256", "SCRAM-SHA-256", "auth:\n  allow_plain: false\n"},
	} {
		t.Run(tc.mechs, func(t *testing.T) {
			out := slixmppSession(t, tc.mechs, tc.yaml)
			got := strings.TrimPrefix(firstLine(out, "OK auth "), "OK auth ")
			if got != tc.want {
				t.Errorf("logged in with %q, want %s; stdout:\n%s", got, tc.want, out)
			}
		})
	}
}

func firstLine(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// requireGoSendxmpp skips or fails the test (see requirePeer) when go-sendxmpp is not installed.
func requireGoSendxmpp(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("go-sendxmpp")
	requirePeer(t, "go-sendxmpp", err)
	return bin
}

// goSendxmpp returns the go-sendxmpp command with a throw-away HOME (so no user configuration is read), the
// server's address and certificate verification off (the certificate is self-signed).
func goSendxmpp(t *testing.T, srv *Server, directTLS bool, args ...string) *exec.Cmd {
	t.Helper()
	bin := requireGoSendxmpp(t)
	addr := srv.Addrs["c2s"]
	base := []string{"--timeout", "10", "-n", "-j", addr}
	if directTLS {
		base = []string{"--timeout", "10", "-n", "-t", "-j", srv.Addrs["c2s_tls"]}
	}
	cmd := exec.Command(bin, append(base, args...)...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	return cmd
}

// go-sendxmpp sends a message that a mellium client receives, over STARTTLS (its default) and direct TLS.
// go-sendxmpp (via github.com/xmppo/go-xmpp) writes a newline after every element, <starttls/> included.
func TestGoSendxmppSends(t *testing.T) {
	for _, mode := range []struct {
		name   string
		direct bool
	}{{"starttls", false}, {"direct-tls", true}} {
		t.Run(mode.name, func(t *testing.T) {
			requireGoSendxmpp(t)
			srv := Start(t, "")
			srv.AddUser("carol", "carol-secret")
			srv.AddUser("bob", "bob-secret")
			bob := Dial(t, srv, "bob", "bob-secret", "mellium")
			bob.Send(`<presence/>`)
			body := "hello from go-sendxmpp over " + mode.name
			cmd := goSendxmpp(t, srv, mode.direct, "-u", "carol@localhost", "-p", "carol-secret", "bob@localhost")
			cmd.Stdin = strings.NewReader(body + "\n")
			p := startPeer(t, "go-sendxmpp", cmd)
			got := expectWhilePeer(bob, p, 20*time.Second, "<message", body)
			if !strings.Contains(got, `from="carol@localhost/`) {
				t.Fatalf("not from carol's full JID: %s", got)
			}
			p.wait(20 * time.Second)
		})
	}
}

// go-sendxmpp in listen mode (-l) receives a message a mellium client sends to its bare JID.
func TestGoSendxmppListens(t *testing.T) {
	for _, mode := range []struct {
		name   string
		direct bool
	}{{"direct-tls", true}, {"starttls", false}} {
		t.Run(mode.name, func(t *testing.T) {
			requireGoSendxmpp(t)
			srv := Start(t, "")
			srv.AddUser("carol", "carol-secret")
			srv.AddUser("bob", "bob-secret")
			p := startPeer(t, "go-sendxmpp -l", goSendxmpp(t, srv, mode.direct, "-l", "-u", "carol@localhost", "-p", "carol-secret"))
			// Wait until it has bound a resource; a message to the bare JID then reaches it, or waits in
			// offline storage until its initial presence.
			deadline := time.Now().Add(15 * time.Second)
			for !strings.Contains(srv.Log(), "jid=carol@localhost/") {
				select {
				case <-p.exited:
					t.Fatalf("go-sendxmpp -l exited (%v) before binding (its output is below)", p.err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("go-sendxmpp -l did not bind within 15s (its output is below)")
				}
				time.Sleep(50 * time.Millisecond)
			}
			bob := Dial(t, srv, "bob", "bob-secret", "mellium")
			bob.Send(`<message to='carol@localhost' type='chat'><body>hello listener over ` + mode.name + `</body></message>`)
			line := p.waitLine(15*time.Second, "hello listener over "+mode.name)
			if !strings.Contains(line, "bob@localhost") {
				t.Fatalf("go-sendxmpp printed %q, want the sender bob@localhost", line)
			}
		})
	}
}
