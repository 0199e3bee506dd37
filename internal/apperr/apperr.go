// Package apperr is ordersaga's one domain error type: a stable machine code
// and a message safe to show a client. The gateway maps codes to HTTP
// statuses in exactly one place; anything that is not an *Error is internal
// and its text never reaches a client.
package apperr

import (
	"errors"
	"fmt"
)

// Codes, as API.md names them.
const (
	InvalidJSON          = "invalid_json"
	InvalidArgument      = "invalid_argument"
	Unauthenticated      = "unauthenticated"
	Forbidden            = "forbidden"
	NotFound             = "not_found"
	Conflict             = "conflict"
	PayloadTooLarge      = "payload_too_large"
	IdempotencyKeyReused = "idempotency_key_reused"
	UnknownSKU           = "unknown_sku"
	InactiveSKU          = "inactive_sku"
	RateLimited          = "rate_limited"
	Unavailable          = "unavailable"
	Internal             = "internal"
)

// Error is a failure the client can act on.
type Error struct {
	Code    string
	Message string
	// Field names the request field at fault, for InvalidArgument.
	Field string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New returns an error with code and a formatted message.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an InvalidArgument error about field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: InvalidArgument, Field: field, Message: fmt.Sprintf(format, args...)}
}

// As returns err's *Error, or nil when err is internal.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// Is reports whether err carries code.
func Is(err error, code string) bool {
	e := As(err)
	return e != nil && e.Code == code
}
