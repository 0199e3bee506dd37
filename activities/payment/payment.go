// Package payment holds the payment worker's activities: authorize,
// capture and void an order's payment through a Provider.
//
// The payments row of an order (keyed by order id) makes every activity
// idempotent and settles races: AuthorizePayment writes PENDING before it
// calls the provider, so a void that overtakes a slow authorization finds
// the row, voids at the provider and marks it VOIDED; the authorization,
// when it returns, is declined or voids itself. The provider is keyed by
// the order id too, so a void reaches the provider even when the
// authorization's answer was lost. Nothing like a card number is stored or
// logged: the payment method is a provider token and is not kept.
package payment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// Error types of the payment activities' retryable errors.
const (
	// ErrProvider is a provider failure that a retry may fix.
	ErrProvider = "ProviderError"
	// ErrCaptureInFlight refuses a void while a capture call may still take
	// effect at the provider; it clears once that call's bound has passed.
	ErrCaptureInFlight = "CaptureInFlight"
)

const (
	// captureCallTimeout bounds one capture call to the provider.
	captureCallTimeout = 30 * time.Second
	// inFlightMargin is added to a capture call's deadline before a void may
	// go ahead: a provider may still act on a request its caller gave up on.
	inFlightMargin = 30 * time.Second
)

// Activities are the payment activities. Register the struct: each
// exported method is an activity declared in package order, under its
// method name.
type Activities struct {
	db       *pgxpool.Pool
	provider Provider
	log      *zap.Logger
}

// New returns the activities on the payments database and provider.
func New(db *pgxpool.Pool, provider Provider, log *zap.Logger) *Activities {
	return &Activities{db: db, provider: provider, log: log}
}

// AuthorizePayment holds the order's amount. A decline is a non-retryable
// order.ErrPaymentDeclined or order.ErrInsufficientFunds error; a provider
// failure is retryable. Called again, it answers as the first time.
func (a *Activities) AuthorizePayment(ctx context.Context, req order.PaymentRequest) (order.Authorization, error) {
	id, err := parseRequest(req)
	if err != nil {
		return order.Authorization{}, err
	}
	log := a.log.With(zap.String("order_id", req.OrderID))
	p, err := a.recordAttempt(ctx, id, req)
	if err != nil {
		return order.Authorization{}, fmt.Errorf("authorize payment: %w", err)
	}
	switch p.status {
	case "AUTHORIZED", "CAPTURED":
		return order.Authorization{OrderID: req.OrderID, AuthorizationID: p.authorizationID}, nil
	case "VOIDED":
		return order.Authorization{}, voided()
	case "DECLINED":
		return order.Authorization{}, declined(p.declineCode)
	}

	authID, err := a.provider.Authorize(ctx, AuthorizeRequest{IdempotencyKey: req.OrderID, Token: req.PaymentMethod, AmountCents: req.AmountCents, Currency: req.Currency})
	var decline *DeclineError
	if errors.As(err, &decline) {
		if decline.Code == DeclineVoided {
			// A void reached the provider first: the order is being undone.
			if _, err := a.db.Exec(ctx, `UPDATE payments.payments SET status = 'VOIDED', updated_at = now()
				WHERE order_id = $1 AND status = 'PENDING'`, id); err != nil {
				return order.Authorization{}, fmt.Errorf("authorize payment: record void: %w", err)
			}
			log.Info("authorization refused: the payment was voided first")
			return order.Authorization{}, voided()
		}
		if _, err := a.db.Exec(ctx, `UPDATE payments.payments SET status = 'DECLINED', decline_code = $2, updated_at = now()
			WHERE order_id = $1 AND status = 'PENDING'`, id, decline.Code); err != nil {
			return order.Authorization{}, fmt.Errorf("authorize payment: record decline: %w", err)
		}
		log.Info("payment declined", zap.String("code", decline.Code))
		return order.Authorization{}, declined(decline.Code)
	}
	if err != nil {
		log.Warn("payment provider failed; will retry", zap.Error(err))
		return order.Authorization{}, temporal.NewApplicationError("payment provider failed: "+err.Error(), ErrProvider)
	}

	tag, err := a.db.Exec(ctx, `UPDATE payments.payments SET status = 'AUTHORIZED', authorization_id = $2, updated_at = now()
		WHERE order_id = $1 AND status = 'PENDING'`, id, authID)
	if err != nil {
		return order.Authorization{}, fmt.Errorf("authorize payment: record authorization: %w", err)
	}
	if tag.RowsAffected() == 0 {
		p, err := a.load(ctx, id)
		if err != nil {
			return order.Authorization{}, fmt.Errorf("authorize payment: %w", err)
		}
		if p.status == "VOIDED" {
			// The order was cancelled while the provider answered: let go of the hold.
			if err := a.provider.Void(ctx, req.OrderID); err != nil {
				return order.Authorization{}, temporal.NewApplicationError("void a late authorization: "+err.Error(), ErrProvider)
			}
			log.Info("late authorization voided")
			return order.Authorization{}, voided()
		}
		authID = p.authorizationID // a concurrent duplicate recorded it first
	}
	log.Info("payment authorized")
	return order.Authorization{OrderID: req.OrderID, AuthorizationID: authID}, nil
}

// CapturePayment takes the authorized amount. A capture decline is a
// non-retryable order.ErrCaptureDeclined error and leaves the payment
// AUTHORIZED, for the saga to void. Capturing twice captures once.
//
// Before it calls the provider it records how long that call may still
// take effect (capture_in_flight_until), so that no void races it.
func (a *Activities) CapturePayment(ctx context.Context, req order.PaymentRequest) error {
	id, err := orderID(req.OrderID)
	if err != nil {
		return err
	}
	log := a.log.With(zap.String("order_id", req.OrderID))
	callCtx, cancel := context.WithTimeout(ctx, captureCallTimeout)
	defer cancel()
	deadline, _ := callCtx.Deadline()
	bound := time.Until(deadline) + inFlightMargin
	// Recording the call's bound is also the read of the amount: one
	// statement for the usual case, an AUTHORIZED payment.
	var amountCents int64
	err = a.db.QueryRow(ctx, `UPDATE payments.payments SET capture_in_flight_until = now() + make_interval(secs => $2), updated_at = now()
		WHERE order_id = $1 AND status = 'AUTHORIZED' RETURNING amount_cents`, id, bound.Seconds()).Scan(&amountCents)
	if errors.Is(err, pgx.ErrNoRows) {
		// Not AUTHORIZED: captured already, never authorized, or voided.
		p, err := a.load(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return temporal.NewNonRetryableApplicationError("no authorization to capture", order.ErrInvalidRequest, nil)
		}
		if err != nil {
			return fmt.Errorf("capture payment: %w", err)
		}
		if p.status == "CAPTURED" {
			return nil
		}
		if err := captureAllowed(p.status); err != nil {
			return err
		}
		return fmt.Errorf("capture payment: the payment changed while it was read (now %s)", p.status)
	}
	if err != nil {
		return fmt.Errorf("capture payment: record capture issued: %w", err)
	}

	err = a.provider.Capture(callCtx, req.OrderID, amountCents)
	var decline *DeclineError
	if errors.As(err, &decline) {
		if _, err := a.db.Exec(ctx, `UPDATE payments.payments SET decline_code = $2, capture_in_flight_until = NULL, updated_at = now()
			WHERE order_id = $1`, id, decline.Code); err != nil {
			return fmt.Errorf("capture payment: record decline: %w", err)
		}
		log.Info("capture declined", zap.String("code", decline.Code))
		return temporal.NewNonRetryableApplicationError("capture declined", order.ErrCaptureDeclined, nil)
	}
	if err != nil {
		// capture_in_flight_until stays: the provider may have acted.
		log.Warn("payment provider failed; will retry", zap.Error(err))
		return temporal.NewApplicationError("payment provider failed: "+err.Error(), ErrProvider)
	}
	tag, err := a.db.Exec(ctx, `UPDATE payments.payments SET status = 'CAPTURED', capture_in_flight_until = NULL, updated_at = now()
		WHERE order_id = $1 AND status = 'AUTHORIZED'`, id)
	if err != nil {
		return fmt.Errorf("capture payment: record capture: %w", err)
	}
	if tag.RowsAffected() == 0 {
		p, err := a.load(ctx, id)
		if err != nil {
			return fmt.Errorf("capture payment: check the recorded capture: %w", err)
		}
		if p.status != "CAPTURED" {
			// The provider took the money, yet the row says otherwise: a
			// defect or a manual change. Retrying cannot fix it; an
			// operator must reconcile it (refund, or correct the row).
			log.Error("payment captured at the provider but recorded otherwise", zap.String("recorded_status", p.status))
			return temporal.NewNonRetryableApplicationError("payment captured at the provider but recorded "+p.status+": an operator must reconcile it", order.ErrInvalidRequest, nil)
		}
		// A concurrent attempt recorded the capture first.
	}
	log.Info("payment captured")
	return nil
}

// captureAllowed says whether a payment in status may be captured: nil for
// AUTHORIZED, the error to return otherwise.
func captureAllowed(status string) error {
	switch status {
	case "AUTHORIZED":
		return nil
	case "VOIDED":
		return voided()
	}
	return temporal.NewNonRetryableApplicationError("payment is "+status+", not authorized", order.ErrInvalidRequest, nil)
}

// VoidPayment releases the order's authorization at the provider, by the
// order id, whether or not the authorization's answer was ever recorded:
// a PENDING payment may hold at the provider (its worker died after the
// provider authorized), so it is voided there too. Voiding twice, or an
// order that was never authorized, changes nothing; a void that comes
// before its authorization leaves a VOIDED row that refuses the late
// authorization. A provider failure is retryable and leaves the row as it
// was, so the retry voids again. While a capture call may still take
// effect, the void waits (a retryable ErrCaptureInFlight). A captured
// payment cannot be voided (that is a refund): a non-retryable error.
func (a *Activities) VoidPayment(ctx context.Context, req order.PaymentRequest) error {
	id, err := orderID(req.OrderID)
	if err != nil {
		return err
	}
	log := a.log.With(zap.String("order_id", req.OrderID))
	tag, err := a.db.Exec(ctx, `INSERT INTO payments.payments (order_id, status, amount_cents, currency) VALUES ($1, 'VOIDED', $2, $3)
		ON CONFLICT (order_id) DO NOTHING`, id, req.AmountCents, currencyOr(req.Currency))
	if err != nil {
		return fmt.Errorf("void payment: %w", err)
	}
	if tag.RowsAffected() == 1 {
		// AuthorizePayment records PENDING before it calls the provider, so
		// with no row nothing reached the provider, and now nothing will.
		log.Info("void before any authorization: marked")
		return nil
	}
	rec, err := lookup(ctx, a.db, id)
	if err != nil {
		return fmt.Errorf("void payment: %w", err)
	}
	switch rec.Status {
	case "VOIDED", "DECLINED":
		return nil
	case "CAPTURED":
		return refundNeeded()
	}
	if !rec.CaptureInFlightUntil.IsZero() {
		log.Info("void waits: a capture may still take effect", zap.Time("until", rec.CaptureInFlightUntil))
		return temporal.NewApplicationError("a capture may still take effect at the provider until "+rec.CaptureInFlightUntil.UTC().Format(time.RFC3339), ErrCaptureInFlight)
	}

	// No row lock is held across the provider call (that would hold a
	// second pooled connection per void): the provider orders a racing
	// capture and void by the key, and whichever it refuses is declined.
	err = a.provider.Void(ctx, req.OrderID)
	var decline *DeclineError
	if errors.As(err, &decline) {
		if decline.Code == DeclineAlreadyCaptured {
			// A capture reached the provider but its answer never reached
			// this row (its worker died, or it raced this void). Record
			// what the provider did.
			if _, err := a.db.Exec(ctx, `UPDATE payments.payments SET status = 'CAPTURED', capture_in_flight_until = NULL, updated_at = now()
				WHERE order_id = $1 AND status IN ('PENDING', 'AUTHORIZED')`, id); err != nil {
				return fmt.Errorf("void payment: record the provider's capture: %w", err)
			}
			log.Error("void refused by the provider: the payment was captured there; it needs a refund")
			return refundNeeded()
		}
		log.Error("void declined by the provider", zap.String("code", decline.Code))
		return temporal.NewNonRetryableApplicationError("void declined by the provider: "+decline.Code, order.ErrInvalidRequest, nil)
	}
	if err != nil {
		log.Warn("payment provider failed to void; will retry", zap.Error(err))
		return temporal.NewApplicationError("void at the payment provider: "+err.Error(), ErrProvider)
	}
	if _, err := a.db.Exec(ctx, `UPDATE payments.payments SET status = 'VOIDED', capture_in_flight_until = NULL, updated_at = now()
		WHERE order_id = $1 AND status IN ('PENDING', 'AUTHORIZED')`, id); err != nil {
		return fmt.Errorf("void payment: record void: %w", err)
	}
	log.Info("payment voided", zap.String("was", rec.Status))
	return nil
}

// Record is what the payments database says about an order's payment, for
// operators' tools such as `ordersaga repair`.
type Record struct {
	// Status is PENDING, AUTHORIZED, CAPTURED, VOIDED or DECLINED, or empty
	// when the order has no payment.
	Status string
	// CaptureInFlightUntil is, while a capture call may still take effect
	// at the provider, the moment after which it no longer can; zero
	// otherwise. Until then nothing may void the payment.
	CaptureInFlightUntil time.Time
}

// Lookup returns the order's payment record from the payments database.
// It changes nothing. It is a function, not a method of Activities, since
// the payment worker registers every exported method of Activities as an
// activity.
func Lookup(ctx context.Context, payments *pgxpool.Pool, orderID uuid.UUID) (Record, error) {
	rec, err := lookup(ctx, payments, orderID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Record{}, nil
	}
	if err != nil {
		return Record{}, fmt.Errorf("look up payment: %w", err)
	}
	return rec, nil
}

func lookup(ctx context.Context, db *pgxpool.Pool, id uuid.UUID) (Record, error) {
	var rec Record
	var until *time.Time
	// The database's clock both sets and reads the bound.
	err := db.QueryRow(ctx, `SELECT status, CASE WHEN capture_in_flight_until > now() THEN capture_in_flight_until END
		FROM payments.payments WHERE order_id = $1`, id).Scan(&rec.Status, &until)
	if until != nil {
		rec.CaptureInFlightUntil = *until
	}
	return rec, err
}

type paymentRow struct {
	status          string
	authorizationID string
	declineCode     string
	amountCents     int64
}

// recordAttempt records the order's payment as PENDING unless it has a
// row already, and returns its row, in one statement for a first attempt.
func (a *Activities) recordAttempt(ctx context.Context, id uuid.UUID, req order.PaymentRequest) (paymentRow, error) {
	var p paymentRow
	var authID, code *string
	// The second branch reads the row that was there before the statement
	// began; a row a concurrent attempt committed since is in neither, so
	// it is read again below.
	err := a.db.QueryRow(ctx, `WITH ins AS (
			INSERT INTO payments.payments (order_id, status, amount_cents, currency) VALUES ($1, 'PENDING', $2, $3)
			ON CONFLICT (order_id) DO NOTHING
			RETURNING status, authorization_id, decline_code, amount_cents
		)
		SELECT * FROM ins
		UNION ALL
		SELECT status, authorization_id, decline_code, amount_cents FROM payments.payments
		WHERE order_id = $1 AND NOT EXISTS (SELECT 1 FROM ins)`, id, req.AmountCents, req.Currency).
		Scan(&p.status, &authID, &code, &p.amountCents)
	if errors.Is(err, pgx.ErrNoRows) {
		return a.load(ctx, id)
	}
	if err != nil {
		return paymentRow{}, fmt.Errorf("record attempt: %w", err)
	}
	if authID != nil {
		p.authorizationID = *authID
	}
	if code != nil {
		p.declineCode = *code
	}
	return p, nil
}

func (a *Activities) load(ctx context.Context, id uuid.UUID) (paymentRow, error) {
	var p paymentRow
	var authID, code *string
	err := a.db.QueryRow(ctx, `SELECT status, authorization_id, decline_code, amount_cents FROM payments.payments WHERE order_id = $1`, id).
		Scan(&p.status, &authID, &code, &p.amountCents)
	if authID != nil {
		p.authorizationID = *authID
	}
	if code != nil {
		p.declineCode = *code
	}
	return p, err
}

func declined(code string) error {
	if code == DeclineInsufficientFunds {
		return temporal.NewNonRetryableApplicationError("insufficient funds", order.ErrInsufficientFunds, nil)
	}
	return temporal.NewNonRetryableApplicationError("payment declined: "+code, order.ErrPaymentDeclined, nil)
}

func voided() error {
	return temporal.NewNonRetryableApplicationError("the payment was voided; the order was cancelled", order.ErrPaymentVoided, nil)
}

func refundNeeded() error {
	return temporal.NewNonRetryableApplicationError("payment was captured; it needs a refund, not a void", order.ErrInvalidRequest, nil)
}

func parseRequest(req order.PaymentRequest) (uuid.UUID, error) {
	id, err := orderID(req.OrderID)
	if err != nil {
		return id, err
	}
	if req.AmountCents < 0 || len(req.Currency) != 3 || req.PaymentMethod == "" {
		return id, temporal.NewNonRetryableApplicationError("payment request needs an amount, a currency and a payment method", order.ErrInvalidRequest, nil)
	}
	return id, nil
}

func orderID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, temporal.NewNonRetryableApplicationError("order id is not a UUID", order.ErrInvalidRequest, nil)
	}
	return id, nil
}

func currencyOr(c string) string {
	if len(c) == 3 {
		return c
	}
	return "USD"
}
