package payment

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Provider is a payment provider. Every call is idempotent by its
// idempotency key, which is the order id: Authorize holds at most once per
// key, and Capture and Void act on the key's hold. Keying Capture and Void
// by the order id, not by an authorization id the caller had to store,
// means a hold whose authorization answer was lost (a worker killed after
// the provider authorized) can still be voided. Errors are a *DeclineError
// for a definite refusal, anything else for a failure worth retrying.
type Provider interface {
	Authorize(ctx context.Context, req AuthorizeRequest) (authorizationID string, err error)
	Capture(ctx context.Context, idempotencyKey string, amountCents int64) error
	Void(ctx context.Context, idempotencyKey string) error
}

// NewProvider returns the payment provider that ordersaga is configured
// with, on the payments database. The payment worker and `ordersaga repair`
// both build theirs here, so that a repair voids at the provider that
// authorized.
func NewProvider(payments *pgxpool.Pool) Provider {
	return NewSimulator(payments)
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
	// DeclineVoided answers an authorization or a capture for a key that
	// was voided: a voided key never gets a fresh hold.
	DeclineVoided = "authorization_voided"
	// DeclineAlreadyCaptured answers a void of a captured hold: taking the
	// money back is a refund.
	DeclineAlreadyCaptured = "already_captured"
	// DeclineUnknownAuthorization answers a capture of a key with no hold.
	DeclineUnknownAuthorization = "unknown_authorization"
	// DeclineAmountTooLarge answers a capture above the held amount.
	DeclineAmountTooLarge = "amount_exceeds_authorization"
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

// transientFailures is how many authorization attempts of tok_transient_error
// fail, per idempotency key, before one succeeds.
const transientFailures = 2

// Simulator is the built-in payment provider. Its behaviour follows the
// token (API.md), and it answers like a real provider with idempotency
// keys. It keeps its own ledger in the paysim schema of the payments
// database: paysim.holds, one row per key that was ever authorized, and
// paysim.operations, every call it answered. Being in PostgreSQL, the
// ledger (and tok_transient_error's attempt count) survives a kill -9 of
// the payment worker, and a fault run can check the provider's side: no
// hold outlives its order, nothing is captured twice.
type Simulator struct {
	// SlowDelay is how long tok_slow takes to authorize (5 s by default).
	SlowDelay time.Duration

	db *pgxpool.Pool
}

// NewSimulator returns a simulator with API.md's timings whose ledger is
// in the paysim schema of db (the payments database).
func NewSimulator(db *pgxpool.Pool) *Simulator {
	return &Simulator{SlowDelay: 5 * time.Second, db: db}
}

// keyLockClass is the first half of the advisory lock that serialises one
// key's calls. The two-int form has a lock space of its own, apart from the
// single-bigint locks that the outbox relay and migrations take; keys that
// share a hash only wait for each other.
const keyLockClass int32 = 0x70617973 // "pays"

// answer is what the simulator did for one call: the operations row it
// appends, the change it makes to the key's hold, if any, and what the
// caller gets back.
type answer struct {
	op     string // authorize, capture, void, decline or error
	amount int64
	detail string
	err    error // nil, a *DeclineError, or a transient failure
	// change, when set, is the statement that changes the key's hold
	// ($1 is the key), with its arguments after the key.
	change     string
	changeArgs []any
}

func decline(call, code string, amount int64) answer {
	return answer{op: "decline", amount: amount, detail: call + ": " + code, err: &DeclineError{Code: code}}
}

// hold is a paysim.holds row.
type hold struct {
	authorizationID string
	state           string
	amountCents     int64
}

// keyState is what the simulator knows of a key when a call comes.
type keyState struct {
	hold  hold
	found bool // the key has a hold
	// voided says a void was answered for the key, hold or not.
	voided bool
	// failures counts the authorization attempts it answered with an error.
	failures int
}

// serve answers one call in a transaction that also appends the call's
// operations row, so that the ledger and the log never disagree. Calls
// with one key are served one at a time (a transaction-scoped advisory
// lock: a key that has no hold yet has no row to lock), as a provider's
// idempotency key does. handle decides from the key's state, read after
// the lock is held. Four round trips: the lock and the read go together,
// as do the change and the operations row (a pipeline runs its statements
// in order, each with a snapshot of its own). A database failure is
// returned wrapped, as a transient failure; otherwise the answer's error.
func (s *Simulator) serve(ctx context.Context, key string, handle func(keyState) answer) error {
	var a answer
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var st keyState
		var authID, state *string
		var amount *int64
		read := &pgx.Batch{}
		read.Queue(`SELECT pg_advisory_xact_lock($1, hashtext($2))`, keyLockClass, key)
		read.Queue(`SELECT h.authorization_id, h.state, h.amount_cents,
				EXISTS (SELECT 1 FROM paysim.operations WHERE idempotency_key = $1 AND op = 'void'),
				(SELECT count(*) FROM paysim.operations WHERE idempotency_key = $1 AND op = 'error')
			FROM (SELECT 1) AS one LEFT JOIN paysim.holds h ON h.idempotency_key = $1`, key).
			QueryRow(func(row pgx.Row) error {
				return row.Scan(&authID, &state, &amount, &st.voided, &st.failures)
			})
		if err := tx.SendBatch(ctx, read).Close(); err != nil {
			return err
		}
		if state != nil {
			st.found = true
			st.hold = hold{authorizationID: *authID, state: *state, amountCents: *amount}
		}
		a = handle(st)
		write := &pgx.Batch{}
		if a.change != "" {
			write.Queue(a.change, append([]any{key}, a.changeArgs...)...)
		}
		write.Queue(`INSERT INTO paysim.operations (idempotency_key, op, amount_cents, detail) VALUES ($1, $2, $3, $4)`,
			key, a.op, a.amount, a.detail)
		return tx.SendBatch(ctx, write).Close()
	})
	if err != nil {
		return fmt.Errorf("payment simulator: %w", err)
	}
	return a.err
}

// Authorize implements Provider. A key that already has a hold gets the
// same authorization again; a key that was voided, even before it had a
// hold, is declined.
func (s *Simulator) Authorize(ctx context.Context, req AuthorizeRequest) (string, error) {
	if req.Token == TokenSlow {
		select {
		case <-time.After(s.SlowDelay):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	var authID string
	err := s.serve(ctx, req.IdempotencyKey, func(st keyState) answer {
		if st.found {
			if st.hold.state == "VOIDED" {
				return decline("authorize", DeclineVoided, req.AmountCents)
			}
			authID = st.hold.authorizationID
			return answer{op: "authorize", amount: 0, detail: "replay: hold is " + st.hold.state}
		}
		// A void that came before any hold (the order was cancelled while
		// this authorization was on its way) still binds the key.
		if st.voided {
			return decline("authorize", DeclineVoided, req.AmountCents)
		}
		prefix := "sim_ok_"
		switch req.Token {
		case TokenOK, TokenSlow:
		case TokenCaptureFails:
			// The authorization id carries what capture must do.
			prefix = "sim_capfail_"
		case TokenDeclined:
			return decline("authorize", DeclineCardDeclined, req.AmountCents)
		case TokenInsufficientFunds:
			return decline("authorize", DeclineInsufficientFunds, req.AmountCents)
		case TokenTransientError:
			if st.failures < transientFailures {
				n := st.failures + 1
				return answer{op: "error", amount: req.AmountCents, detail: fmt.Sprintf("authorize: attempt %d: unavailable", n),
					err: fmt.Errorf("attempt %d: %w", n, ErrProviderUnavailable)}
			}
		default:
			return decline("authorize", DeclineInvalidToken, req.AmountCents)
		}
		authID = prefix + req.IdempotencyKey
		return answer{op: "authorize", amount: req.AmountCents,
			change: `INSERT INTO paysim.holds (idempotency_key, authorization_id, amount_cents, currency, state)
				VALUES ($1, $2, $3, $4, 'AUTHORIZED')`,
			changeArgs: []any{authID, req.AmountCents, req.Currency}}
	})
	if err != nil {
		return "", err
	}
	return authID, nil
}

// Capture implements Provider. It takes the key's held amount once; a
// second capture succeeds without taking anything.
func (s *Simulator) Capture(ctx context.Context, key string, amountCents int64) error {
	return s.serve(ctx, key, func(st keyState) answer {
		h := st.hold
		switch {
		case !st.found:
			return decline("capture", DeclineUnknownAuthorization, amountCents)
		case h.state == "VOIDED":
			return decline("capture", DeclineVoided, amountCents)
		case h.state == "CAPTURED":
			return answer{op: "capture", detail: "replay: already captured"}
		case strings.HasPrefix(h.authorizationID, "sim_capfail_"):
			return decline("capture", DeclineCaptureDeclined, amountCents)
		case amountCents > h.amountCents:
			return decline("capture", DeclineAmountTooLarge, amountCents)
		}
		return answer{op: "capture", amount: amountCents,
			change: `UPDATE paysim.holds SET state = 'CAPTURED', captured_cents = $2, captures = captures + 1, updated_at = now()
				WHERE idempotency_key = $1`,
			changeArgs: []any{amountCents}}
	})
}

// Void implements Provider. It lets go of the key's hold; voiding again, or
// a key with no hold, succeeds and changes nothing (though a later
// authorization of that key is declined). A captured hold is declined: it
// needs a refund.
func (s *Simulator) Void(ctx context.Context, key string) error {
	return s.serve(ctx, key, func(st keyState) answer {
		h := st.hold
		switch {
		case !st.found:
			return answer{op: "void", detail: "no hold"}
		case h.state == "VOIDED":
			return answer{op: "void", detail: "replay: already voided"}
		case h.state == "CAPTURED":
			return decline("void", DeclineAlreadyCaptured, 0)
		}
		return answer{op: "void", amount: h.amountCents,
			change: `UPDATE paysim.holds SET state = 'VOIDED', updated_at = now() WHERE idempotency_key = $1`}
	})
}
