// Command parley-bench is an XMPP load generator that speaks only standard XMPP (RFC 6120/6121,
// XEP-0045, XEP-0077, XEP-0160), so the same run drives Parley, Prosody or ejabberd.
//
//	parley-bench connect|chat|muc|offline|register [flags]
//	parley-bench report -out DIR result.json...
//
// Its client is deliberately lean so that the generator is not the bottleneck: stanzas are written as
// preformatted bytes, the read side only cuts the stream into top-level elements and picks out the body
// of benchmark messages, and encoding/xml is used only for stream features during login. See README.md.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// options are the command-line flags of a scenario run.
type options struct {
	server, domain, prefix, password string
	sources                          string
	tls, tlsVerify                   bool
	mech                             string
	register                         bool
	registerWorkers                  int
	jsonPath                         string
	label                            string
	sweep                            bool
	as                               string
	serverPID                        int
	serverProcName                   string
	loginTimeout                     time.Duration
	loginRate                        float64
	first                            int
	warmup                           int
	settle                           time.Duration
	drain                            time.Duration
	verbose                          bool
	cpuProfile                       string

	// Scenario figures; each scenario reads its own.
	sessions   int
	rate       float64
	hold       time.Duration
	users      int
	duration   time.Duration
	occupants  int
	senders    int
	mucService string
	messages   int
	workers    int
}

const usage = `usage: parley-bench connect|chat|muc|offline|register [flags]
       parley-bench report -out DIR RESULT.json...
run "parley-bench SCENARIO -h" for the flags of a scenario`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	scenario, args := args[0], args[1:]
	if scenario == "report" {
		if err := reportCmd(args, stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "parley-bench report:", err)
			return 1
		}
		return 0
	}
	o := &options{}
	fs := flag.NewFlagSet("parley-bench "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.server, "server", "127.0.0.1:15222", "c2s address of the server under test")
	fs.StringVar(&o.domain, "domain", "localhost", "XMPP domain of the benchmark accounts")
	fs.StringVar(&o.prefix, "users-prefix", "bench", "account localparts are PREFIX0, PREFIX1, ...")
	fs.StringVar(&o.password, "password", "bench-password", "password of every benchmark account")
	fs.IntVar(&o.first, "first-user", 0, "index of the first account this run uses")
	fs.IntVar(&o.warmup, "warmup", 0, "connect: sessions (accounts after the measured ones) that log in before the memory baseline and stay, so that one-time costs are not counted per session")
	fs.StringVar(&o.sources, "sources", "", "comma-separated local addresses to bind, round robin (e.g. 127.0.0.2,127.0.0.3): more than one address's ephemeral ports")
	fs.BoolVar(&o.tls, "tls", false, "negotiate STARTTLS")
	fs.BoolVar(&o.tlsVerify, "tls-verify", false, "verify the server certificate (benchmark peers use self-signed ones)")
	fs.StringVar(&o.mech, "mech", "SCRAM-SHA-1", "SASL mechanism: PLAIN, SCRAM-SHA-1, SCRAM-SHA-256 (-PLUS variants with -tls)")
	fs.BoolVar(&o.register, "register", false, "create the accounts with XEP-0077 in-band registration first (existing accounts are fine)")
	fs.IntVar(&o.registerWorkers, "register-workers", 16, "parallel registrations")
	fs.StringVar(&o.jsonPath, "json", "", "also write the result as JSON to this file (- for stdout; the table then goes to stderr)")
	fs.StringVar(&o.as, "as", "", "report the result under this scenario name (e.g. connect-plain for a connect run without TLS)")
	fs.BoolVar(&o.sweep, "sweep", false, "chat: a step of a rate sweep (reported as scenario chat-sweep, one row per rate)")
	fs.StringVar(&o.label, "label", "", "name of the server under test, carried into the result (e.g. prosody)")
	fs.IntVar(&o.serverPID, "server-pid", 0, "pid of the server, for RSS and CPU from /proc (its descendants count too)")
	fs.StringVar(&o.serverProcName, "server-proc-name", "", "find the server pid by process name or command-line substring")
	fs.DurationVar(&o.loginTimeout, "login-timeout", 30*time.Second, "time allowed for one login, TCP connect to presence echo")
	fs.Float64Var(&o.loginRate, "login-rate", 200, "sessions/s when logging in the users of chat, muc and offline")
	fs.DurationVar(&o.settle, "settle", time.Second, "pause before reading the server's memory after a ramp, and before offline recipients log in")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "how long to wait for outstanding messages after sending stops; what has not arrived then is lost")
	fs.BoolVar(&o.verbose, "v", false, "log progress")
	fs.IntVar(&o.workers, "pacers", 4, "pacer goroutines that share the offered message rate")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the generator's own CPU profile to this file")
	switch scenario {
	case "connect":
		fs.IntVar(&o.sessions, "sessions", 500, "sessions to open")
		fs.Float64Var(&o.rate, "rate", 100, "new sessions per second during the ramp")
		fs.DurationVar(&o.hold, "hold", 10*time.Second, "how long to hold the sessions after the ramp")
	case "chat":
		fs.IntVar(&o.users, "users", 200, "online users, in pairs that message each other")
		fs.Float64Var(&o.rate, "rate", 2000, "offered messages per second, all users together (open loop)")
		fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send")
	case "muc":
		fs.IntVar(&o.occupants, "occupants", 20, "occupants of the room")
		fs.IntVar(&o.senders, "senders", 5, "occupants that send")
		fs.Float64Var(&o.rate, "rate", 50, "messages per second to the room, all senders together (open loop)")
		fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send")
		fs.StringVar(&o.mucService, "muc-service", "conference.localhost", "MUC service hosting the room")
	case "offline":
		fs.IntVar(&o.messages, "messages", 200, "messages to send to offline users")
		fs.IntVar(&o.users, "users", 20, "offline recipients")
		fs.IntVar(&o.senders, "senders", 2, "online senders")
		fs.Float64Var(&o.rate, "rate", 500, "offered messages per second while storing (open loop)")
	case "register":
		fs.IntVar(&o.users, "users", 200, "accounts to create")
	default:
		fmt.Fprintln(stderr, usage)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("module", "bench")

	c, err := o.client()
	if err != nil {
		fmt.Fprintln(stderr, "parley-bench:", err)
		return 2
	}
	if lim, err := raiseNoFile(); err != nil {
		log.Warn("raise RLIMIT_NOFILE", "limit", lim, "err", err)
	} else {
		log.Info("open files", "limit", lim)
	}
	srv, err := findServer(o.serverPID, o.serverProcName)
	if err != nil {
		fmt.Fprintln(stderr, "parley-bench:", err)
		return 2
	}
	if srv.pid == 0 {
		log.Warn("no -server-pid or -server-proc-name: server memory and CPU are not reported")
	}

	if o.register || scenario == "register" {
		n := o.accounts(scenario)
		t0 := time.Now()
		failed, err := registerAll(c, o.first, n, o.registerWorkers)
		log.Info("registered", "accounts", n, "failed", failed, "took", time.Since(t0).Round(time.Millisecond))
		if err != nil {
			fmt.Fprintf(stderr, "parley-bench: registration: %d of %d failed (stops after %d), first: %v\n", failed, n, maxRegisterFailures, err)
			return 1
		}
		if scenario == "register" {
			fmt.Fprintf(stdout, "registered %d accounts (%s%d..%s%d@%s) in %s\n", n, o.prefix, o.first, o.prefix,
				o.first+n-1, o.domain, time.Since(t0).Round(time.Millisecond))
			return 0
		}
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "parley-bench: -cpuprofile:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	r := &result{Scenario: scenario, Label: o.label, Server: o.server, Started: time.Now(), Params: o.params(scenario)}
	if o.sweep && scenario == "chat" {
		r.Scenario = "chat-sweep"
	}
	if o.as != "" {
		r.Scenario = o.as
	}
	switch scenario {
	case "connect":
		runConnect(o, c, srv, r, log)
	case "chat":
		runChat(o, c, srv, r, log)
	case "muc":
		runMUC(o, c, srv, r, log)
	case "offline":
		runOffline(o, c, srv, r, log)
	}

	table := stdout
	if o.jsonPath == "-" {
		table = stderr
	}
	r.writeTable(table)
	if o.jsonPath != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		b = append(b, '\n')
		if o.jsonPath == "-" {
			_, _ = stdout.Write(b)
		} else if err := os.WriteFile(o.jsonPath, b, 0o644); err != nil {
			fmt.Fprintln(stderr, "parley-bench:", err)
			return 1
		}
	}
	if r.Failed {
		return 1
	}
	return 0
}

// client builds the shared login settings from the flags.
func (o *options) client() (*client, error) {
	mech, ok := mechanisms[strings.ToUpper(o.mech)]
	if !ok {
		return nil, fmt.Errorf("-mech %q: not one of PLAIN, SCRAM-SHA-1, SCRAM-SHA-256 (and -PLUS)", o.mech)
	}
	if strings.HasSuffix(mech.Name, "-PLUS") && !o.tls {
		return nil, fmt.Errorf("-mech %s needs -tls", mech.Name)
	}
	c := &client{
		server: o.server, domain: o.domain, prefix: o.prefix, password: o.password,
		tls: o.tls, tlsVerify: o.tlsVerify, mech: mech, loginTimeout: o.loginTimeout,
		resource: "pb", readBuf: 4096, maxStanza: 1 << 20,
	}
	if o.sources != "" {
		for _, s := range strings.Split(o.sources, ",") {
			ip := net.ParseIP(strings.TrimSpace(s))
			if ip == nil {
				return nil, fmt.Errorf("-sources: %q is not an IP address", s)
			}
			if !ip.IsLoopback() {
				// The benchmark only ever loads servers on this machine.
				return nil, fmt.Errorf("-sources: %s is not a loopback address", ip)
			}
			c.sources = append(c.sources, ip)
		}
	}
	host, _, err := net.SplitHostPort(o.server)
	if err != nil {
		return nil, fmt.Errorf("-server: %w", err)
	}
	if ip := net.ParseIP(host); (ip == nil && host != "localhost") || (ip != nil && !ip.IsLoopback()) {
		return nil, fmt.Errorf("-server %s: only loopback servers are benchmarked", o.server)
	}
	return c, nil
}

// accounts is how many accounts (from -first-user on) a scenario logs in.
func (o *options) accounts(scenario string) int {
	switch scenario {
	case "connect":
		return o.sessions
	case "muc":
		return o.occupants
	case "offline":
		return o.senders + o.users
	default:
		return o.users
	}
}

// params are the figures that define a run, carried into the result.
func (o *options) params(scenario string) map[string]any {
	p := map[string]any{
		"tls": o.tls, "mech": strings.ToUpper(o.mech), "sources": max(1, len(strings.Split(o.sources, ","))),
		"go_procs": runtime.GOMAXPROCS(0), "cpus": runtime.NumCPU(),
	}
	switch scenario {
	case "connect":
		p["sessions"], p["rate"], p["hold_s"] = o.sessions, o.rate, o.hold.Seconds()
	case "chat":
		p["users"], p["rate"], p["duration_s"], p["drain_s"] = o.users, o.rate, o.duration.Seconds(), o.drain.Seconds()
	case "muc":
		p["occupants"], p["senders"], p["rate"], p["duration_s"] = o.occupants, o.senders, o.rate, o.duration.Seconds()
		p["muc_service"] = o.mucService
	case "offline":
		p["messages"], p["users"], p["senders"], p["rate"] = o.messages, o.users, o.senders, o.rate
	}
	return p
}

// runID tells this run's messages apart from leftovers of earlier runs (offline queues, late deliveries).
func runID() string { return strconv.FormatUint(rand.Uint64()&0xffffffff, 36) }
