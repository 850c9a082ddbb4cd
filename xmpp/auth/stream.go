package auth

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
)

// Stream is what one stream's SASL negotiation remembers from one exchange to the next, and what it offered.
// The caller keeps one per stream (a new one after STARTTLS) and passes it to StartStream; it is not safe for
// concurrent use.
//
// It carries two things:
//
//   - The gs2 flag "y" rule. A client that can bind sends "y" when it believes the server cannot; if the server
//     offered -PLUS, RFC 5802 section 6 reads that as a downgrade: someone removed -PLUS from the list on the
//     way. But a client that did attempt a -PLUS mechanism on this stream and was refused only because the
//     channel-binding type it named is not one this connection has (slixmpp 1.8.3 names tls-unique, which
//     TLS 1.3 does not define) saw -PLUS in the list: nothing was stripped, and its "y" retry is honest. So
//     "y" is accepted after such a refusal on the same stream and refused otherwise.
//   - XEP-0474 (SASL SCRAM Downgrade Protection): the server-first-message of a SCRAM exchange carries an "h"
//     attribute, the hash (with the mechanism's hash function) of the mechanisms and channel-binding types the
//     stream offered, so that a client can tell whether the lists it saw were tampered with.
type Stream struct {
	// Mechanisms are the mechanism names the stream offered.
	Mechanisms []string
	// CBTypes are the channel-binding types the stream offered with XEP-0440; nil when it offered none.
	CBTypes []string

	// plusTypeRefused is set when a -PLUS exchange on this stream failed only because the client named a
	// channel-binding type the connection does not have.
	plusTypeRefused bool
}

// PlusTypeRefused reports whether a -PLUS exchange on this stream was refused only for its channel-binding
// type, which makes a later "y" acceptable.
func (st *Stream) PlusTypeRefused() bool { return st != nil && st.plusTypeRefused }

// ssdpInput is the XEP-0474 hash input: the offered mechanisms sorted and joined with 0x1e, then, when
// channel-binding types were offered, 0x1f and the sorted types joined with 0x1e.
func (st *Stream) ssdpInput() []byte {
	if st == nil || len(st.Mechanisms) == 0 {
		return nil
	}
	m := slices.Sorted(slices.Values(st.Mechanisms))
	s := strings.Join(m, "\x1e")
	if st.CBTypes != nil {
		t := slices.Sorted(slices.Values(st.CBTypes))
		s += "\x1f" + strings.Join(t, "\x1e")
	}
	return []byte(s)
}

// ssdpAttr returns ",h=<base64 hash>" for a server-first-message, or nil when the stream said nothing of what
// it offered.
func (st *Stream) ssdpAttr(h Hash) []byte {
	in := st.ssdpInput()
	if in == nil {
		return nil
	}
	sum := hashSum(h, in)
	out := append([]byte(",h="), make([]byte, 0, base64.StdEncoding.EncodedLen(len(sum)))...)
	return base64.StdEncoding.AppendEncode(out, sum)
}

// StartStream is Start on a stream the caller tracks with st (see Stream); st may be nil, which is Start.
func (s *Server) StartStream(ctx context.Context, st *Stream, mechanism string, cb *ChannelBindings, tlsActive bool, initial []byte) (*Exchange, error) {
	ex, err := s.Start(ctx, mechanism, cb, tlsActive, initial)
	if ex != nil {
		ex.stream = st
	}
	return ex, err
}
