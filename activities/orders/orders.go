// Package orders is the order service. It owns the orders schema (orders,
// order_lines, idempotency_keys) and writes all of its SQL:
//
//   - Store records the orders the gateway accepts (PENDING, seq 1, with
//     their idempotency keys), reads them back for the API, and records
//     each transition of an order's saga (RecordStatus), appending the
//     matching event to the outbox (package outbox) in the same
//     transaction.
//   - Activities holds the order worker's local activity, RecordStatus.
//   - Starter runs the accepted orders whose workflow was never started.
//   - Repair is the operator's tool that finishes the compensation of an
//     order whose workflow ended without it, through the payment and
//     product services.
package orders

import (
	"context"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// Recorder is what RecordStatus needs of the orders schema (a *Store).
type Recorder interface {
	RecordStatus(ctx context.Context, rec order.StatusRecord) error
}

// Activities are the order worker's activities. Register the struct: each
// exported method is an activity declared in package order, under its
// method name.
type Activities struct {
	store Recorder
	log   *zap.Logger
}

// NewActivities returns the activities over store.
func NewActivities(store Recorder, log *zap.Logger) *Activities {
	return &Activities{store: store, log: log}
}

// RecordStatus writes one transition: the order_events row (order_id, seq)
// and the orders row, in one transaction. Called twice, it writes once.
func (a *Activities) RecordStatus(ctx context.Context, rec order.StatusRecord) error {
	if _, err := uuid.Parse(rec.OrderID); err != nil || rec.Seq < 2 || rec.Status == "" {
		return temporal.NewNonRetryableApplicationError("invalid status record", order.ErrInvalidRequest, nil)
	}
	if err := a.store.RecordStatus(ctx, rec); err != nil {
		a.log.Warn("record status failed; will retry", zap.String("order_id", rec.OrderID), zap.Int("seq", rec.Seq), zap.Error(err))
		return err
	}
	return nil
}
