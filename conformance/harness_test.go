// Package conformance holds black-box tests: each starts a real Parley binary on 127.0.0.1 with its own data
// directory and talks to it over TCP with client libraries — mellium as a client, raw XML for malformed input,
// and clients nobody here wrote (slixmpp, go-sendxmpp). Each test logs a readable transcript of what crossed the
// wire when run with -v or when it fails.
package conformance

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var parleyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parley-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	parleyBin = filepath.Join(dir, "parley")
	build := exec.Command("go", "build", "-o", parleyBin, "../cmd/parley")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building parley:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Server is a running Parley process.
type Server struct {
	t       *testing.T
	Domain  string
	Dir     string
	Addrs   map[string]string
	CertPEM []byte
	cmd     *exec.Cmd
	log     *syncBuffer
	config  string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs Parley with the default configuration plus extra YAML (appended verbatim) and waits until it listens.
func Start(t *testing.T, extraYAML string) *Server {
	t.Helper()
	dir := t.TempDir()
	s := &Server{t: t, Domain: "localhost", Dir: dir}
	s.config = filepath.Join(dir, "parley.yml")
	conf := fmt.Sprintf(`domain: localhost
data_dir: %s
log:
  level: debug
listen:
  c2s: 127.0.0.1:0
  c2s_tls: 127.0.0.1:0
  metrics: 127.0.0.1:0
  https: 127.0.0.1:0
  http: 127.0.0.1:0
%s`, dir, extraYAML)
	if err := os.WriteFile(s.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	t := s.t
	t.Helper()
	ready := filepath.Join(s.Dir, "ready.json")
	os.Remove(ready)
	s.log = &syncBuffer{}
	s.cmd = exec.Command(parleyBin, "serve", "-config", s.config, "-ready-file", ready)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(ready)
		if err == nil && len(b) > 0 {
			if err := json.Unmarshal(b, &s.Addrs); err != nil {
				t.Fatalf("ready file: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("parley did not become ready; log:\n%s", s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	pem, err := os.ReadFile(filepath.Join(s.Dir, "tls", "localhost.crt"))
	if err != nil {
		t.Fatal(err)
	}
	s.CertPEM = pem
}

// Stop ends the server with SIGTERM, and logs its output if the test failed.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	if s.t.Failed() {
		s.t.Logf("server log:\n%s", s.log.String())
	}
	s.cmd = nil
}

// Restart stops and starts the server on new ports with the same data.
func (s *Server) Restart() {
	s.Stop()
	s.start()
}

// Log returns the server's output so far.
func (s *Server) Log() string { return s.log.String() }

// AddUser creates an account with the CLI, as an operator would.
func (s *Server) AddUser(user, password string) {
	s.t.Helper()
	out, err := exec.Command(parleyBin, "user", "add", user+"@"+s.Domain, "-password", password, "-config", s.config).CombinedOutput()
	if err != nil {
		s.t.Fatalf("parley user add %s: %v\n%s", user, err, out)
	}
}

// TLSConfig trusts the server's self-signed certificate.
func (s *Server) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CertPEM)
	return &tls.Config{ServerName: s.Domain, RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// transcript wraps a connection and records both directions for the test log.
type transcript struct {
	net.Conn
	t    *testing.T
	name string
	mu   *sync.Mutex
	buf  *bytes.Buffer
}

func newTranscript(t *testing.T, name string, c net.Conn) *transcript {
	// c may be nil when the caller records stanzas itself.
	tr := &transcript{Conn: c, t: t, name: name, mu: &sync.Mutex{}, buf: &bytes.Buffer{}}
	t.Cleanup(func() {
		if testing.Verbose() || t.Failed() {
			t.Logf("transcript %s:\n%s", name, tr.String())
		}
	})
	return tr
}

func (tr *transcript) record(dir string, p []byte) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	fmt.Fprintf(tr.buf, "%s %s\n", dir, strings.TrimSpace(string(p)))
}

func (tr *transcript) Read(p []byte) (int, error) {
	n, err := tr.Conn.Read(p)
	if n > 0 {
		tr.record("S:", p[:n])
	}
	return n, err
}

func (tr *transcript) Write(p []byte) (int, error) {
	tr.record("C:", p)
	return tr.Conn.Write(p)
}

func (tr *transcript) String() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.buf.String()
}

// readUntil reads from r until the accumulated text contains want or the deadline passes.
func readUntil(t *testing.T, c net.Conn, want string, d time.Duration) string {
	t.Helper()
	var acc strings.Builder
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 4096)
	for !strings.Contains(acc.String(), want) {
		n, err := c.Read(buf)
		acc.Write(buf[:n])
		if err != nil {
			if strings.Contains(acc.String(), want) {
				break
			}
			t.Fatalf("waiting for %q: %v; got so far:\n%s", want, err, acc.String())
		}
	}
	return acc.String()
}

var _ = io.EOF
var _ = context.Background

// cut closes the TCP connection under c without a stream close or TLS close_notify: what a phone losing its
// network looks like to the server (eventually).
func cut(c net.Conn) {
	if tr, ok := c.(*transcript); ok {
		c = tr.Conn
	}
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	c.Close()
}

// Kill ends the server with SIGKILL: no shutdown, no flush, as in a crash or power loss of the process.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Start starts a stopped or killed server again on new ports with the same data.
func (s *Server) StartAgain() { s.start() }
