package orders

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ordersaga/ordersaga/internal/apperr"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// An order's workflow was never started while the order is still as the
// gateway recorded it (PENDING, seq 1) and no workflow is known to exist.
// An order that has moved past PENDING has a workflow, or had one: it is
// never started again, even if its workflow_started_at was never set,
// because Temporal forgets a closed workflow after its retention and
// starting it again would run the order twice.

// Unstarted returns up to limit orders accepted more than grace ago whose
// workflow was never started, oldest first, starting after the position
// after (nil: from the oldest). It also returns the position of the last
// order returned, to pass as after for the next page: an order that a
// caller skips is then not returned again in the same pass.
func (s *Store) Unstarted(ctx context.Context, grace time.Duration, after *Cursor, limit int, t order.Timeouts) ([]order.Input, *Cursor, error) {
	var afterAt time.Time
	var afterID uuid.UUID
	if after != nil {
		afterAt, afterID = after.CreatedAt, after.ID
	}
	rows, err := s.db.Query(ctx, `SELECT o.id, o.customer_id, o.payment_method, o.currency, o.created_at, l.sku, l.name, l.quantity, l.unit_price_cents
		FROM (SELECT * FROM orders.orders
		      WHERE workflow_started_at IS NULL AND status = $5 AND last_seq = 1
		        AND created_at < now() - $1::interval AND (created_at, id) > ($3, $4)
		      ORDER BY created_at, id LIMIT $2) o
		JOIN orders.order_lines l ON l.order_id = o.id
		ORDER BY o.created_at, o.id, l.line_no`, grace, limit, afterAt, afterID, string(order.Pending))
	if err != nil {
		return nil, nil, fmt.Errorf("find unstarted orders: %w", err)
	}
	defer rows.Close()
	var out []order.Input
	var last *Cursor
	for rows.Next() {
		var id, customer uuid.UUID
		var method, currency string
		var created time.Time
		var l order.Line
		if err := rows.Scan(&id, &customer, &method, &currency, &created, &l.SKU, &l.Name, &l.Quantity, &l.UnitPriceCents); err != nil {
			return nil, nil, fmt.Errorf("find unstarted orders: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].OrderID != id.String() {
			out = append(out, NewOrder{ID: id, CustomerID: customer, PaymentMethod: method, Currency: currency}.Input(t))
			last = &Cursor{CreatedAt: created, ID: id}
		}
		cur := &out[len(out)-1]
		cur.Lines = append(cur.Lines, l)
		cur.TotalCents += l.UnitPriceCents * int64(l.Quantity)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("find unstarted orders: %w", err)
	}
	return out, last, nil
}

// UnstartedInput returns the workflow input of a recorded order, rebuilt
// from its stored lines and prices, and true if its workflow was never
// started. For any other order it returns false: its workflow exists or
// existed, and starting one now could run the order a second time.
func (s *Store) UnstartedInput(ctx context.Context, id uuid.UUID, t order.Timeouts) (order.Input, bool, error) {
	var unstarted bool
	err := s.db.QueryRow(ctx, `SELECT workflow_started_at IS NULL AND status = $2 AND last_seq = 1 FROM orders.orders WHERE id = $1`,
		id, string(order.Pending)).Scan(&unstarted)
	if errors.Is(err, pgx.ErrNoRows) {
		return order.Input{}, false, apperr.New(apperr.NotFound, "order not found")
	}
	if err != nil {
		return order.Input{}, false, fmt.Errorf("look up whether the workflow was started: %w", err)
	}
	if !unstarted {
		return order.Input{}, false, nil
	}
	in, err := s.input(ctx, id, t)
	if err != nil {
		return order.Input{}, false, err
	}
	return in, true, nil
}

// MarkStarted notes that the workflow of orderID exists.
func (s *Store) MarkStarted(ctx context.Context, orderID string) error {
	_, err := s.db.Exec(ctx, `UPDATE orders.orders SET workflow_started_at = now() WHERE id = $1 AND workflow_started_at IS NULL`, orderID)
	if err != nil {
		return fmt.Errorf("mark workflow started: %w", err)
	}
	return nil
}
