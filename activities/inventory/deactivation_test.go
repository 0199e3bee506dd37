package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/internal/apperr"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/schema"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// outOfStockDetails returns the details of a non-retryable OutOfStock
// error, or fails the test.
func outOfStockDetails(t *testing.T, err error) order.OutOfStockDetails {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != order.ErrOutOfStock || !appErr.NonRetryable() {
		t.Fatalf("want a non-retryable %s error, got %v", order.ErrOutOfStock, err)
	}
	var d order.OutOfStockDetails
	if err := appErr.Details(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDeactivatedProductIsNotSold follows the rule of docs/operators.md:
// an order that holds units when its product is deactivated completes (the
// deactivation is refused meanwhile); an order that reserves after the
// deactivation is refused as out of stock and holds nothing.
func TestDeactivatedProductIsNotSold(t *testing.T) {
	ctx := context.Background()
	pool, inv := setup(t, map[string]map[string]int{"AAA-1": {"east": 5}, "WATCH-42": {"east": 5, "west": 3}})
	cat := inventory.NewCatalog(pool)

	holding := uuid.NewString()
	if _, err := inv.ReserveStock(ctx, req(holding, order.StockLine{SKU: "WATCH-42", Quantity: 2})); err != nil {
		t.Fatal(err)
	}
	if err := cat.Deactivate(ctx, "WATCH-42"); !apperr.Is(err, apperr.Conflict) {
		t.Fatalf("deactivation while 2 units are held: want a conflict, got %v", err)
	}
	off := false
	if _, err := cat.Update(ctx, "WATCH-42", inventory.Patch{Active: &off}); !apperr.Is(err, apperr.Conflict) {
		t.Fatalf("PATCH active=false while 2 units are held: want a conflict, got %v", err)
	}
	if err := inv.CommitStock(ctx, order.StockRequest{OrderID: holding}); err != nil {
		t.Fatalf("the order holding units completes normally: %v", err)
	}
	if err := cat.Deactivate(ctx, "WATCH-42"); err != nil {
		t.Fatalf("deactivation once nothing is held: %v", err)
	}
	before := rows(t, pool, "WATCH-42")

	// Accepted before the deactivation, reserving after it. AAA-1 sorts
	// first and fits: its units must not stay held either.
	late := uuid.NewString()
	r := req(late, order.StockLine{SKU: "WATCH-42", Quantity: 1}, order.StockLine{SKU: "AAA-1", Quantity: 2})
	for i := 0; i < 2; i++ {
		_, err := inv.ReserveStock(ctx, r)
		if d := outOfStockDetails(t, err); d != (order.OutOfStockDetails{SKU: "WATCH-42", Requested: 1, Available: 0}) {
			t.Errorf("call %d: details %+v, want WATCH-42 with 0 available", i+1, d)
		}
	}
	if got := rows(t, pool, "AAA-1"); got[0] != (stockRow{"east", 5, 0}) {
		t.Errorf("a refused order changed AAA-1: %v", got)
	}
	if got := rows(t, pool, "WATCH-42"); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("a refused order changed WATCH-42 from %v to %v", before, got)
	}
	var lines int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM catalog.reservation_lines WHERE order_id = $1`, late).Scan(&lines); err != nil {
		t.Fatal(err)
	}
	if lines != 0 {
		t.Errorf("the refused order has %d reservation lines", lines)
	}
	// Its compensation is a no-op, as for any refused reservation.
	if err := inv.ReleaseStock(ctx, order.StockRequest{OrderID: late}); err != nil {
		t.Errorf("release of the refused order: %v", err)
	}
	// Reactivated, the product sells again.
	on := true
	if _, err := cat.Update(ctx, "WATCH-42", inventory.Patch{Active: &on}); err != nil {
		t.Fatal(err)
	}
	if _, err := inv.ReserveStock(ctx, req(uuid.NewString(), order.StockLine{SKU: "WATCH-42", Quantity: 1})); err != nil {
		t.Errorf("reservation after reactivation: %v", err)
	}
	checkLedger(t, pool)
}

// numericCollationDatabase returns a pool on a fresh database whose
// default collation sorts digits numerically (ICU "und-u-kn"), so that
// SKU-9 sorts before SKU-10 in SQL while Go's byte order puts SKU-10
// first: code that sorts skus one way in Go and the other in SQL would
// lock rows in two orders there.
func numericCollationDatabase(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testkit.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	name := "icu_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'und-u-kn'`); err != nil {
		t.Fatalf("create a database with an ICU numeric collation: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin.Config().ConnString())
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
	})
	cfg, err := pgxpool.ParseConfig(admin.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Database = name
	cfg.MaxConns = 24
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := schema.Migrate(ctx, pool, "catalog"); err != nil {
		t.Fatal(err)
	}
	var numeric bool
	if err := pool.QueryRow(ctx, `SELECT 'SKU-9' < 'SKU-10' AND 'wh-9' < 'wh-10'`).Scan(&numeric); err != nil || !numeric {
		t.Fatalf("the database does not sort numerically (%v); the test would prove nothing", err)
	}
	return pool
}

// TestDeactivationRacesReservationsWithoutDeadlock: orders reserve, commit
// and release skus whose byte order differs from the database's collation,
// while admins deactivate, reactivate and restock the same skus. No
// transaction deadlocks (40P01) or fails otherwise, no unit is ever
// reserved on an inactive product, and orders that reserve while a product
// is inactive are refused as out of stock.
func TestDeactivationRacesReservationsWithoutDeadlock(t *testing.T) {
	ctx := context.Background()
	pool := numericCollationDatabase(t)
	skus := []string{"SKU-9", "SKU-10", "SKU-100"}
	warehouses := []string{"wh-9", "wh-10"}
	cat := inventory.NewCatalog(pool)
	for _, sku := range skus {
		n := inventory.NewProduct{SKU: sku, Name: sku, Brand: "Test", PriceCents: 100, Currency: "USD"}
		for _, wh := range warehouses {
			n.Stock = append(n.Stock, inventory.InitialStock{Warehouse: wh, OnHand: 100000})
		}
		if _, err := cat.Create(ctx, n, "test"); err != nil {
			t.Fatal(err)
		}
	}
	inv := inventory.New(pool, zap.NewNop())

	var (
		unexpected                  = make(chan error, 1000)
		deactivated, refusedWhileOn atomic.Int64
		refusedInactive, reserved   atomic.Int64
		samples, violations         atomic.Int64
	)
	fail := func(what string, err error) {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
			what = "DEADLOCK in " + what
		}
		select {
		case unexpected <- fmt.Errorf("%s: %w", what, err):
		default:
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	enough := func() bool {
		return deactivated.Load() >= 10 && refusedInactive.Load() >= 10 && reserved.Load() >= 200
	}
	running := func() bool { return time.Now().Before(deadline) && !enough() }

	var wg sync.WaitGroup
	// Shoppers: orders of two or three skus, lines in any order, then a
	// commit or a release, as the saga does.
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for running() {
				picked := rng.Perm(len(skus))[:2+rng.IntN(2)]
				var lines []order.StockLine
				for _, i := range picked {
					lines = append(lines, order.StockLine{SKU: skus[i], Quantity: 1 + rng.IntN(3)})
				}
				id := uuid.NewString()
				_, err := inv.ReserveStock(ctx, req(id, lines...))
				var appErr *temporal.ApplicationError
				switch {
				case err == nil:
					reserved.Add(1)
				case errors.As(err, &appErr) && appErr.Type() == order.ErrOutOfStock:
					refusedInactive.Add(1) // the stock is plentiful: only an inactive product refuses
					continue
				default:
					fail("reserve", err)
					continue
				}
				time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
				if rng.IntN(2) == 0 {
					err = inv.CommitStock(ctx, order.StockRequest{OrderID: id})
				} else {
					err = inv.ReleaseStock(ctx, order.StockRequest{OrderID: id})
				}
				if err != nil {
					fail("settle", err)
				}
			}
		}(w)
	}
	// Admins: deactivate (DELETE or PATCH active=false), reactivate, restock.
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			off, on := false, true
			for running() {
				sku := skus[rng.IntN(len(skus))]
				var err error
				switch w {
				case 0:
					err = cat.Deactivate(ctx, sku)
				case 1:
					_, err = cat.Update(ctx, sku, inventory.Patch{Active: &off})
				default:
					if _, err := cat.AdjustStock(ctx, sku, warehouses[rng.IntN(2)], 1, "restock", "test"); err != nil {
						fail("adjust", err)
					}
					time.Sleep(time.Millisecond)
					continue
				}
				switch {
				case err == nil:
					deactivated.Add(1)
					time.Sleep(time.Duration(5+rng.IntN(10)) * time.Millisecond)
					if _, err := cat.Update(ctx, sku, inventory.Patch{Active: &on}); err != nil {
						fail("reactivate", err)
					}
				case apperr.Is(err, apperr.Conflict):
					refusedWhileOn.Add(1)
				default:
					fail("deactivate", err)
				}
			}
		}(w)
	}
	// An observer: never a reserved unit on an inactive product.
	stop := make(chan struct{})
	var observer sync.WaitGroup
	observer.Add(1)
	go func() {
		defer observer.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var bad int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM catalog.stock s JOIN catalog.products p USING (sku)
				WHERE s.reserved > 0 AND NOT p.active`).Scan(&bad); err == nil {
				samples.Add(1)
				violations.Add(int64(bad))
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	close(stop)
	observer.Wait()
	close(unexpected)
	for err := range unexpected {
		t.Error(err)
	}
	t.Logf("%d orders reserved, %d refused while inactive; %d deactivations, %d refused while units were held; %d observations",
		reserved.Load(), refusedInactive.Load(), deactivated.Load(), refusedWhileOn.Load(), samples.Load())
	if violations.Load() != 0 {
		t.Errorf("%d observations of reserved units on an inactive product", violations.Load())
	}
	if !enough() {
		t.Errorf("the race was not exercised enough in 20 s")
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(reserved), 0) FROM catalog.stock`).Scan(&left); err != nil || left != 0 {
		t.Errorf("every order settled, yet %d units are reserved (%v)", left, err)
	}
	checkLedger(t, pool)
}
