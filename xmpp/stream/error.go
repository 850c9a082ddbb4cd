package stream

import (
	"errors"
	"strconv"
)

// Stream error conditions (RFC 6120 section 4.9.3) that the Reader reports in Error.Condition.
const (
	// NotWellFormed: syntax errors, mismatched tags, bad references, invalid UTF-8 or characters, undeclared
	// prefixes, duplicate attributes, and text other than whitespace between top-level elements.
	NotWellFormed = "not-well-formed"
	// PolicyViolation: an element, the header, the nesting depth or the attribute count exceeds Limits.
	PolicyViolation = "policy-violation"
	// RestrictedXML: comments, processing instructions, DTDs and entity references other than the predefined
	// ones (RFC 6120 section 11.1).
	RestrictedXML = "restricted-xml"
	// InvalidNamespace: the stream element is not {http://etherx.jabber.org/streams}stream or its prefix is
	// not declared.
	InvalidNamespace = "invalid-namespace"
	// BadFormat: structurally wrong but well-formed, such as a stream element named other than "stream".
	BadFormat = "bad-format"
	// UnsupportedEncoding: the XML declaration or a byte order mark names an encoding other than UTF-8.
	UnsupportedEncoding = "unsupported-encoding"
)

// Error is a violation of the stream's rules by the peer. Condition is the stream error condition to send back
// before closing the stream; an Error is final, the Reader returns it again on every later call.
type Error struct {
	Condition string
	Reason    string // what was wrong, for logs
	Offset    int64  // byte offset in the stream (since NewReader) where it was detected
}

// Error returns the condition, reason and offset as one line.
func (e *Error) Error() string {
	return "stream: " + e.Condition + ": " + e.Reason + " at byte " + strconv.FormatInt(e.Offset, 10)
}

// ErrBufferedData is returned by SetSource when the peer sent bytes after the last element that were read before the
// source changed: after STARTTLS they would otherwise be treated as if they had arrived encrypted.
var ErrBufferedData = errors.New("stream: data buffered before the source change")

// Misuse of the API by the caller (not the peer).
var (
	errNoHeader    = errors.New("stream: Next called before Header")
	errHeaderTwice = errors.New("stream: Header called twice without Restart")
)
