package c2s

import (
	"context"
	"crypto/tls"

	"parley.im/parley/xmpp/auth"
	"parley.im/parley/xmpp/stanza"
)

// This file is the STARTTLS phase of negotiation (RFC 6120 5) and the TLS handshake, also that of direct TLS
// (XEP-0368).

func (c *conn) negotiateTLS() error {
	for {
		el, err := c.rd.Next()
		if err != nil {
			return err
		}
		switch {
		case el.Local == "starttls" && el.NS == nsTLS:
			return c.startTLS()
		case el.Local == "auth" && el.NS == nsSASL:
			c.send([]byte("<failure xmlns='" + nsSASL + "'><encryption-required/></failure>"))
		case c.isRegisterIQ(el):
			return &streamError{"policy-violation", "negotiate TLS first"}
		case stanza.KindOf(el.Local) != 0 && el.NS == nsClient:
			return &streamError{"not-authorized", "negotiate TLS and authenticate first"}
		default:
			return &streamError{"policy-violation", "TLS is required on this server"}
		}
	}
}

// startTLS answers <starttls/> and negotiates TLS; the stream then restarts.
func (c *conn) startTLS() error {
	if err := c.sendSync([]byte("<proceed xmlns='" + nsTLS + "'/>")); err != nil {
		return err
	}
	if err := c.handshake(nil); err != nil {
		return err
	}
	// SetSource refuses bytes other than whitespace sent after <starttls/> and before the handshake: they
	// would be trusted as if they had come over TLS (the STARTTLS command injection attack).
	if err := c.rd.SetSource(c.rw); err != nil {
		return err
	}
	c.rd.Restart()
	return nil
}

// handshake runs the server side of TLS on the raw connection and installs it as the stream's transport.
func (c *conn) handshake(_ []byte) error {
	cfg := c.srv.tls
	if c.directTLS {
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"xmpp-client"} // XEP-0368
	}
	tc := tls.Server(c.nc, cfg)
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.NegotiationTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	c.tlsConn, c.rw = tc, tc
	c.out.SetConn(tc)
	c.cb = auth.NewChannelBindings(tc.ConnectionState(), c.srv.leafDER)
	return nil
}
