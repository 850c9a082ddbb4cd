package stanza

import (
	"errors"

	"mellium.im/xmpp/jid"
)

// NSStanzas is the namespace of stanza error conditions (RFC 6120 section 8.3.3).
const NSStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"

// Error is a stanza error (RFC 6120 section 8.3). Handlers return it to have the server answer with an error
// stanza; any other error becomes internal-server-error.
type Error struct {
	Type      string // auth, cancel, continue, modify or wait; from the condition when empty
	Condition string // a defined condition, e.g. "item-not-found"
	Text      string // optional human-readable text
	App       []byte // optional application-specific condition element
	By        string // optional 'by' attribute
}

func (e *Error) Error() string {
	if e.Text != "" {
		return "stanza error: " + e.Condition + ": " + e.Text
	}
	return "stanza error: " + e.Condition
}

// Errorf is a shorthand for an Error with a condition and text.
func Errorf(condition, text string) *Error { return &Error{Condition: condition, Text: text} }

// Common errors.
var (
	ErrBadRequest          = &Error{Condition: "bad-request"}
	ErrFeatureNotImpl      = &Error{Condition: "feature-not-implemented"}
	ErrForbidden           = &Error{Condition: "forbidden"}
	ErrItemNotFound        = &Error{Condition: "item-not-found"}
	ErrInternal            = &Error{Condition: "internal-server-error"}
	ErrNotAcceptable       = &Error{Condition: "not-acceptable"}
	ErrNotAllowed          = &Error{Condition: "not-allowed"}
	ErrNotAuthorized       = &Error{Condition: "not-authorized"}
	ErrServiceUnavailable  = &Error{Condition: "service-unavailable"}
	ErrRecipientUnavail    = &Error{Condition: "recipient-unavailable"}
	ErrRemoteServerNotFnd  = &Error{Condition: "remote-server-not-found"}
	ErrJIDMalformed        = &Error{Condition: "jid-malformed"}
	ErrConflict            = &Error{Condition: "conflict"}
	ErrPolicyViolation     = &Error{Condition: "policy-violation"}
	ErrResourceConstraint  = &Error{Condition: "resource-constraint"}
	ErrUnexpectedRequest   = &Error{Condition: "unexpected-request"}
	ErrSubscriptionRequird = &Error{Condition: "subscription-required"}
)

// defaultType is the error type RFC 6120 section 8.3.3 suggests for each condition.
func defaultType(condition string) string {
	switch condition {
	case "bad-request", "jid-malformed", "not-acceptable", "policy-violation", "redirect", "gone":
		return "modify"
	case "forbidden", "not-authorized", "registration-required", "subscription-required":
		return "auth"
	case "internal-server-error", "recipient-unavailable", "remote-server-timeout", "resource-constraint",
		"unexpected-request":
		return "wait"
	}
	return "cancel"
}

// AsError returns err as a stanza error, internal-server-error for errors of any other type.
func AsError(err error) *Error {
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	return ErrInternal
}

// AppendError appends the <error/> element for e.
func AppendError(b []byte, e *Error) []byte {
	typ := e.Type
	if typ == "" {
		typ = defaultType(e.Condition)
	}
	b = append(b, "<error type='"...)
	b = append(b, typ...)
	b = append(b, '\'')
	if e.By != "" {
		b = append(b, " by='"...)
		b = AppendEscape(b, e.By)
		b = append(b, '\'')
	}
	b = append(b, "><"...)
	b = append(b, e.Condition...)
	b = append(b, " xmlns='"+NSStanzas+"'/>"...)
	if e.Text != "" {
		b = append(b, "<text xmlns='"+NSStanzas+"'>"...)
		b = AppendEscape(b, e.Text)
		b = append(b, "</text>"...)
	}
	b = append(b, e.App...)
	return append(b, "</error>"...)
}

// ErrorReply builds the error stanza answering s (RFC 6120 section 8.3.1): addresses swapped, type error, the
// original payload kept (it helps the sender correlate), then the error element. from is used as the reply's
// from when s had no to (addressed to the sender's own account or the server).
func ErrorReply(s *Stanza, from jid.JID, e *Error) *Stanza {
	if !s.To.Equal(jid.JID{}) {
		from = s.To
	}
	inner := make([]byte, 0, len(s.Payload())+128)
	inner = append(inner, s.Payload()...)
	inner = AppendError(inner, e)
	return New(s.Kind, "error", s.ID, from, s.From, inner)
}
