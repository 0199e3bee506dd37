package inventory

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersaga/ordersaga/internal/apperr"
)

// WarehousePattern is what API.md allows as a warehouse code. Codes are
// case-insensitive: stored, compared and returned in lower case.
const WarehousePattern = `^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$`

var warehouseRE = regexp.MustCompile(WarehousePattern)

// Warehouse returns code as it is stored (lower case), and false when code
// does not match WarehousePattern. Every warehouse a client names goes
// through it, so that WH-A and wh-a are one stock row.
func Warehouse(code string) (string, bool) {
	if !warehouseRE.MatchString(code) {
		return "", false
	}
	return strings.ToLower(code), true
}

// storedWarehouse is Warehouse for the catalogue's own writes: a code the caller
// did not check is an invalid argument, never a second spelling of a row.
func storedWarehouse(code string) (string, error) {
	wh, ok := Warehouse(code)
	if !ok {
		return "", apperr.Invalid("warehouse", "warehouse must match %s", WarehousePattern)
	}
	return wh, nil
}

// Product is a product as API.md shows it.
type Product struct {
	SKU         string  `json:"sku"`
	Name        string  `json:"name"`
	Brand       string  `json:"brand"`
	Description string  `json:"description"`
	PriceCents  int64   `json:"price_cents"`
	Currency    string  `json:"currency"`
	Active      bool    `json:"active"`
	Available   int     `json:"available"`
	Stock       []Stock `json:"stock"`
	// UpdatedAt is when the product or any of its stock last changed.
	UpdatedAt time.Time `json:"updated_at"`
}

// Stock is one warehouse's stock of a product.
type Stock struct {
	Warehouse string `json:"warehouse"`
	OnHand    int    `json:"on_hand"`
	Reserved  int    `json:"reserved"`
	Available int    `json:"available"`
}

// Catalog is the catalogue the gateway serves: products, their stock per
// warehouse, and admin changes to them.
type Catalog struct {
	db *pgxpool.Pool
}

// NewCatalog returns the catalogue on the catalog database.
func NewCatalog(db *pgxpool.Pool) *Catalog { return &Catalog{db: db} }

// Filter selects a page of products. Pages are ordered by sku.
type Filter struct {
	Q        string
	Brand    string
	MinPrice *int64
	MaxPrice *int64
	InStock  bool
	Limit    int
	AfterSKU string
}

// List returns up to f.Limit active products after f.AfterSKU, and whether
// more follow.
func (c *Catalog) List(ctx context.Context, f Filter) ([]Product, bool, error) {
	var where []string
	args := []any{}
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	where = append(where, "p.active")
	if f.Q != "" {
		where = append(where, "lower(p.name || ' ' || p.brand) LIKE "+arg("%"+escapeLike(strings.ToLower(f.Q))+"%"))
	}
	if f.Brand != "" {
		where = append(where, "lower(p.brand) = lower("+arg(f.Brand)+")")
	}
	if f.MinPrice != nil {
		where = append(where, "p.price_cents >= "+arg(*f.MinPrice))
	}
	if f.MaxPrice != nil {
		where = append(where, "p.price_cents <= "+arg(*f.MaxPrice))
	}
	if f.InStock {
		where = append(where, "EXISTS (SELECT 1 FROM catalog.stock s WHERE s.sku = p.sku AND s.on_hand > s.reserved)")
	}
	if f.AfterSKU != "" {
		where = append(where, "p.sku > "+arg(f.AfterSKU))
	}
	q := `SELECT p.sku, p.name, p.brand, p.description, p.price_cents, p.currency, p.active, p.updated_at
		FROM catalog.products p WHERE ` + strings.Join(where, " AND ") + ` ORDER BY p.sku LIMIT ` + arg(f.Limit+1)
	rows, err := c.db.Query(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list products: %w", err)
	}
	products, err := pgx.CollectRows(rows, scanProduct)
	if err != nil {
		return nil, false, fmt.Errorf("list products: %w", err)
	}
	more := len(products) > f.Limit
	if more {
		products = products[:f.Limit]
	}
	if err := attachStock(ctx, c.db, products); err != nil {
		return nil, false, err
	}
	return products, more, nil
}

// Get returns one product, active or not.
func (c *Catalog) Get(ctx context.Context, sku string) (Product, error) {
	return get(ctx, c.db, sku)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// getSQL reads one product with its stock: a row per warehouse (one with
// NULL stock for a product that has none), in warehouse order. It is the
// product page's query, and an adjustment's answer; plain rows rather than
// aggregates, which cost the database more to plan and run than they save.
const getSQL = `SELECT p.sku, p.name, p.brand, p.description, p.price_cents, p.currency, p.active, p.updated_at,
		s.warehouse, s.on_hand, s.reserved, s.updated_at
	FROM catalog.products p LEFT JOIN catalog.stock s ON s.sku = p.sku
	WHERE p.sku = $1 ORDER BY s.warehouse`

// get reads one product with its stock in one query.
func get(ctx context.Context, db querier, sku string) (Product, error) {
	rows, err := db.Query(ctx, getSQL, sku)
	if err != nil {
		return Product{}, fmt.Errorf("get product: %w", err)
	}
	return collectProduct(rows, sku)
}

// collectProduct reads the product of getSQL's rows.
func collectProduct(rows pgx.Rows, sku string) (Product, error) {
	defer rows.Close()
	var p Product
	found := false
	for rows.Next() {
		var warehouse *string
		var onHand, reserved *int
		var productUpdated time.Time
		var stockUpdated *time.Time
		// Every row repeats the product's columns: its updated_at is read
		// aside, so that the latest of it and of every stock row wins.
		if err := rows.Scan(&p.SKU, &p.Name, &p.Brand, &p.Description, &p.PriceCents, &p.Currency, &p.Active, &productUpdated,
			&warehouse, &onHand, &reserved, &stockUpdated); err != nil {
			return Product{}, fmt.Errorf("get product: %w", err)
		}
		if !found {
			found, p.Stock, p.UpdatedAt = true, []Stock{}, productUpdated
		}
		if warehouse == nil { // a product without stock
			continue
		}
		st := Stock{Warehouse: *warehouse, OnHand: *onHand, Reserved: *reserved, Available: *onHand - *reserved}
		p.Stock = append(p.Stock, st)
		p.Available += st.Available
		if stockUpdated.After(p.UpdatedAt) {
			p.UpdatedAt = *stockUpdated
		}
	}
	if err := rows.Err(); err != nil {
		return Product{}, fmt.Errorf("get product: %w", err)
	}
	if !found {
		return Product{}, apperr.New(apperr.NotFound, "product %s not found", sku)
	}
	p.UpdatedAt = p.UpdatedAt.UTC()
	return p, nil
}

func scanProduct(r pgx.CollectableRow) (Product, error) {
	var p Product
	err := r.Scan(&p.SKU, &p.Name, &p.Brand, &p.Description, &p.PriceCents, &p.Currency, &p.Active, &p.UpdatedAt)
	p.UpdatedAt = p.UpdatedAt.UTC()
	p.Stock = []Stock{}
	return p, err
}

// attachStock loads the stock rows of products in one query, and moves
// their UpdatedAt to their stock's latest change.
func attachStock(ctx context.Context, db querier, products []Product) error {
	if len(products) == 0 {
		return nil
	}
	idx := make(map[string]int, len(products))
	skus := make([]string, len(products))
	for i, p := range products {
		idx[p.SKU] = i
		skus[i] = p.SKU
	}
	rows, err := db.Query(ctx, `SELECT sku, warehouse, on_hand, reserved, updated_at FROM catalog.stock WHERE sku = ANY($1) ORDER BY sku, warehouse`, skus)
	if err != nil {
		return fmt.Errorf("load stock: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var sku string
		var st Stock
		var updated time.Time
		if err := rows.Scan(&sku, &st.Warehouse, &st.OnHand, &st.Reserved, &updated); err != nil {
			return fmt.Errorf("load stock: %w", err)
		}
		st.Available = st.OnHand - st.Reserved
		p := &products[idx[sku]]
		p.Stock = append(p.Stock, st)
		p.Available += st.Available
		if updated.After(p.UpdatedAt) {
			p.UpdatedAt = updated.UTC()
		}
	}
	return rows.Err()
}

// NewProduct is a product an admin creates, with its initial stock.
type NewProduct struct {
	SKU         string
	Name        string
	Brand       string
	Description string
	PriceCents  int64
	Currency    string
	Stock       []InitialStock
}

// InitialStock is a warehouse's stock of a new product. Warehouse is
// stored in lower case.
type InitialStock struct {
	Warehouse string
	OnHand    int
}

// Create adds a product and its stock, each stock row with an 'initial'
// ledger entry by actor. A taken sku is a Conflict.
func (c *Catalog) Create(ctx context.Context, n NewProduct, actor string) (Product, error) {
	var out Product
	err := pgx.BeginFunc(ctx, c.db, func(tx pgx.Tx) error {
		added, err := insertProduct(ctx, tx, n, "initial stock", actor)
		if err != nil {
			return err
		}
		if !added {
			return apperr.New(apperr.Conflict, "sku %s exists", n.SKU)
		}
		out, err = get(ctx, tx, n.SKU)
		return err
	})
	return out, err
}

// CreateMissing adds those of products whose sku is not taken, with their
// stock, in one transaction; each stock row has an 'initial' ledger entry
// with reason, by actor. Products that exist are left alone, so a second
// call changes nothing. It returns how many it added. The local stack's
// demo catalogue is written this way.
func (c *Catalog) CreateMissing(ctx context.Context, products []NewProduct, reason, actor string) (int, error) {
	added := 0
	err := pgx.BeginFunc(ctx, c.db, func(tx pgx.Tx) error {
		for _, n := range products {
			ok, err := insertProduct(ctx, tx, n, reason, actor)
			if err != nil {
				return err
			}
			if ok {
				added++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return added, nil
}

// insertProduct adds n and its stock in tx, and reports false, having
// written nothing, when the sku is taken.
func insertProduct(ctx context.Context, tx pgx.Tx, n NewProduct, reason, actor string) (bool, error) {
	var added bool
	err := tx.QueryRow(ctx, `WITH s AS (
			INSERT INTO catalog.products (sku, name, brand, description, price_cents, currency)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sku) DO NOTHING RETURNING sku
		)
		SELECT EXISTS (SELECT 1 FROM s)`, n.SKU, n.Name, n.Brand, n.Description, n.PriceCents, n.Currency).Scan(&added)
	if err != nil {
		return false, fmt.Errorf("create product %s: %w", n.SKU, err)
	}
	if !added {
		return false, nil
	}
	for _, st := range n.Stock {
		wh, err := storedWarehouse(st.Warehouse)
		if err != nil {
			return false, err
		}
		err = open(ctx, tx, movement{sku: n.SKU, warehouse: wh, onHand: st.OnHand, kind: kindInitial, reason: reason, actor: actor})
		if isUniqueViolation(err) {
			return false, apperr.Invalid("stock.warehouse", "warehouse %s appears twice", wh)
		}
		if err != nil {
			return false, fmt.Errorf("create stock: %w", err)
		}
	}
	return true, nil
}

// Patch changes some of a product's fields; nil fields stay.
type Patch struct {
	Name        *string
	Brand       *string
	Description *string
	PriceCents  *int64
	Active      *bool
}

// Update applies p to the product sku. Setting Active to false is a
// deactivation, refused like Deactivate while units are reserved.
func (c *Catalog) Update(ctx context.Context, sku string, p Patch) (Product, error) {
	var out Product
	err := pgx.BeginFunc(ctx, c.db, func(tx pgx.Tx) error {
		if p.Active != nil && !*p.Active {
			if err := lockForDeactivation(ctx, tx, sku); err != nil {
				return err
			}
		}
		var found bool
		err := tx.QueryRow(ctx, `WITH s AS (
				UPDATE catalog.products SET
				name = coalesce($2, name), brand = coalesce($3, brand), description = coalesce($4, description),
				price_cents = coalesce($5, price_cents), active = coalesce($6, active), updated_at = now()
				WHERE sku = $1 RETURNING sku
			)
			SELECT EXISTS (SELECT 1 FROM s)`, sku, p.Name, p.Brand, p.Description, p.PriceCents, p.Active).Scan(&found)
		if err != nil {
			return fmt.Errorf("update product: %w", err)
		}
		if !found {
			return apperr.New(apperr.NotFound, "product %s not found", sku)
		}
		out, err = get(ctx, tx, sku)
		return err
	})
	return out, err
}

// Deactivate hides a product from the catalogue and stops its sale; it
// stays for the order history. While any of its units are reserved it is a
// Conflict: the orders holding them complete normally, and orders that
// reserve after it are refused as out of stock.
func (c *Catalog) Deactivate(ctx context.Context, sku string) error {
	return pgx.BeginFunc(ctx, c.db, func(tx pgx.Tx) error {
		if err := lockForDeactivation(ctx, tx, sku); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE catalog.products SET active = false, updated_at = now() WHERE sku = $1`, sku); err != nil {
			return fmt.Errorf("deactivate product %s: %w", sku, err)
		}
		return nil
	})
}

// lockForDeactivation locks the products row of sku, then its stock rows,
// in the global lock order, and refuses while units are reserved. FOR
// UPDATE on the products row waits for every reservation of the sku in
// progress (they hold it in SHARE mode), so the sum below, read after
// them, counts their units.
func lockForDeactivation(ctx context.Context, tx pgx.Tx, sku string) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT true FROM catalog.products WHERE sku = $1 FOR UPDATE`, sku).Scan(&exists); errors.Is(err, pgx.ErrNoRows) {
		return apperr.New(apperr.NotFound, "product %s not found", sku)
	} else if err != nil {
		return fmt.Errorf("deactivate product %s: lock product: %w", sku, err)
	}
	// The stock rows are locked too, in byte order of warehouse (the
	// order every transaction uses), so that a commit or release of
	// the sku in flight is counted as well.
	var reserved int
	if err := tx.QueryRow(ctx, `SELECT coalesce(sum(reserved), 0) FROM (
			SELECT reserved FROM catalog.stock WHERE sku = $1 ORDER BY warehouse COLLATE "C" FOR UPDATE) s`, sku).Scan(&reserved); err != nil {
		return fmt.Errorf("deactivate product %s: lock stock: %w", sku, err)
	}
	if reserved > 0 {
		return apperr.New(apperr.Conflict, "product %s has %d units reserved by open orders", sku, reserved)
	}
	return nil
}

// AdjustStock changes on_hand of sku in warehouse by delta (a new warehouse
// is created by a positive delta) and writes the ledger entry. The
// warehouse code is case-insensitive. It is a Conflict when on_hand would
// drop below reserved or below zero.
func (c *Catalog) AdjustStock(ctx context.Context, sku, warehouse string, delta int, reason, actor string) (Product, error) {
	warehouse, err := storedWarehouse(warehouse)
	if err != nil {
		return Product{}, err
	}
	// Fast path, one round trip: the ledger's move changes on_hand if it
	// stays within bounds and writes its entry, all or nothing, and a second
	// statement reads the product as it is then, in the same transaction
	// (the batch is one implicit transaction).
	adjust := movement{sku: sku, warehouse: warehouse, onHand: delta, kind: kindAdjust, reason: reason, actor: actor}
	var moved bool
	var p Product
	var getErr error
	batch := &pgx.Batch{}
	queueMove(batch, adjust, &moved)
	batch.Queue(getSQL, sku).Query(func(rows pgx.Rows) error {
		// A refused move leaves no product to read, or one that the slow
		// path reads again; its error is the slow path's to tell.
		p, getErr = collectProduct(rows, sku)
		return nil
	})
	if err := c.db.SendBatch(ctx, batch).Close(); err != nil {
		return Product{}, fmt.Errorf("adjust stock: %w", err)
	}
	if moved {
		return p, getErr
	}
	if err := c.adjustSlow(ctx, adjust); err != nil {
		return Product{}, err
	}
	return get(ctx, c.db, sku)
}

// adjustSlow handles what the fast path refused: a missing product, a new
// warehouse, or a change that would leave too few units, which it explains.
func (c *Catalog) adjustSlow(ctx context.Context, m movement) error {
	sku, warehouse, delta := m.sku, m.warehouse, m.onHand
	return pgx.BeginFunc(ctx, c.db, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT true FROM catalog.products WHERE sku = $1 FOR NO KEY UPDATE`, sku).Scan(&exists); errors.Is(err, pgx.ErrNoRows) {
			return apperr.New(apperr.NotFound, "product %s not found", sku)
		} else if err != nil {
			return fmt.Errorf("adjust stock: %w", err)
		}
		var onHand, reserved int
		err := tx.QueryRow(ctx, `SELECT on_hand, reserved FROM catalog.stock WHERE sku = $1 AND warehouse = $2 FOR UPDATE`, sku, warehouse).Scan(&onHand, &reserved)
		switch {
		case errors.Is(err, pgx.ErrNoRows) && delta > 0:
			err := open(ctx, tx, m)
			if isUniqueViolation(err) {
				return apperr.New(apperr.Conflict, "stock of %s in %s changed concurrently; retry", sku, warehouse)
			}
			if err != nil {
				return fmt.Errorf("adjust stock: %w", err)
			}
		case errors.Is(err, pgx.ErrNoRows):
			return apperr.New(apperr.Conflict, "%s has no stock in %s to take away", sku, warehouse)
		case err != nil:
			return fmt.Errorf("adjust stock: %w", err)
		case onHand+delta < reserved || onHand+delta < 0:
			return apperr.New(apperr.Conflict, "%s in %s has %d on hand and %d reserved; %+d would leave too few", sku, warehouse, onHand, reserved, delta)
		default:
			// The row changed between the two statements: apply it here,
			// where it is locked and within bounds.
			moved, err := move(ctx, tx, m)
			if err != nil {
				return fmt.Errorf("adjust stock: %w", err)
			}
			if !moved {
				return fmt.Errorf("adjust stock %s/%s: stock changed under lock", sku, warehouse)
			}
		}
		return nil
	})
}

// Priced is what an order needs to know of a product.
type Priced struct {
	SKU        string
	Name       string
	PriceCents int64
	Currency   string
	Active     bool
}

// Prices returns the products among skus that exist, by sku.
func (c *Catalog) Prices(ctx context.Context, skus []string) (map[string]Priced, error) {
	out := map[string]Priced{}
	rows, err := c.db.Query(ctx, `SELECT sku, name, price_cents, currency, active FROM catalog.products WHERE sku = ANY($1)`, skus)
	if err != nil {
		return nil, fmt.Errorf("price order: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p Priced
		if err := rows.Scan(&p.SKU, &p.Name, &p.PriceCents, &p.Currency, &p.Active); err != nil {
			return nil, err
		}
		out[p.SKU] = p
	}
	return out, rows.Err()
}

// Ping checks the database.
func (c *Catalog) Ping(ctx context.Context) error { return c.db.Ping(ctx) }

// isUniqueViolation reports whether err is a unique violation (SQLSTATE
// 23505): a row that was to be created exists.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
