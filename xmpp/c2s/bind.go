package c2s

import (
	"encoding/xml"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/module"
	"parley.im/parley/xmpp/stanza"
)

// This file is resource binding (RFC 6120 7), the last phase of negotiation.

type bindIQ struct {
	Type string `xml:"type,attr"`
	ID   string `xml:"id,attr"`
	Bind *struct {
		Resource string `xml:"resource"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
	Session *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-session session"`
}

func (c *conn) negotiateBind() error {
	for {
		el, err := c.rd.Next()
		if err != nil {
			return err
		}
		if el.NS == nsSM {
			switch el.Local {
			case "resume":
				ok, err := c.resume(el)
				if err != nil {
					return err
				}
				if ok {
					return nil
				}
			case "enable":
				c.send([]byte("<failed xmlns='" + nsSM + "'><unexpected-request xmlns='" + stanza.NSStanzas + "'/></failed>"))
			case "r", "a":
				// Nothing to acknowledge before a session exists.
			default:
				return &streamError{"unsupported-stanza-type", ""}
			}
			continue
		}
		if el.Local != "iq" || el.NS != nsClient {
			if stanza.KindOf(el.Local) != 0 && el.NS == nsClient {
				return &streamError{"not-authorized", "bind a resource first"}
			}
			return &streamError{"unsupported-stanza-type", ""}
		}
		var iq bindIQ
		if err := xml.Unmarshal(el.Raw, &iq); err != nil || iq.Type != "set" || iq.Bind == nil {
			if iq.Session != nil {
				return &streamError{"not-authorized", "bind a resource before establishing a session"}
			}
			c.send(iqError(iq.ID, "bad-request", "bind a resource first"))
			continue
		}
		res := iq.Bind.Resource
		if res == "" {
			res = "parley-" + randomID(6)
		}
		full, err := jid.New(c.user, c.srv.domain.Domainpart(), res)
		if err != nil {
			c.send(iqError(iq.ID, "bad-request", "invalid resource"))
			continue
		}
		if c.srv.cfg.ResourceConflict == "refuse" && c.srv.router.Session(full) != nil {
			c.send(iqError(iq.ID, "conflict", "resource in use"))
			continue
		}
		c.attach(&session{srv: c.srv, id: c.id, jid: full, conn: c}, new(atomic.Uint32))
		var b []byte
		b = append(b, "<iq type='result' id='"...)
		b = stanza.AppendEscape(b, iq.ID)
		b = append(b, "'><bind xmlns='"+nsBind+"'><jid>"...)
		b = stanza.AppendEscape(b, full.String())
		b = append(b, "</jid></bind></iq>"...)
		c.send(b)
		c.srv.router.Notify(c.ctx, module.Bound, c.sess)
		if old := c.srv.router.Bind(c.sess); old != nil {
			old.Close("conflict", "replaced by a new connection with the same resource")
		}
		c.bound.Store(true)
		c.log.Info("resource bound", "ip", c.ip)
		return nil
	}
}

func iqError(id, cond, text string) []byte {
	b := []byte("<iq type='error' id='")
	b = stanza.AppendEscape(b, id)
	b = append(b, "'>"...)
	b = stanza.AppendError(b, &stanza.Error{Condition: cond, Text: text})
	return append(b, "</iq>"...)
}
