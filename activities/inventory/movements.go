package inventory

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ordersaga/ordersaga/internal/apperr"
)

// Movement is one row of the stock ledger as API.md shows it: a change of
// one warehouse's stock of a product, and why it was made.
type Movement struct {
	ID        int64  `json:"id"`
	SKU       string `json:"sku"`
	Warehouse string `json:"warehouse"`
	// Kind is initial, adjust, reserve, release or commit.
	Kind          string `json:"kind"`
	OnHandDelta   int    `json:"on_hand_delta"`
	ReservedDelta int    `json:"reserved_delta"`
	Reason        string `json:"reason"`
	// OrderID is the order the change was made for; nil for changes that
	// no order made (an admin's adjustment, a product's initial stock).
	OrderID *uuid.UUID `json:"order_id,omitempty"`
	// Actor is who made the change: "admin:<user id>", the worker that
	// ran an order's step, or the seed.
	Actor string    `json:"actor"`
	At    time.Time `json:"at"`
}

// MovementFilter selects a page of a product's movements. Pages run newest
// first, by id: the ledger's order of appending.
type MovementFilter struct {
	// Warehouse keeps one warehouse's movements (stored form, lower
	// case); empty keeps all.
	Warehouse string
	Limit     int
	// BeforeID starts the page after the movement with this id, the last
	// of the previous page; 0 starts at the newest.
	BeforeID int64
}

// Movements returns up to f.Limit movements of sku, newest first, and
// whether more follow. An unknown sku is NotFound; a known one with no
// movements (in f.Warehouse) is an empty page.
func (c *Catalog) Movements(ctx context.Context, sku string, f MovementFilter) ([]Movement, bool, error) {
	args := []any{sku}
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	where := []string{"sku = $1"}
	if f.Warehouse != "" {
		wh, err := storedWarehouse(f.Warehouse)
		if err != nil {
			return nil, false, err
		}
		where = append(where, "warehouse = "+arg(wh))
	}
	if f.BeforeID > 0 {
		where = append(where, "id < "+arg(f.BeforeID))
	}
	// Indexes (sku, id) and (sku, warehouse, id) serve both shapes of this
	// read in id order, so a page costs its own rows, however long the
	// history.
	q := `SELECT id, sku, warehouse, kind, on_hand_delta, reserved_delta, reason, order_id, actor, created_at
		FROM catalog.stock_movements WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id DESC LIMIT ` + arg(f.Limit+1)
	rows, err := c.db.Query(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list movements of %s: %w", sku, err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Movement, error) {
		var m Movement
		err := r.Scan(&m.ID, &m.SKU, &m.Warehouse, &m.Kind, &m.OnHandDelta, &m.ReservedDelta, &m.Reason, &m.OrderID, &m.Actor, &m.At)
		m.At = m.At.UTC()
		return m, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("list movements of %s: %w", sku, err)
	}
	// Every product has a movement once it has stock, so only an empty
	// page needs asking whether the product exists at all.
	if len(items) == 0 {
		var exists bool
		if err := c.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM catalog.products WHERE sku = $1)`, sku).Scan(&exists); err != nil {
			return nil, false, fmt.Errorf("list movements of %s: %w", sku, err)
		}
		if !exists {
			return nil, false, apperr.New(apperr.NotFound, "product %s not found", sku)
		}
		return []Movement{}, false, nil
	}
	more := len(items) > f.Limit
	if more {
		items = items[:f.Limit]
	}
	return items, more, nil
}
