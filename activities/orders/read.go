package orderstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ordersaga/ordersaga/internal/apperr"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// Order is an order as API.md shows it.
type Order struct {
	ID            uuid.UUID `json:"id"`
	CustomerID    uuid.UUID `json:"customer_id"`
	Status        string    `json:"status"`
	Reason        string    `json:"reason"`
	Items         []Item    `json:"items"`
	TotalCents    int64     `json:"total_cents"`
	Currency      string    `json:"currency"`
	PaymentMethod string    `json:"payment_method"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Item is one line of an Order.
type Item struct {
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
	LineTotalCents int64  `json:"line_total_cents"`
}

// Event is one status transition, as the outbox, Kafka and the websocket carry it.
type Event struct {
	EventID    string    `json:"event_id"`
	Type       string    `json:"type"`
	OrderID    uuid.UUID `json:"order_id"`
	CustomerID uuid.UUID `json:"customer_id"`
	Seq        int       `json:"seq"`
	Status     string    `json:"status"`
	Reason     string    `json:"reason"`
	TotalCents int64     `json:"total_cents"`
	OccurredAt time.Time `json:"occurred_at"`
}

// EventType is the type of every order event.
const EventType = "order.status_changed"

// Get returns one order with its items.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (Order, error) {
	orders, err := s.load(ctx, `WHERE o.id = $1`, id)
	if err != nil {
		return Order{}, err
	}
	if len(orders) == 0 {
		return Order{}, apperr.New(apperr.NotFound, "order not found")
	}
	return orders[0], nil
}

// ListFilter selects a page of orders, newest first.
type ListFilter struct {
	// CustomerID limits the list to one customer's orders; uuid.Nil lists all.
	CustomerID uuid.UUID
	Status     string
	Limit      int
	// After is the (created_at, id) of the last order of the previous page.
	After *Cursor
}

// Cursor is a position in the newest-first order of orders.
type Cursor struct {
	CreatedAt time.Time `json:"t"`
	ID        uuid.UUID `json:"i"`
}

// List returns a page of orders and the cursor of the next page, if any.
func (s *Store) List(ctx context.Context, f ListFilter) ([]Order, *Cursor, error) {
	where := "WHERE true"
	args := []any{}
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.CustomerID != uuid.Nil {
		where += " AND o.customer_id = " + arg(f.CustomerID)
	}
	if f.Status != "" {
		where += " AND o.status = " + arg(f.Status)
	}
	if f.After != nil {
		where += fmt.Sprintf(" AND (o.created_at, o.id) < (%s, %s)", arg(f.After.CreatedAt), arg(f.After.ID))
	}
	orders, err := s.load(ctx, where+" ORDER BY o.created_at DESC, o.id DESC LIMIT "+arg(f.Limit+1), args...)
	if err != nil {
		return nil, nil, err
	}
	if len(orders) <= f.Limit {
		return orders, nil, nil
	}
	orders = orders[:f.Limit]
	last := orders[len(orders)-1]
	return orders, &Cursor{CreatedAt: last.CreatedAt, ID: last.ID}, nil
}

// load selects orders by a clause over orders.orders o, then their items.
func (s *Store) load(ctx context.Context, clause string, args ...any) ([]Order, error) {
	rows, err := s.db.Query(ctx, `SELECT o.id, o.customer_id, o.status, o.reason, o.total_cents, o.currency, o.payment_method, o.created_at, o.updated_at
		FROM orders.orders o `+clause, args...)
	if err != nil {
		return nil, fmt.Errorf("load orders: %w", err)
	}
	orders, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Order, error) {
		var o Order
		err := r.Scan(&o.ID, &o.CustomerID, &o.Status, &o.Reason, &o.TotalCents, &o.Currency, &o.PaymentMethod, &o.CreatedAt, &o.UpdatedAt)
		o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
		o.Items = []Item{}
		return o, err
	})
	if err != nil || len(orders) == 0 {
		return orders, err
	}
	ids := make([]uuid.UUID, len(orders))
	idx := map[uuid.UUID]int{}
	for i, o := range orders {
		ids[i] = o.ID
		idx[o.ID] = i
	}
	lrows, err := s.db.Query(ctx, `SELECT order_id, sku, name, quantity, unit_price_cents, line_total_cents FROM orders.order_lines
		WHERE order_id = ANY($1) ORDER BY order_id, line_no`, ids)
	if err != nil {
		return nil, fmt.Errorf("load order lines: %w", err)
	}
	defer lrows.Close()
	for lrows.Next() {
		var id uuid.UUID
		var it Item
		if err := lrows.Scan(&id, &it.SKU, &it.Name, &it.Quantity, &it.UnitPriceCents, &it.LineTotalCents); err != nil {
			return nil, err
		}
		orders[idx[id]].Items = append(orders[idx[id]].Items, it)
	}
	return orders, lrows.Err()
}

// Events returns the order's events after afterSeq, in seq order.
func (s *Store) Events(ctx context.Context, orderID uuid.UUID, afterSeq int) ([]Event, error) {
	rows, err := s.db.Query(ctx, `SELECT order_id, customer_id, seq, status, reason, total_cents, occurred_at
		FROM orders.order_events WHERE order_id = $1 AND seq > $2 ORDER BY seq`, orderID, afterSeq)
	if err != nil {
		return nil, fmt.Errorf("load events: %w", err)
	}
	return pgx.CollectRows(rows, ScanEvent)
}

// ScanEvent reads (order_id, customer_id, seq, status, reason, total_cents, occurred_at).
func ScanEvent(r pgx.CollectableRow) (Event, error) {
	var e Event
	err := r.Scan(&e.OrderID, &e.CustomerID, &e.Seq, &e.Status, &e.Reason, &e.TotalCents, &e.OccurredAt)
	return Complete(e), err
}

// Complete fills an event's derived fields: its type, its event_id, UTC time.
func Complete(e Event) Event {
	e.OccurredAt = e.OccurredAt.UTC()
	e.Type = EventType
	e.EventID = fmt.Sprintf("%s:%d", e.OrderID, e.Seq)
	return e
}

// Keyed is the outcome of CreateWithKey.
type Keyed struct {
	// Existing is set when the key had been used already with the same request.
	Existing bool
}

// CreateWithKey records n as PENDING together with the customer's
// idempotency key, in one transaction. A key used before with the same
// request hash returns Existing and writes nothing; with another hash it is
// IdempotencyKeyReused.
func (s *Store) CreateWithKey(ctx context.Context, n NewOrder, key string, requestHash [sha256.Size]byte) (Keyed, error) {
	var out Keyed
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		err := insertPending(ctx, tx, n)
		if errors.Is(err, ErrExists) {
			// The id is derived from (customer, key): the key was used. The
			// insert waited for that transaction, so its key row is visible.
			_, found, err := findByKey(ctx, tx, n.CustomerID, key, requestHash)
			if err == nil && !found {
				err = fmt.Errorf("look up idempotency key: order %s exists without its key", n.ID)
			}
			out.Existing = err == nil
			return err
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO orders.idempotency_keys (customer_id, key, request_hash, order_id) VALUES ($1, $2, $3, $4)`,
			n.CustomerID, key, requestHash[:], n.ID)
		if err != nil {
			return fmt.Errorf("record idempotency key: %w", err)
		}
		return nil
	})
	return out, err
}

// FindByKey returns the order that the customer recorded with an
// Idempotency-Key, and true; false when the key was never used. A key used
// with another request (another requestHash) is IdempotencyKeyReused.
//
// The gateway asks before it prices anything, so that a retry replays the
// stored order whatever the catalogue says today.
func (s *Store) FindByKey(ctx context.Context, customerID uuid.UUID, key string, requestHash [sha256.Size]byte) (uuid.UUID, bool, error) {
	return findByKey(ctx, s.db, customerID, key, requestHash)
}

func findByKey(ctx context.Context, q querier, customerID uuid.UUID, key string, requestHash [sha256.Size]byte) (uuid.UUID, bool, error) {
	var id uuid.UUID
	var stored []byte
	err := q.QueryRow(ctx, `SELECT order_id, request_hash FROM orders.idempotency_keys WHERE customer_id = $1 AND key = $2`, customerID, key).Scan(&id, &stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, false, nil
	}
	if err != nil {
		return uuid.Nil, false, fmt.Errorf("look up idempotency key: %w", err)
	}
	if !bytes.Equal(stored, requestHash[:]) {
		return uuid.Nil, false, apperr.New(apperr.IdempotencyKeyReused, "this Idempotency-Key was used with a different request")
	}
	return id, true, nil
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

// Input rebuilds the workflow input of a recorded order from its stored
// lines and prices.
func (s *Store) Input(ctx context.Context, id uuid.UUID, t order.Timeouts) (order.Input, error) {
	o, err := s.Get(ctx, id)
	if err != nil {
		return order.Input{}, err
	}
	n := NewOrder{ID: o.ID, CustomerID: o.CustomerID, PaymentMethod: o.PaymentMethod, Currency: o.Currency}
	for _, it := range o.Items {
		n.Lines = append(n.Lines, order.Line{SKU: it.SKU, Name: it.Name, Quantity: it.Quantity, UnitPriceCents: it.UnitPriceCents})
	}
	return n.Input(t), nil
}

// UnstartedInput returns the workflow input of a recorded order (Input) and
// true if its workflow was never started: it is still as the gateway
// recorded it (PENDING, seq 1) and no workflow is known to exist. For any
// other order it returns false: its workflow exists or existed, and since
// Temporal forgets a closed workflow after its retention, starting one now
// could run the order a second time.
func (s *Store) UnstartedInput(ctx context.Context, id uuid.UUID, t order.Timeouts) (order.Input, bool, error) {
	var unstarted bool
	err := s.db.QueryRow(ctx, `SELECT workflow_started_at IS NULL AND status = 'PENDING' AND last_seq = 1 FROM orders.orders WHERE id = $1`, id).Scan(&unstarted)
	if errors.Is(err, pgx.ErrNoRows) {
		return order.Input{}, false, apperr.New(apperr.NotFound, "order not found")
	}
	if err != nil {
		return order.Input{}, false, fmt.Errorf("look up whether the workflow was started: %w", err)
	}
	if !unstarted {
		return order.Input{}, false, nil
	}
	in, err := s.Input(ctx, id, t)
	if err != nil {
		return order.Input{}, false, err
	}
	return in, true, nil
}

// OutboxLag returns how many events wait for the relay and the age of the oldest.
func (s *Store) OutboxLag(ctx context.Context) (int64, time.Duration, error) {
	var n int64
	var age float64
	err := s.db.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(occurred_at)), 0)::float8
		FROM orders.order_events WHERE published_at IS NULL`).Scan(&n, &age)
	return n, time.Duration(age * float64(time.Second)), err
}

// Owner returns the customer who placed the order.
func (s *Store) Owner(ctx context.Context, id uuid.UUID) (uuid.UUID, error) {
	var owner uuid.UUID
	err := s.db.QueryRow(ctx, `SELECT customer_id FROM orders.orders WHERE id = $1`, id).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, apperr.New(apperr.NotFound, "order not found")
	}
	return owner, err
}

// RelayStatus says whether a session holds the relay's advisory lock
// (lockKey), and when the relay last published.
func (s *Store) RelayStatus(ctx context.Context, lockKey int64) (active bool, lastPublished *time.Time, err error) {
	// A bigint advisory lock shows in pg_locks as classid (high 32 bits) and objid (low 32 bits).
	err = s.db.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
				AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1),
			(SELECT max(published_at) FROM orders.order_events)`, lockKey).Scan(&active, &lastPublished)
	return active, lastPublished, err
}
