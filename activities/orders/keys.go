package orders

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ordersaga/ordersaga/internal/apperr"
)

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
