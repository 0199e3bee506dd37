// Package payment holds the payment worker's activities: authorize,
// capture and void an order's payment through a Provider.
//
// The payments row of an order (keyed by order id) makes every activity
// idempotent and settles races: AuthorizePayment writes PENDING before it
// calls the provider, so a void that overtakes a slow authorization marks
// the row VOIDED and the authorization, when it returns, voids itself.
// Nothing like a card number is stored or logged: the payment method is a
// provider token and is not kept.
package payment

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// Activities are the payment activities. Register the struct's methods
// under the names in package order.
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
	if _, err := a.db.Exec(ctx, `INSERT INTO payments.payments (order_id, status, amount_cents, currency) VALUES ($1, 'PENDING', $2, $3)
		ON CONFLICT (order_id) DO NOTHING`, id, req.AmountCents, req.Currency); err != nil {
		return order.Authorization{}, fmt.Errorf("authorize payment: record attempt: %w", err)
	}
	p, err := a.load(ctx, id)
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
		if _, err := a.db.Exec(ctx, `UPDATE payments.payments SET status = 'DECLINED', decline_code = $2, updated_at = now()
			WHERE order_id = $1 AND status = 'PENDING'`, id, decline.Code); err != nil {
			return order.Authorization{}, fmt.Errorf("authorize payment: record decline: %w", err)
		}
		log.Info("payment declined", zap.String("code", decline.Code))
		return order.Authorization{}, declined(decline.Code)
	}
	if err != nil {
		log.Warn("payment provider failed; will retry", zap.Error(err))
		return order.Authorization{}, temporal.NewApplicationError("payment provider failed: "+err.Error(), "ProviderError")
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
			if err := a.provider.Void(ctx, authID); err != nil {
				return order.Authorization{}, temporal.NewApplicationError("void a late authorization: "+err.Error(), "ProviderError")
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
func (a *Activities) CapturePayment(ctx context.Context, req order.PaymentRequest) error {
	id, err := orderID(req.OrderID)
	if err != nil {
		return err
	}
	log := a.log.With(zap.String("order_id", req.OrderID))
	p, err := a.load(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return temporal.NewNonRetryableApplicationError("no authorization to capture", order.ErrInvalidRequest, nil)
	}
	if err != nil {
		return fmt.Errorf("capture payment: %w", err)
	}
	switch p.status {
	case "CAPTURED":
		return nil
	case "AUTHORIZED":
	case "VOIDED":
		return voided()
	default:
		return temporal.NewNonRetryableApplicationError("payment is "+p.status+", not authorized", order.ErrInvalidRequest, nil)
	}
	err = a.provider.Capture(ctx, p.authorizationID, p.amountCents)
	var decline *DeclineError
	if errors.As(err, &decline) {
		if _, err := a.db.Exec(ctx, `UPDATE payments.payments SET decline_code = $2, updated_at = now() WHERE order_id = $1`, id, decline.Code); err != nil {
			return fmt.Errorf("capture payment: record decline: %w", err)
		}
		log.Info("capture declined", zap.String("code", decline.Code))
		return temporal.NewNonRetryableApplicationError("capture declined", order.ErrCaptureDeclined, nil)
	}
	if err != nil {
		log.Warn("payment provider failed; will retry", zap.Error(err))
		return temporal.NewApplicationError("payment provider failed: "+err.Error(), "ProviderError")
	}
	if _, err := a.db.Exec(ctx, `UPDATE payments.payments SET status = 'CAPTURED', updated_at = now() WHERE order_id = $1 AND status = 'AUTHORIZED'`, id); err != nil {
		return fmt.Errorf("capture payment: record capture: %w", err)
	}
	log.Info("payment captured")
	return nil
}

// VoidPayment releases the order's authorization. Voiding twice, or an
// order that was never authorized, changes nothing; a void that comes before
// its authorization leaves a VOIDED row that refuses the late authorization.
// A captured payment cannot be voided (that is a refund): a non-retryable error.
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
		log.Info("void before any authorization: marked")
		return nil
	}
	err = pgx.BeginFunc(ctx, a.db, func(tx pgx.Tx) error {
		var status string
		var authID *string
		if err := tx.QueryRow(ctx, `SELECT status, authorization_id FROM payments.payments WHERE order_id = $1 FOR UPDATE`, id).Scan(&status, &authID); err != nil {
			return err
		}
		switch status {
		case "VOIDED", "DECLINED":
			return nil
		case "CAPTURED":
			return temporal.NewNonRetryableApplicationError("payment was captured; it needs a refund, not a void", order.ErrInvalidRequest, nil)
		case "AUTHORIZED":
			if err := a.provider.Void(ctx, *authID); err != nil {
				return temporal.NewApplicationError("payment provider failed: "+err.Error(), "ProviderError")
			}
		}
		// PENDING: the authorization in flight will see VOIDED and void itself.
		_, err := tx.Exec(ctx, `UPDATE payments.payments SET status = 'VOIDED', updated_at = now() WHERE order_id = $1`, id)
		return err
	})
	if err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			return err
		}
		return fmt.Errorf("void payment: %w", err)
	}
	log.Info("payment voided")
	return nil
}

type paymentRow struct {
	status          string
	authorizationID string
	declineCode     string
	amountCents     int64
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
