// Package inventory is the product service: it owns the catalog schema
// (products, their stock per warehouse, reservations and the stock ledger).
// It holds the product worker's activities (reserve stock for an order,
// commit it once paid, release it when the order stops) and the Catalog
// the gateway serves (products, search, admin changes of products and
// stock). Every change of a stock row is written with its
// catalog.stock_movements entry in one place, ledger.go.
//
// Each activity call is one Postgres transaction and idempotent by order
// id: the catalog.reservations row of an order says what was done, so a
// repeated call returns the first outcome and changes nothing. Every stock
// update is conditional, so no interleaving can oversell.
//
// Lock order. Every transaction that writes the catalog (the activities
// and the Catalog) locks rows in one global order: the products rows it
// needs first, sku by sku in byte order, then the stock rows it needs,
// by sku and warehouse in byte order. (A Catalog change of one sku locks
// its products row, then its stock rows; an order's reservation locks all
// its products rows, then all its stock rows.) Byte order is Go's string comparison and
// COLLATE "C" in SQL, so Go and the database agree whatever the database's
// collation. A transaction that only ever waits for rows later in that
// order cannot be part of a deadlock.
//
// Deactivated products are not sold: ReserveStock holds its lines'
// products rows in SHARE mode and refuses an inactive product as out of
// stock, and deactivation (DELETE, or PATCH active=false, which takes the
// products row FOR UPDATE) is refused while any unit is reserved. So no
// unit is ever reserved on an inactive product, and an order accepted
// before its product was deactivated ends REJECTED(out_of_stock) unless it
// already holds its units, in which case it completes normally.
package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// inventoryActor names the inventory activities in the stock ledger.
const inventoryActor = "inventory"

// Activities are the inventory activities. Register the struct: each
// exported method is an activity declared in package order, under its
// method name.
type Activities struct {
	db  *pgxpool.Pool
	log *zap.Logger
}

// New returns the activities on the catalog database.
func New(db *pgxpool.Pool, log *zap.Logger) *Activities {
	return &Activities{db: db, log: log}
}

// ReserveStock holds every line of the order, or none: all lines in one
// transaction. A line that cannot be filled is a non-retryable
// order.ErrOutOfStock error with order.OutOfStockDetails, and the outcome is
// remembered, so a retry answers the same.
func (a *Activities) ReserveStock(ctx context.Context, req order.StockRequest) (order.Reservation, error) {
	id, err := orderID(req.OrderID)
	if err != nil {
		return order.Reservation{}, err
	}
	lines, err := sortedLines(req.Lines)
	if err != nil {
		return order.Reservation{}, err
	}
	log := a.log.With(zap.String("order_id", req.OrderID))

	var res order.Reservation
	var outErr error
	err = pgx.BeginFunc(ctx, a.db, func(tx pgx.Tx) error {
		claimed, stock, err := claimAndLock(ctx, tx, id, lines)
		if err != nil {
			return err
		}
		if !claimed {
			// Seen before (the insert waited for that transaction): answer as then.
			res, outErr, err = previousReservation(ctx, tx, id)
			return err
		}
		// Every row the order can draw on is locked: decide every line
		// before moving any, so that a refusal has nothing to undo.
		allocations, short := allocateAll(lines, stock)
		if short != nil {
			detail, _ := json.Marshal(short)
			if _, err := tx.Exec(ctx, `UPDATE catalog.reservations SET status = 'REJECTED', detail = $2, updated_at = now() WHERE order_id = $1`, id, detail); err != nil {
				return fmt.Errorf("record out of stock: %w", err)
			}
			outErr = outOfStock(*short)
			return nil
		}
		if err := holdAllocations(ctx, tx, id, allocations); err != nil {
			return err
		}
		res = order.Reservation{OrderID: req.OrderID, Allocations: allocations}
		return nil
	})
	if err != nil {
		return order.Reservation{}, fmt.Errorf("reserve stock: %w", err)
	}
	if outErr != nil {
		log.Info("stock reservation refused", zap.Error(outErr))
		return order.Reservation{}, outErr
	}
	log.Info("stock reserved", zap.Int("allocations", len(res.Allocations)))
	return res, nil
}

// skuStock is what a sku offers to a reservation: whether its product is
// for sale, and the available units of each of its warehouses in
// warehouse byte order.
type skuStock struct {
	active    bool
	available []warehouseUnits
}

type warehouseUnits struct {
	warehouse string
	n         int
}

// claimAndLock claims the order's reservation, and locks what the lines
// draw on, in the global lock order: every products row of the lines'
// skus in SHARE mode, then, if they are all for sale, every stock row of
// theirs FOR UPDATE. It returns what each sku has available. SHARE
// conflicts with every lock that changes a products row, so a deactivation
// either committed before this (and active reads false: after waiting,
// READ COMMITTED reads the newest row version) or waits until this
// transaction ends and then sees the reserved units. An order with a
// product that is not for sale locks no stock row, so that it does not
// queue behind other orders while it holds its products rows: shoppers who
// keep ordering an inactive product must not starve the admin who
// reactivates it. A sku with no stock row, or an unknown or inactive sku,
// has nothing available. When the order was claimed before, claimed is
// false and nothing else is returned.
func claimAndLock(ctx context.Context, tx pgx.Tx, id uuid.UUID, lines []order.StockLine) (claimed bool, stock map[string]skuStock, err error) {
	skus := make([]string, len(lines))
	for i, l := range lines {
		skus[i] = l.SKU
	}
	stock = make(map[string]skuStock, len(lines))
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO catalog.reservations (order_id, status) VALUES ($1, 'RESERVED') ON CONFLICT (order_id) DO NOTHING`, id).
		Exec(func(tag pgconn.CommandTag) error {
			claimed = tag.RowsAffected() == 1
			return nil
		})
	// The products rows are locked even when the claim fails: harmless,
	// and it saves a round trip for every first call.
	batch.Queue(`SELECT sku, active FROM catalog.products WHERE sku = ANY($1) ORDER BY sku COLLATE "C" FOR SHARE`, skus).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var sku string
				var active bool
				if err := rows.Scan(&sku, &active); err != nil {
					return err
				}
				stock[sku] = skuStock{active: active}
			}
			return rows.Err()
		})
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return false, nil, fmt.Errorf("claim order and lock its products: %w", err)
	}
	if !claimed {
		return false, nil, nil
	}
	for _, sku := range skus {
		if !stock[sku].active {
			return true, stock, nil
		}
	}
	rows, err := tx.Query(ctx, `SELECT sku, warehouse, on_hand - reserved FROM catalog.stock WHERE sku = ANY($1)
		ORDER BY sku COLLATE "C", warehouse COLLATE "C" FOR UPDATE`, skus)
	if err != nil {
		return false, nil, fmt.Errorf("lock stock: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sku string
		var u warehouseUnits
		if err := rows.Scan(&sku, &u.warehouse, &u.n); err != nil {
			return false, nil, fmt.Errorf("lock stock: %w", err)
		}
		st := stock[sku]
		st.available = append(st.available, u)
		stock[sku] = st
	}
	if err := rows.Err(); err != nil {
		return false, nil, fmt.Errorf("lock stock: %w", err)
	}
	return true, stock, nil
}

// allocateAll allocates every line, or returns the shortfall of the first
// line that cannot be filled: the first line whose product is not for
// sale, if any (the stock of such an order is not locked, nor read),
// else the first line short of units.
func allocateAll(lines []order.StockLine, stock map[string]skuStock) ([]order.Allocation, *order.OutOfStockDetails) {
	for _, l := range lines {
		if !stock[l.SKU].active {
			return nil, &order.OutOfStockDetails{SKU: l.SKU, Requested: l.Quantity, Available: 0}
		}
	}
	var out []order.Allocation
	for _, l := range lines {
		got, short := allocate(l, stock[l.SKU])
		if short != nil {
			return nil, short
		}
		out = append(out, got...)
	}
	return out, nil
}

// allocate holds l.Quantity units across the sku's warehouses: from one
// warehouse when one can fill the line (the one with the most available),
// else split, most available first. It returns the shortfall instead when
// the sku cannot fill the line.
func allocate(l order.StockLine, st skuStock) ([]order.Allocation, *order.OutOfStockDetails) {
	total := 0
	for _, s := range st.available {
		total += s.n
	}
	if total < l.Quantity {
		return nil, &order.OutOfStockDetails{SKU: l.SKU, Requested: l.Quantity, Available: total}
	}
	// Most available first; ties by warehouse name, so the choice is stable.
	stock := append([]warehouseUnits(nil), st.available...)
	sort.SliceStable(stock, func(i, j int) bool { return stock[i].n > stock[j].n })
	if stock[0].n >= l.Quantity {
		return []order.Allocation{{SKU: l.SKU, Warehouse: stock[0].warehouse, Quantity: l.Quantity}}, nil
	}
	var out []order.Allocation
	left := l.Quantity
	for _, s := range stock {
		if left == 0 {
			break
		}
		take := min(s.n, left)
		if take > 0 {
			out = append(out, order.Allocation{SKU: l.SKU, Warehouse: s.warehouse, Quantity: take})
			left -= take
		}
	}
	return out, nil
}

// holdAllocations reserves the allocations' units and records them as the
// order's reservation lines, in one round trip. The rows are locked
// already, so every move succeeds; if one did not, the transaction is
// refused rather than oversell.
func holdAllocations(ctx context.Context, tx pgx.Tx, id uuid.UUID, allocations []order.Allocation) error {
	// The global lock order for the ledger's statement: allocations come
	// sku by sku, but within a sku most available first.
	sorted := append([]order.Allocation(nil), allocations...)
	sortAllocations(sorted)
	ms := orderMoves{orderID: id, kind: kindReserve, rows: make([]rowDelta, len(sorted))}
	skus := make([]string, len(sorted))
	warehouses := make([]string, len(sorted))
	quantities := make([]int64, len(sorted))
	for i, al := range sorted {
		ms.rows[i] = rowDelta{sku: al.SKU, warehouse: al.Warehouse, reserved: al.Quantity}
		skus[i], warehouses[i], quantities[i] = al.SKU, al.Warehouse, int64(al.Quantity)
	}
	batch := &pgx.Batch{}
	var moved int
	queueMoves(batch, ms, &moved)
	batch.Queue(`INSERT INTO catalog.reservation_lines (order_id, sku, warehouse, quantity)
		SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[])`, id, skus, warehouses, quantities)
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("hold stock: %w", err)
	}
	if moved != len(sorted) {
		// Cannot happen while the rows are locked; refuse rather than oversell.
		return fmt.Errorf("hold stock: %d of %d allocations moved: stock changed under lock", moved, len(sorted))
	}
	return nil
}

// sortAllocations puts allocations in the global lock order: sku, then
// warehouse, in byte order.
func sortAllocations(als []order.Allocation) {
	sort.Slice(als, func(i, j int) bool {
		if als[i].SKU != als[j].SKU {
			return als[i].SKU < als[j].SKU
		}
		return als[i].Warehouse < als[j].Warehouse
	})
}

// CommitStock turns the order's reservation into a sale: on_hand and
// reserved both drop by the reserved units. Committing twice, or an order
// that never reserved, changes nothing.
func (a *Activities) CommitStock(ctx context.Context, req order.StockRequest) error {
	return a.settle(ctx, req, "COMMITTED", kindCommit)
}

// ReleaseStock gives the order's reserved units back. Releasing twice
// changes nothing; releasing an order that never reserved leaves a
// RELEASED mark, so that a reservation arriving late (a timed-out call
// still in flight) is refused instead of holding stock forever.
func (a *Activities) ReleaseStock(ctx context.Context, req order.StockRequest) error {
	return a.settle(ctx, req, "RELEASED", kindRelease)
}

func (a *Activities) settle(ctx context.Context, req order.StockRequest, to string, k kind) error {
	id, err := orderID(req.OrderID)
	if err != nil {
		return err
	}
	log := a.log.With(zap.String("order_id", req.OrderID))
	var outcome string
	err = pgx.BeginFunc(ctx, a.db, func(tx pgx.Tx) error {
		if to == "RELEASED" {
			tag, err := tx.Exec(ctx, `INSERT INTO catalog.reservations (order_id, status) VALUES ($1, 'RELEASED') ON CONFLICT (order_id) DO NOTHING`, id)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				outcome = "nothing was reserved"
				return nil
			}
		}
		// The reservation's change and its lines, in one statement: no
		// lines means the reservation was not RESERVED (every RESERVED
		// reservation has lines).
		rows, err := tx.Query(ctx, `WITH r AS (
				UPDATE catalog.reservations SET status = $2, updated_at = now() WHERE order_id = $1 AND status = 'RESERVED'
				RETURNING order_id
			)
			SELECT l.sku, l.warehouse, l.quantity FROM catalog.reservation_lines l JOIN r USING (order_id)
			ORDER BY l.sku COLLATE "C", l.warehouse COLLATE "C"`, id, to)
		if err != nil {
			return err
		}
		lines, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Allocation, error) {
			var al order.Allocation
			return al, r.Scan(&al.SKU, &al.Warehouse, &al.Quantity)
		})
		if err != nil {
			return err
		}
		if len(lines) == 0 {
			var status string
			err := tx.QueryRow(ctx, `SELECT status FROM catalog.reservations WHERE order_id = $1`, id).Scan(&status)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				outcome = "nothing was reserved"
				return nil
			case err != nil:
				return err
			case status == to || status == "REJECTED" || (to == "RELEASED" && status == "COMMITTED"):
				outcome = "already " + status
				return nil
			default:
				return temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("cannot %s stock of an order whose reservation is %s", k, status), order.ErrReservationReleased, nil)
			}
		}
		onHand := 0
		if to == "COMMITTED" {
			onHand = 1
		}
		ms := orderMoves{orderID: id, kind: k, rows: make([]rowDelta, len(lines))}
		for i, al := range lines {
			ms.rows[i] = rowDelta{sku: al.SKU, warehouse: al.Warehouse, onHand: -onHand * al.Quantity, reserved: -al.Quantity}
		}
		batch := &pgx.Batch{}
		var moved int
		queueMoves(batch, ms, &moved)
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return fmt.Errorf("%s stock: %w", k, err)
		}
		if moved != len(lines) {
			// The reservation lines hold these units, so this cannot
			// happen; refuse rather than break the stock's bounds.
			return fmt.Errorf("%s stock: %d of %d lines moved: the reserved units are not in stock", k, moved, len(lines))
		}
		outcome = fmt.Sprintf("%d allocation(s)", len(lines))
		return nil
	})
	if err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			return err
		}
		return fmt.Errorf("%s stock: %w", k, err)
	}
	log.Info("stock "+string(k), zap.String("outcome", outcome))
	return nil
}

// previousReservation answers a repeated ReserveStock from what the first
// call committed.
func previousReservation(ctx context.Context, tx pgx.Tx, id uuid.UUID) (order.Reservation, error, error) {
	var status string
	var detail []byte
	if err := tx.QueryRow(ctx, `SELECT status, detail FROM catalog.reservations WHERE order_id = $1`, id).Scan(&status, &detail); err != nil {
		return order.Reservation{}, nil, err
	}
	switch status {
	case "REJECTED":
		var d order.OutOfStockDetails
		if err := json.Unmarshal(detail, &d); err != nil {
			return order.Reservation{}, nil, fmt.Errorf("decode out-of-stock detail: %w", err)
		}
		return order.Reservation{}, outOfStock(d), nil
	case "RELEASED":
		return order.Reservation{}, temporal.NewNonRetryableApplicationError("the order's stock was released; it cannot be reserved again", order.ErrReservationReleased, nil), nil
	}
	rows, err := tx.Query(ctx, `SELECT sku, warehouse, quantity FROM catalog.reservation_lines WHERE order_id = $1 ORDER BY sku COLLATE "C", warehouse COLLATE "C"`, id)
	if err != nil {
		return order.Reservation{}, nil, err
	}
	allocs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (order.Allocation, error) {
		var al order.Allocation
		return al, r.Scan(&al.SKU, &al.Warehouse, &al.Quantity)
	})
	return order.Reservation{OrderID: id.String(), Allocations: allocs}, nil, err
}

func outOfStock(d order.OutOfStockDetails) error {
	return temporal.NewNonRetryableApplicationError(d.String(), order.ErrOutOfStock, nil, d)
}

func orderID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, temporal.NewNonRetryableApplicationError("order id is not a UUID", order.ErrInvalidRequest, nil)
	}
	return id, nil
}

// sortedLines validates the lines and orders them by sku in byte order,
// the lock order (COLLATE "C" on the SQL side).
func sortedLines(in []order.StockLine) ([]order.StockLine, error) {
	if len(in) == 0 {
		return nil, temporal.NewNonRetryableApplicationError("no lines to reserve", order.ErrInvalidRequest, nil)
	}
	lines := append([]order.StockLine(nil), in...)
	sort.Slice(lines, func(i, j int) bool { return lines[i].SKU < lines[j].SKU })
	for i, l := range lines {
		if l.Quantity < 1 {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("quantity of %s must be positive", l.SKU), order.ErrInvalidRequest, nil)
		}
		if i > 0 && lines[i-1].SKU == l.SKU {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("sku %s appears twice", l.SKU), order.ErrInvalidRequest, nil)
		}
	}
	return lines, nil
}
