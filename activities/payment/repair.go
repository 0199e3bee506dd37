package payment

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// Operator is what `ordersaga repair` asks of the payment service: the
// activities' own VoidPayment, and the state of a capture. It is a type
// apart from Activities because the payment worker registers every
// exported method of Activities as an activity, and CaptureState is not one.
type Operator struct {
	*Activities
}

// NewOperator returns the payment service for an operator's repair.
func NewOperator(db *pgxpool.Pool, provider Provider, log *zap.Logger) *Operator {
	return &Operator{Activities: New(db, provider, log)}
}

// CaptureState tells a repair what it must know before it voids an order's
// payment: whether the payment was captured (it then needs a refund, not a
// void), and, while a capture call may still take effect at the provider,
// until when (zero otherwise). It changes nothing.
func (o *Operator) CaptureState(ctx context.Context, orderID uuid.UUID) (captured bool, inFlightUntil time.Time, err error) {
	rec, err := Lookup(ctx, o.db, orderID)
	if err != nil {
		return false, time.Time{}, err
	}
	return rec.Status == "CAPTURED", rec.CaptureInFlightUntil, nil
}
