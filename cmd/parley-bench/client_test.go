package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer is just enough of an XMPP server for the generator's own tests: PLAIN login, bind, the
// initial presence echo, and one-to-one message routing by bare JID. It is not a model of a real server.
type fakeServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[string]net.Conn // bare JID -> connection
}

func startFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{ln: ln, conns: map[string]net.Conn{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go fs.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return fs
}

func (fs *fakeServer) serve(c net.Conn) {
	defer c.Close()
	sr := newStreamReader(c, 512, 1<<16)
	header := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='s1' version='1.0'>"
	var user, jid string
	for {
		kind, el, err := sr.next()
		if err != nil {
			return
		}
		switch kind {
		case evOpen:
			feats := "<stream:features><mechanisms xmlns='" + nsSASL + "'><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
			if user != "" {
				feats = "<stream:features><bind xmlns='" + nsBind + "'/></stream:features>"
			}
			fmt.Fprint(c, header+feats)
			continue
		case evClose:
			fmt.Fprint(c, "</stream:stream>")
			return
		}
		switch string(elemName(el)) {
		case "auth":
			raw, _ := unb64(el)
			parts := bytes.Split(raw, []byte{0})
			if len(parts) != 3 || string(parts[2]) != "pw" {
				fmt.Fprint(c, "<failure xmlns='"+nsSASL+"'><not-authorized/></failure>")
				continue
			}
			user = string(parts[1])
			fmt.Fprint(c, "<success xmlns='"+nsSASL+"'/>")
			sr.reset(c)
		case "iq":
			res := string(childText(el, tagPat("resource")))
			jid = user + "@localhost/" + res
			fs.mu.Lock()
			fs.conns[user+"@localhost"] = c
			fs.mu.Unlock()
			fmt.Fprintf(c, "<iq type='result' id='%s'><bind xmlns='%s'><jid>%s</jid></bind></iq>", attr(el, "id"), nsBind, jid)
		case "presence":
			fmt.Fprintf(c, "<presence from='%s' to='%s'/>", jid, jid)
		case "message":
			fs.mu.Lock()
			to := fs.conns[string(attr(el, "to"))]
			fs.mu.Unlock()
			if to != nil {
				_, _ = to.Write(el)
			}
		}
	}
}

func runBench(t *testing.T, args ...string) (int, map[string]any, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "r.json")
	var out, errb bytes.Buffer
	code := run(append(args, "-json", path), &out, &errb)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no JSON result (exit %d): %v\n%s\n%s", code, err, out.String(), errb.String())
	}
	var r map[string]any
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return code, r, out.String() + errb.String()
}

func TestChatAgainstFakeServer(t *testing.T) {
	fs := startFakeServer(t)
	code, r, out := runBench(t, "chat", "-server", fs.ln.Addr().String(), "-mech", "PLAIN", "-password", "pw",
		"-users", "6", "-rate", "400", "-duration", "500ms", "-drain", "3s", "-login-rate", "0", "-settle", "0s")
	m := r["metrics"].(map[string]any)
	if code != 0 || m["sent"].(float64) != 200 || m["delivered"].(float64) != 200 || m["lost"].(float64) != 0 {
		t.Fatalf("exit %d, metrics %v\n%s", code, m, out)
	}
	lat := r["latency"].(map[string]any)["e2e"].(map[string]any)
	if lat["n"].(float64) != 200 {
		t.Fatalf("e2e latency samples = %v, want 200", lat["n"])
	}
	if !strings.Contains(out, "result: ok") {
		t.Fatalf("table lacks the result line:\n%s", out)
	}
}

func TestConnectAgainstFakeServer(t *testing.T) {
	fs := startFakeServer(t)
	code, r, out := runBench(t, "connect", "-server", fs.ln.Addr().String(), "-mech", "PLAIN", "-password", "pw",
		"-sessions", "10", "-rate", "0", "-hold", "100ms", "-settle", "0s", "-server-pid", fmt.Sprint(os.Getpid()))
	m := r["metrics"].(map[string]any)
	if code != 0 || m["sessions_ok"].(float64) != 10 {
		t.Fatalf("exit %d, metrics %v\n%s", code, m, out)
	}
	if _, ok := m["server_rss_per_session_kb"]; !ok {
		t.Fatalf("no memory figure with -server-pid:\n%s", out)
	}
}

func TestConnectFailuresExitNonZero(t *testing.T) {
	fs := startFakeServer(t)
	code, r, out := runBench(t, "connect", "-server", fs.ln.Addr().String(), "-mech", "PLAIN", "-password", "wrong",
		"-sessions", "3", "-rate", "0", "-hold", "0s", "-settle", "0s")
	if code == 0 {
		t.Fatalf("exit 0 with failed logins:\n%s", out)
	}
	if errs := r["errors"].(map[string]any); errs["auth: not-authorized"].(float64) != 3 {
		t.Fatalf("errors = %v", errs)
	}
}

func TestRefusesNonLoopbackTargets(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"connect", "-server", "192.0.2.1:5222"}, &out, &out); code != 2 {
		t.Fatalf("exit %d for a non-loopback server:\n%s", code, out.String())
	}
	if code := run([]string{"connect", "-sources", "10.0.0.1"}, &out, &out); code != 2 {
		t.Fatalf("exit %d for a non-loopback source:\n%s", code, out.String())
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(durationMs(float64(i) / 10)) // 0.1 .. 100 ms
	}
	s := h.summary()
	check := func(name string, got, want float64) {
		if got < want*0.98 || got > want*1.02 {
			t.Errorf("%s = %v ms, want about %v", name, got, want)
		}
	}
	check("p50", s.P50, 50)
	check("p90", s.P90, 90)
	check("p99", s.P99, 99)
	check("max", s.Max, 100)
	if s.N != 1000 {
		t.Errorf("n = %d", s.N)
	}
	for us := uint64(0); us < 1<<22; us = us*5/4 + 1 {
		if b := bucketOf(us); bucketLow(b) > us || bucketLow(b+1) <= us {
			t.Fatalf("value %d in bucket %d [%d, %d)", us, b, bucketLow(b), bucketLow(b+1))
		}
	}
}

func TestErrClass(t *testing.T) {
	cases := map[string]string{
		"dial: dial tcp 127.0.0.1:1: connect: connection refused": "dial: connection refused",
		"auth: not-authorized":                         "auth: not-authorized",
		"presence: stream: read tcp 1->2: i/o timeout": "presence: i/o timeout",
	}
	for in, want := range cases {
		if got := errClass(fmt.Errorf("%s", in)); got != want {
			t.Errorf("errClass(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestB64(t *testing.T) {
	el := []byte("<success xmlns='x'>" + base64.StdEncoding.EncodeToString([]byte("v=abc")) + "</success>")
	if got, err := unb64(el); err != nil || string(got) != "v=abc" {
		t.Fatalf("unb64 = %q, %v", got, err)
	}
	if got, _ := unb64([]byte("<success xmlns='x'/>")); got != nil {
		t.Fatalf("empty success = %q", got)
	}
}

func durationMs(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }
