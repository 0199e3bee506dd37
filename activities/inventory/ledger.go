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
// nothing. (The sku's change for the gateways' caches is recorded by the
// table's triggers: see schema/catalog/00003_changes.sql.)
const (
	// appendSQL is the ledger's one insert.
	appendSQL = `INSERT INTO catalog.stock_movements (sku, warehouse, on_hand_delta, reserved_delta, kind, reason, order_id, actor)
		SELECT sku, warehouse, $3, $4, $5, $6, $7, $8 FROM s`

	// moveSQL moves the row only if it stays within 0 <= reserved <=
	// on_hand, the constraint that forbids overselling. The condition is
	// evaluated on the newest version of the row after waiting for its
	// lock (READ COMMITTED), so no interleaving can break it. It locks that
	// one row and no other, so on its own it keeps the global lock order
	// (see the package comment) whatever the caller holds.
	moveSQL = `WITH s AS (
			UPDATE catalog.stock SET on_hand = on_hand + $3, reserved = reserved + $4, updated_at = greatest(updated_at, now())
			WHERE sku = $1 AND warehouse = $2
				AND on_hand + $3 >= 0 AND reserved + $4 >= 0 AND on_hand + $3 >= reserved + $4
			RETURNING sku, warehouse
		), l AS (` + appendSQL + `)
		SELECT EXISTS (SELECT 1 FROM s)`

	openSQL = `WITH s AS (
			INSERT INTO catalog.stock (sku, warehouse, on_hand, reserved) VALUES ($1, $2, $3, $4)
			RETURNING sku, warehouse
		) ` + appendSQL
)

// move applies m to its existing stock row and appends m to the ledger. It
// reports false, having written nothing, when the row does not exist or
// would leave 0 <= reserved <= on_hand.
func move(ctx context.Context, db dbtx, m movement) (bool, error) {
	var moved bool
	err := db.QueryRow(ctx, moveSQL, m.args()...).Scan(&moved)
	if err != nil {
		return false, fmt.Errorf("move stock of %s in %s: %w", m.sku, m.warehouse, err)
	}
	return moved, nil
}

// queueMove adds move's statement for m to batch, to set moved.
func queueMove(batch *pgx.Batch, m movement, moved *bool) {
	batch.Queue(moveSQL, m.args()...).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(moved); err != nil {
			return fmt.Errorf("move stock of %s in %s: %w", m.sku, m.warehouse, err)
		}
		return nil
	})
}

// args are the statements' arguments for m.
func (m movement) args() []any {
	return []any{m.sku, m.warehouse, m.onHand, m.reserved, string(m.kind), m.reason, m.orderID, m.actor}
}

// orderMoves are movements an order's activity makes in one go: each on
// its own stock row, all of one kind, for one order, by one actor.
type orderMoves struct {
	orderID uuid.UUID
	kind    kind
	// rows are the stock rows and their deltas, in the global lock order
	// (sku, then warehouse, byte order), no row twice.
	rows []rowDelta
}

// rowDelta is one stock row's change within orderMoves.
type rowDelta struct {
	sku, warehouse   string
	onHand, reserved int
}

// The statements of queueMoves. lockRowsSQL locks the rows in the global
// lock order (LockRows runs above the sort), so that movesSQL, whose
// update locks its rows in whatever order its plan visits them, waits for
// none: a caller that holds no lock on these rows, or holds them already,
// keeps the lock order either way. movesSQL is moveSQL for several rows:
// it moves each row that stays within 0 <= reserved <= on_hand and appends
// a ledger entry for each row it moved, and returns how many it moved.
const (
	lockRowsSQL = `SELECT 1 FROM catalog.stock st
		JOIN unnest($1::text[], $2::text[]) AS m(sku, warehouse) ON st.sku = m.sku AND st.warehouse = m.warehouse
		ORDER BY st.sku COLLATE "C", st.warehouse COLLATE "C"
		FOR UPDATE OF st`
	movesSQL = `WITH m AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS m(sku, warehouse, on_hand, reserved)
		), s AS (
			UPDATE catalog.stock st SET on_hand = st.on_hand + m.on_hand, reserved = st.reserved + m.reserved,
				updated_at = greatest(st.updated_at, now())
			FROM m
			WHERE st.sku = m.sku AND st.warehouse = m.warehouse
				AND st.on_hand + m.on_hand >= 0 AND st.reserved + m.reserved >= 0
				AND st.on_hand + m.on_hand >= st.reserved + m.reserved
			RETURNING st.sku, st.warehouse, m.on_hand, m.reserved
		), l AS (
			INSERT INTO catalog.stock_movements (sku, warehouse, on_hand_delta, reserved_delta, kind, reason, order_id, actor)
			SELECT sku, warehouse, on_hand, reserved, $5, $6, $7, $8 FROM s
		)
		SELECT count(*) FROM s`
)

// queueMoves adds to batch the statements that apply ms, setting moved to
// the number of rows moved: all of ms.rows, or fewer when a row does not
// exist or would leave its bounds (the caller refuses the whole change
// then, rolling its transaction back). Two statements, one round trip, and
// one firing of the stock table's triggers however many rows move.
func queueMoves(batch *pgx.Batch, ms orderMoves, moved *int) {
	skus := make([]string, len(ms.rows))
	warehouses := make([]string, len(ms.rows))
	onHand := make([]int64, len(ms.rows))
	reserved := make([]int64, len(ms.rows))
	for i, r := range ms.rows {
		skus[i], warehouses[i], onHand[i], reserved[i] = r.sku, r.warehouse, int64(r.onHand), int64(r.reserved)
	}
	batch.Queue(lockRowsSQL, skus, warehouses)
	batch.Queue(movesSQL, skus, warehouses, onHand, reserved, string(ms.kind), string(ms.kind)+" for order", ms.orderID, inventoryActor).
		QueryRow(func(row pgx.Row) error {
			if err := row.Scan(moved); err != nil {
				return fmt.Errorf("%s stock of order %s: %w", ms.kind, ms.orderID, err)
			}
			return nil
		})
}

// open creates the stock row of m's sku in m's warehouse with m's units,
// and appends m to the ledger. A row that exists already is the unique
// violation (SQLSTATE 23505) in the returned error's chain; the caller says
// what that means to it. It does not lock or touch the products row.
func open(ctx context.Context, db dbtx, m movement) error {
	_, err := db.Exec(ctx, openSQL, m.args()...)
	if err != nil {
		return fmt.Errorf("open stock of %s in %s: %w", m.sku, m.warehouse, err)
	}
	return nil
}
