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
// and the Catalog) locks rows in one global order: sku by sku in byte
// order, and for each sku its products row first, then its stock rows in
// warehouse byte order. Byte order is Go's string comparison and
// COLLATE "C" in SQL, so Go and the database agree whatever the database's
// collation. A transaction that only ever waits for rows later in that
// order cannot be part of a deadlock.
//
// Deactivated products are not sold: ReserveStock holds each line's
// products row in SHARE mode and refuses an inactive product as out of
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
		tag, err := tx.Exec(ctx, `INSERT INTO catalog.reservations (order_id, status) VALUES ($1, 'RESERVED') ON CONFLICT (order_id) DO NOTHING`, id)
		if err != nil {
			return fmt.Errorf("claim order: %w", err)
		}
		if tag.RowsAffected() == 0 {
			// Seen before (the insert waited for that transaction): answer as then.
			res, outErr, err = previousReservation(ctx, tx, id)
			return err
		}
		// A savepoint, so that an out-of-stock line undoes the lines before
		// it while the REJECTED outcome is still committed.
		alloc, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		var allocations []order.Allocation
		for _, l := range lines {
			got, short, err := reserveLine(ctx, alloc, id, l)
			if err != nil {
				_ = alloc.Rollback(ctx)
				return err
			}
			if short != nil {
				if err := alloc.Rollback(ctx); err != nil {
					return err
				}
				detail, _ := json.Marshal(short)
				if _, err := tx.Exec(ctx, `UPDATE catalog.reservations SET status = 'REJECTED', detail = $2, updated_at = now() WHERE order_id = $1`, id, detail); err != nil {
					return fmt.Errorf("record out of stock: %w", err)
				}
				outErr = outOfStock(*short)
				return nil
			}
			allocations = append(allocations, got...)
		}
		if err := alloc.Commit(ctx); err != nil {
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

// reserveLine locks the sku's products row, then its stock rows, and holds
// l.Quantity units across warehouses: from one warehouse when one can fill
// the line (the one with the most available), else split, most available
// first. It returns the shortfall instead when the sku cannot fill the
// line, and an inactive (or unknown) product has nothing available.
func reserveLine(ctx context.Context, tx pgx.Tx, id uuid.UUID, l order.StockLine) ([]order.Allocation, *order.OutOfStockDetails, error) {
	// SHARE conflicts with every lock that changes the products row, so a
	// deactivation either committed before this (and active reads false:
	// after waiting, READ COMMITTED reads the newest row version) or waits
	// until this transaction ends and then sees the reserved units.
	var active bool
	err := tx.QueryRow(ctx, `SELECT active FROM catalog.products WHERE sku = $1 FOR SHARE`, l.SKU).Scan(&active)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, fmt.Errorf("lock product %s: %w", l.SKU, err)
	}
	if !active {
		return nil, &order.OutOfStockDetails{SKU: l.SKU, Requested: l.Quantity, Available: 0}, nil
	}
	rows, err := tx.Query(ctx, `SELECT warehouse, on_hand - reserved FROM catalog.stock WHERE sku = $1 ORDER BY warehouse COLLATE "C" FOR UPDATE`, l.SKU)
	if err != nil {
		return nil, nil, fmt.Errorf("lock stock of %s: %w", l.SKU, err)
	}
	type avail struct {
		warehouse string
		n         int
	}
	stock, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (avail, error) {
		var a avail
		return a, r.Scan(&a.warehouse, &a.n)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("lock stock of %s: %w", l.SKU, err)
	}
	total := 0
	for _, s := range stock {
		total += s.n
	}
	if total < l.Quantity {
		return nil, &order.OutOfStockDetails{SKU: l.SKU, Requested: l.Quantity, Available: total}, nil
	}
	// Most available first; ties by warehouse name, so the choice is stable.
	sort.SliceStable(stock, func(i, j int) bool { return stock[i].n > stock[j].n })
	var out []order.Allocation
	if stock[0].n >= l.Quantity {
		out = []order.Allocation{{SKU: l.SKU, Warehouse: stock[0].warehouse, Quantity: l.Quantity}}
	} else {
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
	}
	for _, al := range out {
		moved, err := move(ctx, tx, orderMovement(id, al, 0, al.Quantity, kindReserve))
		if err != nil {
			return nil, nil, fmt.Errorf("reserve %s/%s: %w", al.SKU, al.Warehouse, err)
		}
		if !moved {
			// Cannot happen while the rows are locked; refuse rather than oversell.
			return nil, nil, fmt.Errorf("reserve %s/%s: stock changed under lock", al.SKU, al.Warehouse)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO catalog.reservation_lines (order_id, sku, warehouse, quantity) VALUES ($1, $2, $3, $4)`,
			id, al.SKU, al.Warehouse, al.Quantity); err != nil {
			return nil, nil, fmt.Errorf("record reservation line: %w", err)
		}
	}
	return out, nil, nil
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
		tag, err := tx.Exec(ctx, `UPDATE catalog.reservations SET status = $2, updated_at = now() WHERE order_id = $1 AND status = 'RESERVED'`, id, to)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
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
		// The updates below lock stock rows in this order: byte order, the
		// global lock order (see the package comment).
		rows, err := tx.Query(ctx, `SELECT sku, warehouse, quantity FROM catalog.reservation_lines WHERE order_id = $1 ORDER BY sku COLLATE "C", warehouse COLLATE "C"`, id)
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
		onHand := 0
		if to == "COMMITTED" {
			onHand = 1
		}
		for _, al := range lines {
			moved, err := move(ctx, tx, orderMovement(id, al, -onHand*al.Quantity, -al.Quantity, k))
			if err != nil {
				return fmt.Errorf("%s %s/%s: %w", k, al.SKU, al.Warehouse, err)
			}
			if !moved {
				// The reservation line holds these units, so this cannot
				// happen; refuse rather than break the stock's bounds.
				return fmt.Errorf("%s %s/%s: the reserved units are not in stock", k, al.SKU, al.Warehouse)
			}
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

// orderMovement is the ledger's record of an activity moving an order's
// allocation al.
func orderMovement(id uuid.UUID, al order.Allocation, onHand, reserved int, k kind) movement {
	return movement{sku: al.SKU, warehouse: al.Warehouse, onHand: onHand, reserved: reserved,
		kind: k, reason: string(k) + " for order", orderID: &id, actor: inventoryActor}
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
