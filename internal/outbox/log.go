package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersaga/ordersaga/internal/apperr"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// Log reads the outbox: an order's events for replays and for GET
// /orders/{id}/events, and the relay's progress for status pages. It
// writes nothing. Build it with NewLog.
type Log struct {
	db *pgxpool.Pool
}

// NewLog returns a Log on the orders database.
func NewLog(db *pgxpool.Pool) *Log { return &Log{db: db} }

// Events returns the order's events after afterSeq, in seq order; none for
// an order that has no events after it, or no events at all.
func (l *Log) Events(ctx context.Context, orderID uuid.UUID, afterSeq int) ([]order.OrderEvent, error) {
	rows, err := l.db.Query(ctx, `SELECT order_id, customer_id, seq, status, reason, total_cents, occurred_at
		FROM orders.order_events WHERE order_id = $1 AND seq > $2 ORDER BY seq`, orderID, afterSeq)
	if err != nil {
		return nil, fmt.Errorf("read the events of order %s: %w", orderID, err)
	}
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.OrderEvent, error) {
		var e order.OrderEvent
		err := r.Scan(&e.OrderID, &e.CustomerID, &e.Seq, &e.Status, &e.Reason, &e.TotalCents, &e.OccurredAt)
		return e.Complete(), err
	})
	if err != nil {
		return nil, fmt.Errorf("read the events of order %s: %w", orderID, err)
	}
	return events, nil
}

// Owner returns the customer who placed the order, as its events record
// it: the first is written with the order, in one transaction. An unknown
// order is an apperr.NotFound.
func (l *Log) Owner(ctx context.Context, orderID uuid.UUID) (uuid.UUID, error) {
	var owner uuid.UUID
	err := l.db.QueryRow(ctx, `SELECT customer_id FROM orders.order_events WHERE order_id = $1 ORDER BY seq LIMIT 1`, orderID).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, apperr.New(apperr.NotFound, "order not found")
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("look up the owner of order %s: %w", orderID, err)
	}
	return owner, nil
}

// Ping checks the orders database.
func (l *Log) Ping(ctx context.Context) error { return l.db.Ping(ctx) }

// Lag returns how many events wait for the relay and the age of the
// oldest of them.
func (l *Log) Lag(ctx context.Context) (int64, time.Duration, error) { return lag(ctx, l.db) }

// lag is Log.Lag, which the relay also reports as metrics.
func lag(ctx context.Context, db *pgxpool.Pool) (int64, time.Duration, error) {
	var n int64
	var age float64
	err := db.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(occurred_at)), 0)::float8
		FROM orders.order_events WHERE published_at IS NULL`).Scan(&n, &age)
	if err != nil {
		return 0, 0, fmt.Errorf("measure the outbox lag: %w", err)
	}
	return n, time.Duration(age * float64(time.Second)), nil
}

// RelayStatus says whether a relay is active (a session holds the relay's
// advisory lock), and when a relay last published.
func (l *Log) RelayStatus(ctx context.Context) (active bool, lastPublished *time.Time, err error) {
	// A bigint advisory lock shows in pg_locks as classid (high 32 bits) and objid (low 32 bits).
	err = l.db.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
				AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1),
			(SELECT max(published_at) FROM orders.order_events)`, lockKey).Scan(&active, &lastPublished)
	if err != nil {
		return false, nil, fmt.Errorf("read the relay's status: %w", err)
	}
	return active, lastPublished, nil
}
