// Package orders holds the order worker's local activity that records an
// order's status transitions in the read model and the outbox.
package orders

import (
	"context"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// Recorder is what RecordStatus needs of the orders schema.
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

// New returns the activities over store.
func New(store Recorder, log *zap.Logger) *Activities {
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
