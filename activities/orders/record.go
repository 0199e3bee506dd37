package orders

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ordersaga/ordersaga/internal/outbox"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// NewOrder is an order the gateway accepted: priced, validated, not yet run.
type NewOrder struct {
	ID            uuid.UUID
	CustomerID    uuid.UUID
	Lines         []order.Line
	PaymentMethod string
	Currency      string
}

// Total is the sum of the lines.
func (n NewOrder) Total() int64 {
	var t int64
	for _, l := range n.Lines {
		t += l.UnitPriceCents * int64(l.Quantity)
	}
	return t
}

// Input is the workflow input for n.
func (n NewOrder) Input(t order.Timeouts) order.Input {
	return order.Input{
		OrderID: n.ID.String(), CustomerID: n.CustomerID.String(), Lines: n.Lines,
		PaymentMethod: n.PaymentMethod, TotalCents: n.Total(), Currency: n.Currency, StepTimeout: t.Step, UndoTimeout: t.Undo,
	}
}

// ErrExists says an order with that id is recorded already.
var ErrExists = errors.New("order exists")

// CreatePending records n as PENDING in one transaction: the order row, its
// lines and its first event (seq 1). Once it returns, the order is durable
// and readable, and the starter will run it if nobody else does.
func (s *Store) CreatePending(ctx context.Context, n NewOrder) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		return insertPending(ctx, tx, n)
	})
}

func insertPending(ctx context.Context, tx pgx.Tx, n NewOrder) error {
	var created time.Time
	err := tx.QueryRow(ctx, `INSERT INTO orders.orders (id, customer_id, status, total_cents, currency, payment_method, last_seq)
		VALUES ($1, $2, $3, $4, $5, $6, 1) ON CONFLICT (id) DO NOTHING RETURNING created_at`,
		n.ID, n.CustomerID, string(order.Pending), n.Total(), n.Currency, n.PaymentMethod).Scan(&created)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrExists
	}
	if err != nil {
		return fmt.Errorf("record order: %w", err)
	}
	// Every line in one statement: a round trip per line was most of the
	// transaction's time.
	skus, names := make([]string, len(n.Lines)), make([]string, len(n.Lines))
	quantities, prices := make([]int32, len(n.Lines)), make([]int64, len(n.Lines))
	for i, l := range n.Lines {
		if l.Quantity < 1 || l.Quantity > math.MaxInt32 {
			return fmt.Errorf("record order line %s: quantity %d out of range", l.SKU, l.Quantity)
		}
		skus[i], names[i], quantities[i], prices[i] = l.SKU, l.Name, int32(l.Quantity), l.UnitPriceCents
	}
	if _, err := tx.Exec(ctx, `INSERT INTO orders.order_lines (order_id, line_no, sku, name, quantity, unit_price_cents, line_total_cents)
		SELECT $1, l.no, l.sku, l.name, l.quantity, l.price, l.quantity * l.price
		FROM unnest($2::text[], $3::text[], $4::integer[], $5::bigint[]) WITH ORDINALITY AS l(sku, name, quantity, price, no)`,
		n.ID, skus, names, quantities, prices); err != nil {
		return fmt.Errorf("record order lines: %w", err)
	}
	// The first event is the order's creation: it happened when the row did.
	if _, err := outbox.Append(ctx, tx, order.OrderEvent{OrderID: n.ID, CustomerID: n.CustomerID, Seq: 1, Status: order.Pending,
		TotalCents: n.Total(), OccurredAt: created}); err != nil {
		return fmt.Errorf("record order: %w", err)
	}
	return nil
}

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
	// One statement: the event, its notification and the order's row, or
	// nothing if the event is there already (a retried transition).
	_, err = outbox.AppendWith(ctx, s.db, order.OrderEvent{OrderID: id, CustomerID: customer, Seq: rec.Seq, Status: rec.Status,
		Reason: rec.Reason, TotalCents: rec.TotalCents, OccurredAt: rec.OccurredAt},
		outbox.Update{Table: "orders.orders", Set: "status = $4, reason = $5, last_seq = $2, updated_at = $7", Where: "id = $1 AND last_seq < $2"})
	if err != nil {
		return fmt.Errorf("record status %s: %w", rec.Status, err)
	}
	return nil
}
