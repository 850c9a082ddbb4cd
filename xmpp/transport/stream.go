package transport

import "parley.im/parley/xmpp/stanza"

// nsStreams is the namespace of stream error conditions (RFC 6120 4.9.3).
const nsStreams = "urn:ietf:params:xml:ns:xmpp-streams"

// closeTag ends a stream.
const closeTag = "</stream:stream>"

// AppendStreamError appends a stream error with condition cond and, if not empty, text (RFC 6120 4.9).
func AppendStreamError(b []byte, cond, text string) []byte {
	b = append(b, "<stream:error><"...)
	b = append(b, cond...)
	b = append(b, " xmlns='"+nsStreams+"'/>"...)
	if text != "" {
		b = append(b, "<text xmlns='"+nsStreams+"'>"...)
		b = stanza.AppendEscape(b, text)
		b = append(b, "</text>"...)
	}
	return append(b, "</stream:error>"...)
}

// CloseStream ends the stream from any goroutine: after what is queued, the stream error cond (none if cond is
// empty) and the close tag are written and the socket is closed.
func (q *Queue) CloseStream(cond, text string) {
	if cond == "" {
		q.Finish([]byte(closeTag))
		return
	}
	q.Finish(append(AppendStreamError(nil, cond, text), closeTag...))
}
