// Package c2s is Parley's client-to-server listener (RFC 6120): stream negotiation with STARTTLS or direct TLS
// (XEP-0368), SASL through package auth, resource binding, and then the stanza loop, which reads only each
// stanza's envelope with package stream and hands the stanza to the router.
//
// Each connection has one read goroutine, parked while its client is idle. Writes go through a bounded
// per-session queue drained by a writer goroutine that exists only while there is something to write; the
// queue, the parking and the socket I/O are package transport's, shared with the other kinds of stream.
package c2s

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/auth"
	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/router"
)

// Server accepts client connections for one domain.
type Server struct {
	cfg      Config
	domain   jid.JID
	tls      *tls.Config
	leafDER  []byte
	router   *router.Router
	reg      *module.Registry
	auth     *auth.Server
	log      *slog.Logger
	features []byte // extra stream features after authentication, rendered once

	connRate   *connRate
	conns      connCounter
	throttle   *authThrottle
	nextID     atomic.Uint64
	Stats      Stats
	mu         sync.Mutex
	live       map[*conn]struct{}
	registerOn bool
	carbonsOn  bool         // XEP-0280 is served: Bind 2 may enable it inline
	fast       *auth.Tokens // FAST (XEP-0484); nil: off
	closing    atomic.Bool  // Shutdown has begun: no new connections

	resumeMu sync.Mutex
	resumes  map[string]*session // XEP-0198 resumption ids of live and hibernating sessions
}

func (s *Server) keepResumable(id string, sess *session) {
	s.resumeMu.Lock()
	s.resumes[id] = sess
	s.resumeMu.Unlock()
}

func (s *Server) resumableSession(id string) *session {
	s.resumeMu.Lock()
	defer s.resumeMu.Unlock()
	return s.resumes[id]
}

func (s *Server) forgetResumable(id string, sess *session) {
	s.resumeMu.Lock()
	if s.resumes[id] == sess {
		delete(s.resumes, id)
	}
	s.resumeMu.Unlock()
}

// Stats are the listener's counters for the metrics endpoint.
type Stats struct {
	Connections   atomic.Int64  // open connections
	Accepted      atomic.Uint64 // connections accepted
	Refused       atomic.Uint64 // connections refused by the per-address limits
	AuthSuccesses atomic.Uint64
	AuthFailures  atomic.Uint64
	StreamErrors  atomic.Uint64
	StanzasIn     atomic.Uint64
	BytesIn       atomic.Uint64
}

// New returns a listener. tlsConfig may be nil only when cfg.AllowPlaintext is set; leafDER is the server
// certificate used for tls-server-end-point channel binding.
func New(cfg Config, domain jid.JID, tlsConfig *tls.Config, leafDER []byte, r *router.Router, reg *module.Registry,
	a *auth.Server, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if tlsConfig == nil && !cfg.AllowPlaintext {
		return nil, errors.New("c2s: a TLS configuration is required unless plaintext is allowed")
	}
	if tlsConfig != nil {
		tlsConfig = tlsConfig.Clone()
		if tlsConfig.MinVersion < tls.VersionTLS12 {
			tlsConfig.MinVersion = tls.VersionTLS12
		}
	}
	s := &Server{
		cfg: cfg, domain: domain, tls: tlsConfig, leafDER: leafDER, router: r, reg: reg, auth: a, log: log,
		connRate: newConnRate(cfg.ConnRatePerIP, cfg.ConnBurstPerIP),
		conns:    connCounter{limit: cfg.MaxConnsPerIP, m: make(map[string]int)},
		throttle: newAuthThrottle(cfg),
		live:     make(map[*conn]struct{}),
		resumes:  make(map[string]*session),
	}
	for _, f := range reg.StreamFeatures() {
		s.features = append(s.features, f...)
	}
	s.registerOn = reg.IQHandler(module.PreAuth, "get", nsRegister, "query") != nil
	s.carbonsOn = reg.IQHandler(module.Account, "set", nsCarbons, "enable") != nil
	return s, nil
}

// Serve accepts connections on ln until it is closed. With directTLS the TLS handshake happens first
// (XEP-0368); otherwise the client negotiates STARTTLS.
func (s *Server) Serve(ln net.Listener, directTLS bool) error {
	if directTLS && s.tls == nil {
		return errors.New("c2s: direct TLS needs a TLS configuration")
	}
	var tempDelay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if tempDelay == 0 {
					tempDelay = 5 * time.Millisecond
				} else if tempDelay *= 2; tempDelay > time.Second {
					tempDelay = time.Second
				}
				s.log.Warn("accept failed; retrying", "err", err, "delay", tempDelay)
				time.Sleep(tempDelay)
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// EMFILE and friends: back off instead of spinning.
			s.log.Error("accept failed", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		tempDelay = 0
		ip := hostOf(nc.RemoteAddr())
		if why := s.admit(ip); why != "" {
			if directTLS {
				nc.Close() // no stream error in plaintext on a TLS port: the client could not read it
			} else {
				go refuse(nc, s.domain.String(), "policy-violation", why)
			}
			continue
		}
		s.Stats.Accepted.Add(1)
		c := s.newConn(nc, ip, directTLS)
		go c.serve()
	}
}

// ServeConn serves one client connection that arrived another way than Serve's listeners: a WebSocket
// (RFC 7395) adapted to a byte stream. secure says the transport is already encrypted (wss, or a trusted
// TLS-terminating proxy): the stream then offers no STARTTLS and allows PLAIN. It returns when the connection
// ends. Per-IP connection limits apply as on the TCP listeners.
func (s *Server) ServeConn(nc net.Conn, ip string, secure bool) {
	if s.closing.Load() {
		// The HTTP listeners close after Shutdown: a session that started now would miss it.
		refuse(nc, s.domain.String(), "system-shutdown", "")
		return
	}
	if why := s.admit(ip); why != "" {
		refuse(nc, s.domain.String(), "policy-violation", why)
		return
	}
	s.Stats.Accepted.Add(1)
	c := s.newConn(nc, ip, false)
	c.external = secure
	c.noSTARTTLS = true // a WebSocket cannot switch to TLS mid-stream
	c.serve()
}

// admit applies the per-address limits to a new connection: the rate of new connections, then the cap on
// concurrent ones. It returns "" when the connection may go on (it then holds a place under the cap, given back
// by forget), or the text of the policy-violation it is refused with.
func (s *Server) admit(ip string) string { return s.admitAt(ip, time.Now()) }

func (s *Server) admitAt(ip string, now time.Time) string {
	if ok, warn := s.connRate.allow(addrKey(ip), now); !ok {
		s.Stats.Refused.Add(1)
		if warn {
			s.log.Warn("connection rate per ip exceeded; refusing until it slows down", "ip", ip,
				"rate", s.cfg.ConnRatePerIP, "burst", s.cfg.ConnBurstPerIP)
		}
		return "too many new connections from your address; try again in a few seconds"
	}
	if !s.conns.acquire(ip) {
		s.Stats.Refused.Add(1)
		s.log.Warn("connection limit per ip reached; refusing", "ip", ip, "limit", s.cfg.MaxConnsPerIP)
		return "too many connections from your address"
	}
	return ""
}

func (s *Server) newConn(nc net.Conn, ip string, directTLS bool) *conn {
	id := "c" + strconv.FormatUint(s.nextID.Add(1), 10)
	c := &conn{srv: s, ip: ip, ipKey: addrKey(ip), id: id, directTLS: directTLS, log: s.log.With("conn", id)}
	c.nc = c.out.Init(nc, s.cfg.MaxQueue, s.cfg.WriteTimeout) // raw socket I/O for TCP (package sock)
	c.out.OnFailed = func(err error) { c.log.Debug("write failed", "err", err) }
	c.out.OnClose = c.wakeClosed
	if r := s.cfg.RateBytes; r > 0 {
		// c2s.rate_bytes: what a session may send per second, with a burst of a second's worth or one
		// largest stanza, whichever is more.
		c.rate = bucket{rate: float64(r), burst: float64(max(r, s.cfg.MaxStanza))}
	}
	s.mu.Lock()
	s.live[c] = struct{}{}
	s.mu.Unlock()
	return c
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.live, c)
	s.mu.Unlock()
	s.conns.release(c.ip)
}

// Shutdown closes every connection with system-shutdown and waits up to the context's deadline for their read
// loops to end (each ends by unbinding and running its Closed hooks). Then it ends the sessions that hibernate
// waiting for a XEP-0198 resumption, as their resume timeout would: what they hold unacknowledged was
// acknowledged to its senders, so it goes to offline storage now, while the store is open, rather than
// surviving the restart only in the archive (or nowhere, for an account without one). The caller closes the
// store after Shutdown returns.
func (s *Server) Shutdown(ctx context.Context) {
	s.closing.Store(true)
	s.closeLive(ctx)
	s.endHibernating()
}

// closeLive closes every connection and waits for them to end.
func (s *Server) closeLive(ctx context.Context) {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.live))
	for c := range s.live {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.closeStream("system-shutdown", "")
	}
	for {
		s.mu.Lock()
		n := len(s.live)
		s.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// endHibernating terminates every session that has no connection. It runs after the live connections ended,
// so that what the hibernating sessions route again finds no session of the recipient that is ending too: the
// router hands it to the Undeliverable stage (offline storage). Each terminate writes synchronously (its
// context carries no Durability); a few run at once so that the store can commit them in groups.
func (s *Server) endHibernating() {
	s.resumeMu.Lock()
	all := make([]*session, 0, len(s.resumes))
	for _, sess := range s.resumes {
		all = append(all, sess)
	}
	s.resumeMu.Unlock()
	var idle []*session
	for _, sess := range all {
		if sess.Hibernating() { // session.mu, taken with resumeMu released (a leaf, LOCKS.md)
			idle = append(idle, sess)
		}
	}
	if len(idle) == 0 {
		return
	}
	// Out of the router first: a message one of them routes again must not land in another of them (the
	// account's other hibernating resource), which may have ended meanwhile and would refuse it (lost).
	for _, sess := range idle {
		s.router.Unbind(sess)
	}
	work := make(chan *session)
	var wg sync.WaitGroup
	for range min(len(idle), 8) {
		wg.Go(func() {
			for sess := range work {
				sess.terminate()
			}
		})
	}
	for _, sess := range idle {
		work <- sess
	}
	close(work)
	wg.Wait()
	s.log.Info("hibernating sessions ended for shutdown", "sessions", len(idle))
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}
