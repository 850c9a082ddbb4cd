package stanza

import (
	"bytes"
	"fmt"

	"mellium.im/xmpp/jid"

	"parley.im/parley/xmpp/stream"
)

var parseHeader = []byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")

// Parse reads the envelope of a stanza stored as bytes (an offline message, an archived one) with the same
// validating scanner the c2s listener uses. The result owns a copy of raw. It is not for the hot path.
func Parse(raw []byte) (*Stanza, error) {
	buf := make([]byte, 0, len(parseHeader)+len(raw))
	buf = append(append(buf, parseHeader...), raw...)
	// The header counts against the limit too.
	r := stream.NewReader(bytes.NewReader(buf), stream.Limits{MaxElement: len(buf) + 64})
	if _, err := r.Header(); err != nil {
		return nil, fmt.Errorf("stanza: %w", err)
	}
	el, err := r.Next()
	if err != nil {
		return nil, fmt.Errorf("stanza: %w", err)
	}
	k := KindOf(el.Local)
	if k == 0 {
		return nil, fmt.Errorf("stanza: <%s/> is not a stanza", el.Local)
	}
	s := &Stanza{Kind: k, Type: string(el.Type), ID: string(el.ID), Lang: string(el.Lang),
		Raw: append([]byte(nil), el.Raw...), InnerStart: el.InnerStart, InnerEnd: el.InnerEnd}
	if len(el.From) > 0 {
		if s.From, err = jid.Parse(string(el.From)); err != nil {
			return nil, fmt.Errorf("stanza: from: %w", err)
		}
	}
	if len(el.To) > 0 {
		if s.To, err = jid.Parse(string(el.To)); err != nil {
			return nil, fmt.Errorf("stanza: to: %w", err)
		}
	}
	return s, nil
}
