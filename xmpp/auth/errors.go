package auth

import (
	"context"
	"errors"
)

// SASL failure conditions (RFC 6120 section 6.5) an exchange can end with.
const (
	CondAborted              = "aborted"
	CondEncryptionRequired   = "encryption-required"
	CondIncorrectEncoding    = "incorrect-encoding"
	CondInvalidAuthzid       = "invalid-authzid"
	CondInvalidMechanism     = "invalid-mechanism"
	CondMalformedRequest     = "malformed-request"
	CondNotAuthorized        = "not-authorized"
	CondTemporaryAuthFailure = "temporary-auth-failure"
)

// Error is a failed exchange: the condition for <failure/> and the reason, for the server's log only.
type Error struct {
	// Condition is the RFC 6120 section 6.5 failure condition.
	Condition string
	// User is the normalized username the client tried, if the exchange got that far.
	User string
	// Credential is set when the exchange got as far as checking the password or proof and it was wrong (or
	// the account does not exist). Only these failures count towards throttling: a refused channel-binding
	// type or a malformed message says nothing about the password.
	Credential bool
	err        error
}

// credentialFailed marks err (an *Error) as a failed credential check.
func credentialFailed(err error) error {
	if e, ok := err.(*Error); ok {
		e.Credential = true
	}
	return err
}

// CredentialFailed reports whether err is a failed check of the password or proof.
func CredentialFailed(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Credential
}

func newError(cond, user string, err error) *Error {
	return &Error{Condition: cond, User: user, err: err}
}

// Error returns the condition and the reason. The reason may tell an unknown user from a wrong password:
// it is for logs, never for the client.
func (e *Error) Error() string {
	if e.err == nil {
		return "auth: " + e.Condition
	}
	return "auth: " + e.Condition + ": " + e.err.Error()
}

// Unwrap returns the reason.
func (e *Error) Unwrap() error { return e.err }

// AttemptedUser returns the username the client tried, for per-account throttling.
func (e *Error) AttemptedUser() string { return e.User }

// Condition returns the RFC 6120 SASL failure condition for an error from Start or Step: "" for nil,
// "aborted" for a cancelled context, "temporary-auth-failure" for errors that did not come from this
// package.
func Condition(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Condition
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return CondAborted
	default:
		return CondTemporaryAuthFailure
	}
}
