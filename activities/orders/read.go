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

// Order is an order as API.md shows it.
type Order struct {
	ID            uuid.UUID    `json:"id"`
	CustomerID    uuid.UUID    `json:"customer_id"`
	Status        order.Status `json:"status"`
	Reason        order.Reason `json:"reason"`
	Items         []Item       `json:"items"`
	TotalCents    int64        `json:"total_cents"`
	Currency      string       `json:"currency"`
	PaymentMethod string       `json:"payment_method"`
	CreatedAt     time.Time    `json:"created_at"`
	UpdatedAt     time.Time    `json:"updated_at"`
}

// Item is one line of an Order.
type Item struct {
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
	LineTotalCents int64  `json:"line_total_cents"`
}

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
	// Status limits the list to orders in that status; empty lists all.
	Status order.Status
	Limit  int
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
		where += " AND o.status = " + arg(string(f.Status))
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

// input rebuilds the workflow input of a recorded order from its stored
// lines and prices.
func (s *Store) input(ctx context.Context, id uuid.UUID, t order.Timeouts) (order.Input, error) {
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

// lastSeq returns the seq of the order's last recorded transition: its
// events are numbered from 1 without gaps, and the order row keeps the
// highest.
func (s *Store) lastSeq(ctx context.Context, id uuid.UUID) (int, error) {
	var seq int
	err := s.db.QueryRow(ctx, `SELECT last_seq FROM orders.orders WHERE id = $1`, id).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, apperr.New(apperr.NotFound, "order not found")
	}
	if err != nil {
		return 0, fmt.Errorf("read the order's last seq: %w", err)
	}
	return seq, nil
}
