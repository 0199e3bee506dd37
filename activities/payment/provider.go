package payment

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Provider is a payment provider. Every call is idempotent: Authorize by
// its idempotency key, Capture and Void by the authorization id. Errors are
// a *DeclineError for a definite refusal, anything else for a failure that
// is worth retrying.
type Provider interface {
	Authorize(ctx context.Context, req AuthorizeRequest) (authorizationID string, err error)
	Capture(ctx context.Context, authorizationID string, amountCents int64) error
	Void(ctx context.Context, authorizationID string) error
}

// AuthorizeRequest asks the provider to hold an amount on a payment token.
type AuthorizeRequest struct {
	IdempotencyKey string
	Token          string
	AmountCents    int64
	Currency       string
}

// Decline codes.
const (
	DeclineCardDeclined      = "card_declined"
	DeclineInsufficientFunds = "insufficient_funds"
	DeclineCaptureDeclined   = "capture_declined"
	DeclineInvalidToken      = "invalid_payment_method"
)

// DeclineError is a provider's definite refusal; retrying cannot change it.
type DeclineError struct{ Code string }

func (e *DeclineError) Error() string { return "payment declined: " + e.Code }

// ErrProviderUnavailable is a transient provider failure.
var ErrProviderUnavailable = errors.New("payment provider unavailable")

// Simulator tokens (API.md's table).
const (
	TokenOK                = "tok_ok"
	TokenDeclined          = "tok_declined"
	TokenInsufficientFunds = "tok_insufficient_funds"
	TokenTransientError    = "tok_transient_error"
	TokenCaptureFails      = "tok_capture_fails"
	TokenSlow              = "tok_slow"
)

// Tokens lists every token the simulator knows, for callers that validate.
var Tokens = []string{TokenOK, TokenDeclined, TokenInsufficientFunds, TokenTransientError, TokenCaptureFails, TokenSlow}

// KnownToken reports whether the simulator knows token.
func KnownToken(token string) bool {
	for _, t := range Tokens {
		if t == token {
			return true
		}
	}
	return false
}

// Simulator is the built-in payment provider. Its behaviour follows the
// token; the authorization id carries what capture must do, so a worker
// restart between authorization and capture changes nothing.
type Simulator struct {
	// SlowDelay is how long tok_slow takes to authorize (5 s by default).
	SlowDelay time.Duration

	mu       sync.Mutex
	attempts map[string]int
}

// NewSimulator returns a simulator with API.md's timings.
func NewSimulator() *Simulator {
	return &Simulator{SlowDelay: 5 * time.Second, attempts: map[string]int{}}
}

// Authorize implements Provider.
func (s *Simulator) Authorize(ctx context.Context, req AuthorizeRequest) (string, error) {
	switch req.Token {
	case TokenOK:
		return "sim_ok_" + req.IdempotencyKey, nil
	case TokenDeclined:
		return "", &DeclineError{Code: DeclineCardDeclined}
	case TokenInsufficientFunds:
		return "", &DeclineError{Code: DeclineInsufficientFunds}
	case TokenTransientError:
		s.mu.Lock()
		s.attempts[req.IdempotencyKey]++
		n := s.attempts[req.IdempotencyKey]
		s.mu.Unlock()
		if n <= 2 {
			return "", fmt.Errorf("attempt %d: %w", n, ErrProviderUnavailable)
		}
		return "sim_ok_" + req.IdempotencyKey, nil
	case TokenCaptureFails:
		return "sim_capfail_" + req.IdempotencyKey, nil
	case TokenSlow:
		select {
		case <-time.After(s.SlowDelay):
			return "sim_ok_" + req.IdempotencyKey, nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	default:
		return "", &DeclineError{Code: DeclineInvalidToken}
	}
}

// Capture implements Provider.
func (s *Simulator) Capture(_ context.Context, authorizationID string, _ int64) error {
	if strings.HasPrefix(authorizationID, "sim_capfail_") {
		return &DeclineError{Code: DeclineCaptureDeclined}
	}
	if !strings.HasPrefix(authorizationID, "sim_") {
		return &DeclineError{Code: "unknown_authorization"}
	}
	return nil
}

// Void implements Provider.
func (s *Simulator) Void(_ context.Context, authorizationID string) error {
	if !strings.HasPrefix(authorizationID, "sim_") {
		return &DeclineError{Code: "unknown_authorization"}
	}
	return nil
}
