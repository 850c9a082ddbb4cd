package c2s

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Config configures the client listener. The zero value of each field means its documented default.
type Config struct {
	// AllowPlaintext lets clients authenticate and chat without TLS. Default false: STARTTLS is required. Turn it
	// on only for tests or behind a TLS-terminating proxy on loopback; PLAIN is never offered without TLS.
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// MaxStanza is the largest top-level element accepted, in bytes. Default 262144 (256 KiB).
	MaxStanza int `yaml:"max_stanza"`
	// NegotiationTimeout closes a connection that has not bound a resource within this time. Default 30s.
	NegotiationTimeout time.Duration `yaml:"negotiation_timeout"`
	// PingInterval is the idle time after which the server pings the client (XEP-0199). Default 4m.
	PingInterval time.Duration `yaml:"ping_interval"`
	// PingTimeout is how long the server waits for any traffic after its ping before it closes. Default 60s.
	PingTimeout time.Duration `yaml:"ping_timeout"`
	// WriteTimeout bounds one write to the socket. Default 30s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MaxQueue bounds the bytes queued for one session; a session whose client does not read falls behind and
	// is closed with resource-constraint past it. Default 4 MiB.
	MaxQueue int `yaml:"max_queue"`
	// ConnRatePerIP is how many new connections per second one IP address may open, sustained; ConnBurstPerIP
	// is how many it may open at once after a quiet period (a token bucket per address). Beyond them a
	// connection is refused (policy-violation). Defaults 20 and 100; a negative rate turns the limit off. A rate
	// rather than a count, because many users may share one address behind a NAT.
	ConnRatePerIP  float64 `yaml:"conn_rate_per_ip"`
	ConnBurstPerIP int     `yaml:"conn_burst_per_ip"`
	// MaxConnsPerIP caps concurrent connections from one IP address, for operators who know their users do
	// not share addresses. Default 0: no cap (negative too). A cap refuses the users behind a NAT past it.
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
	// RateBytes is the sustained bytes per second one session may send; reading pauses beyond it (Prosody-style
	// throttling rather than disconnection). Default 1048576; negative means unlimited.
	RateBytes int `yaml:"rate_bytes"`
	// Failed-login throttling (see authThrottle): failures are counted per (account, source address) and per
	// source address (an IPv6 address by its /64), each forgotten AuthFailureWindow after its last failure.
	//
	// AuthFailuresPerAccount is how many failures one account may have from one address before that pair's
	// further attempts are delayed: AuthDelay, doubling per failure, at most AuthMaxDelay. Past AuthRefuseAfter
	// failures the pair's attempts are refused with temporary-auth-failure, for that account from that address
	// only. Defaults 5, 1s, 10s and 20. A delay never exceeds half of NegotiationTimeout, so that a delayed
	// client still has time to finish.
	//
	// AuthFailuresPerIP is how many failures one address may have, for any accounts, before every login from it
	// is delayed a little (failing or not), growing to AuthIPMaxDelay at twice the count; it never refuses,
	// because many users may share the address. Defaults 20 and 1s.
	AuthFailuresPerIP      int           `yaml:"auth_failures_per_ip"`
	AuthFailuresPerAccount int           `yaml:"auth_failures_per_account"`
	AuthRefuseAfter        int           `yaml:"auth_refuse_after"`
	AuthDelay              time.Duration `yaml:"auth_delay"`
	AuthMaxDelay           time.Duration `yaml:"auth_max_delay"`
	AuthIPMaxDelay         time.Duration `yaml:"auth_ip_max_delay"`
	AuthFailureWindow      time.Duration `yaml:"auth_failure_window"`
	// FASTTokenExpiry is the lifetime of a FAST token (XEP-0484), with which a client logs in again without
	// its password. Default 336h (14 days); negative turns FAST off.
	FASTTokenExpiry time.Duration `yaml:"fast_token_expiry"`
	// ResourceConflict is the policy when a client binds a resource already in use: "kick_old" (default: the
	// older session gets a conflict stream error, as Prosody and ejabberd do) or "refuse" (the new bind fails
	// with conflict).
	ResourceConflict string `yaml:"resource_conflict"`
	// ResumeTimeout is how long a session with XEP-0198 resumption waits for its client after the connection
	// broke; then its unacknowledged messages go to another resource or offline storage. Default 5m.
	ResumeTimeout time.Duration `yaml:"resume_timeout"`
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxStanza, 256<<10)
	defDur(&c.NegotiationTimeout, 30*time.Second)
	defDur(&c.PingInterval, 4*time.Minute)
	defDur(&c.PingTimeout, 60*time.Second)
	defDur(&c.WriteTimeout, 30*time.Second)
	def(&c.MaxQueue, 4<<20)
	if c.ConnRatePerIP == 0 {
		c.ConnRatePerIP = 20
	}
	def(&c.ConnBurstPerIP, 100)
	def(&c.RateBytes, 1<<20)
	def(&c.AuthFailuresPerIP, 20)
	def(&c.AuthFailuresPerAccount, 5)
	def(&c.AuthRefuseAfter, 20)
	defDur(&c.AuthDelay, time.Second)
	defDur(&c.AuthMaxDelay, 10*time.Second)
	defDur(&c.AuthIPMaxDelay, time.Second)
	defDur(&c.AuthFailureWindow, 15*time.Minute)
	defDur(&c.ResumeTimeout, 5*time.Minute)
	defDur(&c.FASTTokenExpiry, 14*24*time.Hour)
	if c.ResourceConflict == "" {
		c.ResourceConflict = "kick_old"
	}
}

// Validate checks the configuration, naming the offending key.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if c.MaxStanza < 10000 {
		errs = append(errs, fmt.Errorf("c2s.max_stanza: %d is below the 10000 bytes RFC 6120 13.12 requires", c.MaxStanza))
	}
	if c.ResourceConflict != "kick_old" && c.ResourceConflict != "refuse" {
		errs = append(errs, fmt.Errorf("c2s.resource_conflict: %q is not kick_old or refuse", c.ResourceConflict))
	}
	if c.MaxQueue < c.MaxStanza {
		errs = append(errs, fmt.Errorf("c2s.max_queue: %d is smaller than c2s.max_stanza", c.MaxQueue))
	}
	if math.IsNaN(c.ConnRatePerIP) || math.IsInf(c.ConnRatePerIP, 0) {
		errs = append(errs, fmt.Errorf("c2s.conn_rate_per_ip: %v is not a number of connections per second", c.ConnRatePerIP))
	}
	if c.ConnBurstPerIP < 0 {
		errs = append(errs, fmt.Errorf("c2s.conn_burst_per_ip: %d is negative; use c2s.conn_rate_per_ip: -1 to turn the limit off", c.ConnBurstPerIP))
	}
	if c.AuthRefuseAfter > 0 && c.AuthFailuresPerAccount > 0 && c.AuthRefuseAfter < c.AuthFailuresPerAccount {
		errs = append(errs, fmt.Errorf("c2s.auth_refuse_after: %d is below c2s.auth_failures_per_account (%d): attempts would be refused before they are delayed", c.AuthRefuseAfter, c.AuthFailuresPerAccount))
	}
	for name, d := range map[string]time.Duration{"auth_delay": c.AuthDelay, "auth_max_delay": c.AuthMaxDelay, "auth_ip_max_delay": c.AuthIPMaxDelay, "negotiation_timeout": c.NegotiationTimeout, "ping_interval": c.PingInterval,
		"ping_timeout": c.PingTimeout, "write_timeout": c.WriteTimeout, "auth_failure_window": c.AuthFailureWindow, "resume_timeout": c.ResumeTimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("c2s.%s: negative duration", name))
		}
	}
	return errors.Join(errs...)
}
