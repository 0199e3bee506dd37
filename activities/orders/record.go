package orders

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ordersaga/ordersaga/internal/outbox"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// RecordStatus records one transition in one transaction: the event
// (order_id, seq) in the outbox, and the order row unless it already shows
// a later seq. Recording the same transition twice changes nothing.
func (s *Store) RecordStatus(ctx context.Context, rec order.StatusRecord) error {
	id, err := uuid.Parse(rec.OrderID)
	if err != nil {
		return fmt.Errorf("record status: order id: %w", err)
	}
	customer, err := uuid.Parse(rec.CustomerID)
	if err != nil {
		return fmt.Errorf("record status: customer id: %w", err)
	}
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		added, err := outbox.Append(ctx, tx, order.OrderEvent{OrderID: id, CustomerID: customer, Seq: rec.Seq, Status: rec.Status,
			Reason: rec.Reason, TotalCents: rec.TotalCents, OccurredAt: rec.OccurredAt})
		if err != nil {
			return fmt.Errorf("record status %s: %w", rec.Status, err)
		}
		if !added {
			return nil // recorded before
		}
		if _, err := tx.Exec(ctx, `UPDATE orders.orders SET status = $2, reason = $3, last_seq = $4, updated_at = $5
			WHERE id = $1 AND last_seq < $4`, id, string(rec.Status), string(rec.Reason), rec.Seq, rec.OccurredAt); err != nil {
			return fmt.Errorf("record status %s: order: %w", rec.Status, err)
		}
		return nil
	})
}
