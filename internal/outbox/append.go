package outbox

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// channel is the Postgres channel notified, at commit, whenever an event
// is appended; the active relay listens on it instead of polling.
const channel = "orders_outbox"

// Append adds e to the outbox inside the caller's transaction tx, so that
// the event commits or rolls back with the change it describes, and asks
// the relay to look at the outbox once tx commits. Only e's stored fields
// are used (order, seq, customer, status, reason, total, time); the
// derived ones are filled again when the event is read.
//
// An event is identified by (order_id, seq): appending one that is there
// already changes nothing and returns false, so that a retried transition
// is recorded once.
func Append(ctx context.Context, tx pgx.Tx, e order.OrderEvent) (bool, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO orders.order_events (order_id, seq, customer_id, status, reason, total_cents, occurred_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_id, seq) DO NOTHING`,
		e.OrderID, e.Seq, e.CustomerID, string(e.Status), string(e.Reason), e.TotalCents, e.OccurredAt)
	if err != nil {
		return false, fmt.Errorf("append event %d (%s) of order %s: %w", e.Seq, e.Status, e.OrderID, err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify('`+channel+`', '')`); err != nil {
		return false, fmt.Errorf("notify the outbox relay: %w", err)
	}
	return true, nil
}
