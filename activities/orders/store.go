package orders

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is the orders schema: orders, order_lines and idempotency_keys.
// Its writes that change an order's status append the matching event to
// the outbox in the same transaction. Build it with NewStore.
type Store struct {
	db *pgxpool.Pool
}

// NewStore returns a Store on the orders database.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db} }

// Ping checks the orders database.
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}
