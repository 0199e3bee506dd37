package inventory

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The stock ledger. Every change of a catalog.stock row (a reservation, a
// sale, a release, an admin adjustment, a new product's or the demo
// catalogue's initial stock) goes through move or open below, which apply it
// and append the catalog.stock_movements row that accounts for it in one
// statement. So Σ on_hand_delta per (sku, warehouse) is on_hand and
// Σ reserved_delta is reserved, whoever made the change.

// kind says why a stock row changed: the ledger's kind column.
type kind string

const (
	kindInitial kind = "initial" // a new stock row's first units
	kindAdjust  kind = "adjust"  // an admin's count, damage, restock
	kindReserve kind = "reserve" // held for an order
	kindCommit  kind = "commit"  // sold: an order's held units leave
	kindRelease kind = "release" // an order's held units come back
)

// movement is one change of one stock row, and its ledger entry.
type movement struct {
	sku, warehouse string
	// onHand and reserved are added to the row's on_hand and reserved.
	onHand, reserved int
	kind             kind
	reason           string
	// orderID is the order the change was made for; nil for changes that no
	// order made (admin, seed).
	orderID *uuid.UUID
	actor   string
	// lockProduct makes the statement take the sku's products row FOR NO
	// KEY UPDATE before the stock row, and touch the product's updated_at
	// with the change: an admin change that holds no lock yet keeps the
	// global lock order (see the package comment) in one round trip.
	lockProduct bool
}

// dbtx is what the ledger writes through: the caller's transaction, or the
// pool for a change that is one statement on its own.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// The statements. Each takes a movement as $1 sku, $2 warehouse, $3 and
// $4 the on_hand and reserved deltas, $5 kind, $6 reason, $7 order id and
// $8 actor, changes the stock row in a CTE s that returns it, and appends
// the movement for each row s returns: a change that is refused writes
// nothing.
const (
	// appendSQL is the ledger's one insert.
	appendSQL = `INSERT INTO catalog.stock_movements (sku, warehouse, on_hand_delta, reserved_delta, kind, reason, order_id, actor)
		SELECT sku, warehouse, $3, $4, $5, $6, $7, $8 FROM s`

	// moveCTEs moves the row only if it stays within 0 <= reserved <=
	// on_hand, the constraint that forbids overselling. The condition is
	// evaluated on the newest version of the row after waiting for its
	// lock (READ COMMITTED), so no interleaving can break it. s refers to
	// the products CTE p, so that p's lock, if it takes one, comes first.
	moveCTEs = `s AS (
			UPDATE catalog.stock SET on_hand = on_hand + $3, reserved = reserved + $4, updated_at = now()
			WHERE sku = (SELECT sku FROM p) AND warehouse = $2
				AND on_hand + $3 >= 0 AND reserved + $4 >= 0 AND on_hand + $3 >= reserved + $4
			RETURNING sku, warehouse
		), l AS (` + appendSQL + `)`

	moveSQL = `WITH p AS (SELECT $1::text AS sku), ` + moveCTEs + `
		SELECT EXISTS (SELECT 1 FROM s)`

	moveLockingProductSQL = `WITH p AS (
			SELECT sku FROM catalog.products WHERE sku = $1 FOR NO KEY UPDATE
		), ` + moveCTEs + `, u AS (
			UPDATE catalog.products SET updated_at = now() WHERE sku IN (SELECT sku FROM s)
		)
		SELECT EXISTS (SELECT 1 FROM s)`

	openSQL = `WITH s AS (
			INSERT INTO catalog.stock (sku, warehouse, on_hand, reserved) VALUES ($1, $2, $3, $4)
			RETURNING sku, warehouse
		) ` + appendSQL
)

// move applies m to its existing stock row and appends m to the ledger. It
// reports false, having written nothing, when the row does not exist (with
// lockProduct, also when the product does not) or would leave
// 0 <= reserved <= on_hand.
func move(ctx context.Context, db dbtx, m movement) (bool, error) {
	q := moveSQL
	if m.lockProduct {
		q = moveLockingProductSQL
	}
	var moved bool
	err := db.QueryRow(ctx, q, m.sku, m.warehouse, m.onHand, m.reserved, string(m.kind), m.reason, m.orderID, m.actor).Scan(&moved)
	if err != nil {
		return false, fmt.Errorf("move stock of %s in %s: %w", m.sku, m.warehouse, err)
	}
	return moved, nil
}

// open creates the stock row of m's sku in m's warehouse with m's units,
// and appends m to the ledger. A row that exists already is the unique
// violation (SQLSTATE 23505) in the returned error's chain; the caller says
// what that means to it. It does not lock or touch the products row.
func open(ctx context.Context, db dbtx, m movement) error {
	_, err := db.Exec(ctx, openSQL, m.sku, m.warehouse, m.onHand, m.reserved, string(m.kind), m.reason, m.orderID, m.actor)
	if err != nil {
		return fmt.Errorf("open stock of %s in %s: %w", m.sku, m.warehouse, err)
	}
	return nil
}
