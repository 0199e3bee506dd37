// Package orderstore reads and writes the orders schema: the read model of
// orders and the order_events outbox. The gateway writes new PENDING orders
// through it; the order worker records transitions and finds orders whose
// workflow was never started.
package orderstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// Store is the orders schema.
type Store struct {
	db *pgxpool.Pool
}

// New returns a Store on the orders database.
func New(db *pgxpool.Pool) *Store { return &Store{db: db} }

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

// CreatePendingTx is CreatePending inside the caller's transaction, so the
// gateway can write the idempotency key in the same one.
func (s *Store) CreatePendingTx(ctx context.Context, tx pgx.Tx, n NewOrder) error {
	return insertPending(ctx, tx, n)
}

func insertPending(ctx context.Context, tx pgx.Tx, n NewOrder) error {
	tag, err := tx.Exec(ctx, `INSERT INTO orders.orders (id, customer_id, status, total_cents, currency, payment_method, last_seq)
		VALUES ($1, $2, 'PENDING', $3, $4, $5, 1) ON CONFLICT (id) DO NOTHING`,
		n.ID, n.CustomerID, n.Total(), n.Currency, n.PaymentMethod)
	if err != nil {
		return fmt.Errorf("record order: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrExists
	}
	for i, l := range n.Lines {
		if _, err := tx.Exec(ctx, `INSERT INTO orders.order_lines (order_id, line_no, sku, name, quantity, unit_price_cents, line_total_cents)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, n.ID, i+1, l.SKU, l.Name, l.Quantity, l.UnitPriceCents, l.UnitPriceCents*int64(l.Quantity)); err != nil {
			return fmt.Errorf("record order line: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO orders.order_events (order_id, seq, customer_id, status, total_cents, occurred_at)
		SELECT id, 1, customer_id, 'PENDING', total_cents, created_at FROM orders.orders WHERE id = $1`, n.ID); err != nil {
		return fmt.Errorf("record order event: %w", err)
	}
	return notifyOutbox(ctx, tx)
}

// RecordStatus records one transition in one transaction: the event row
// (order_id, seq) of the outbox, and the order row unless it already shows
// a later seq. Recording the same transition twice changes nothing.
func (s *Store) RecordStatus(ctx context.Context, rec order.StatusRecord) error {
	id, err := uuid.Parse(rec.OrderID)
	if err != nil {
		return fmt.Errorf("record status: order id: %w", err)
	}
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO orders.order_events (order_id, seq, customer_id, status, reason, total_cents, occurred_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_id, seq) DO NOTHING`,
			id, rec.Seq, rec.CustomerID, string(rec.Status), string(rec.Reason), rec.TotalCents, rec.OccurredAt)
		if err != nil {
			return fmt.Errorf("record status %s: event: %w", rec.Status, err)
		}
		if tag.RowsAffected() == 0 {
			return nil // recorded before
		}
		if _, err := tx.Exec(ctx, `UPDATE orders.orders SET status = $2, reason = $3, last_seq = $4, updated_at = $5
			WHERE id = $1 AND last_seq < $4`, id, string(rec.Status), string(rec.Reason), rec.Seq, rec.OccurredAt); err != nil {
			return fmt.Errorf("record status %s: order: %w", rec.Status, err)
		}
		return notifyOutbox(ctx, tx)
	})
}

// Unstarted returns up to limit orders accepted more than grace ago that
// are still as the gateway recorded them (PENDING, seq 1) and whose
// workflow is not known to exist, oldest first, starting after the
// position after (nil: from the oldest). It also returns the position of
// the last order returned, to pass as after for the next page: an order
// that a caller skips is then not returned again in the same pass.
//
// An order that has moved past PENDING has a workflow, or had one: it is
// never returned, even if its workflow_started_at was never set, because
// Temporal forgets a closed workflow after its retention and starting it
// again would run the order twice.
func (s *Store) Unstarted(ctx context.Context, grace time.Duration, after *Cursor, limit int, t order.Timeouts) ([]order.Input, *Cursor, error) {
	var afterAt time.Time
	var afterID uuid.UUID
	if after != nil {
		afterAt, afterID = after.CreatedAt, after.ID
	}
	rows, err := s.db.Query(ctx, `SELECT o.id, o.customer_id, o.payment_method, o.currency, o.created_at, l.sku, l.name, l.quantity, l.unit_price_cents
		FROM (SELECT * FROM orders.orders
		      WHERE workflow_started_at IS NULL AND status = 'PENDING' AND last_seq = 1
		        AND created_at < now() - $1::interval AND (created_at, id) > ($3, $4)
		      ORDER BY created_at, id LIMIT $2) o
		JOIN orders.order_lines l ON l.order_id = o.id
		ORDER BY o.created_at, o.id, l.line_no`, grace, limit, afterAt, afterID)
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

// MarkStarted notes that the workflow of orderID exists.
func (s *Store) MarkStarted(ctx context.Context, orderID string) error {
	_, err := s.db.Exec(ctx, `UPDATE orders.orders SET workflow_started_at = now() WHERE id = $1 AND workflow_started_at IS NULL`, orderID)
	if err != nil {
		return fmt.Errorf("mark workflow started: %w", err)
	}
	return nil
}

// OutboxChannel is the Postgres channel notified, at commit, whenever an
// event is added to the outbox; the relay listens on it instead of polling.
const OutboxChannel = "orders_outbox"

func notifyOutbox(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SELECT pg_notify('`+OutboxChannel+`', '')`); err != nil {
		return fmt.Errorf("notify outbox: %w", err)
	}
	return nil
}
