package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

func TestMain(m *testing.M) { testkit.Main(m) }

type stockRow struct {
	warehouse        string
	onHand, reserved int
}

// setup creates the products of stock, each with its stock per warehouse,
// through the catalogue, so that the ledger starts with their 'initial'
// entries.
func setup(t *testing.T, stock map[string]map[string]int) (*pgxpool.Pool, *inventory.Activities) {
	t.Helper()
	pool := testkit.NewPool(t)
	cat := inventory.NewCatalog(pool)
	for sku, whs := range stock {
		n := inventory.NewProduct{SKU: sku, Name: sku, Brand: "Test", PriceCents: 100, Currency: "USD"}
		for wh, units := range whs {
			n.Stock = append(n.Stock, inventory.InitialStock{Warehouse: wh, OnHand: units})
		}
		if _, err := cat.Create(context.Background(), n, "test"); err != nil {
			t.Fatal(err)
		}
	}
	return pool, inventory.New(pool, zap.NewNop())
}

func rows(t *testing.T, pool *pgxpool.Pool, sku string) []stockRow {
	t.Helper()
	rs, err := pool.Query(context.Background(), `SELECT warehouse, on_hand, reserved FROM catalog.stock WHERE sku = $1 ORDER BY warehouse`, sku)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []stockRow
	for rs.Next() {
		var r stockRow
		if err := rs.Scan(&r.warehouse, &r.onHand, &r.reserved); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// checkLedger asserts that the ledger explains every stock row.
func checkLedger(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	var bad int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM catalog.stock s
		LEFT JOIN (SELECT sku, warehouse, sum(on_hand_delta) oh, sum(reserved_delta) rs FROM catalog.stock_movements GROUP BY 1, 2) m USING (sku, warehouse)
		WHERE s.on_hand <> coalesce(m.oh, 0) OR s.reserved <> coalesce(m.rs, 0)`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d stock rows disagree with the stock_movements ledger", bad)
	}
}

func req(id string, lines ...order.StockLine) order.StockRequest {
	return order.StockRequest{OrderID: id, Lines: lines}
}

func TestReserveCommitReleaseAreIdempotent(t *testing.T) {
	ctx := context.Background()
	pool, inv := setup(t, map[string]map[string]int{"WATCH-42": {"east": 5, "west": 3}, "BAND-1": {"east": 2}})
	id := uuid.NewString()
	r := req(id, order.StockLine{SKU: "WATCH-42", Quantity: 4}, order.StockLine{SKU: "BAND-1", Quantity: 1})

	first, err := inv.ReserveStock(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	second, err := inv.ReserveStock(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(first.Allocations) != fmt.Sprint(second.Allocations) {
		t.Errorf("second reserve answered %v, first %v", second.Allocations, first.Allocations)
	}
	if got := rows(t, pool, "WATCH-42"); got[0] != (stockRow{"east", 5, 4}) || got[1] != (stockRow{"west", 3, 0}) {
		t.Errorf("after two reserves WATCH-42 is %v: the line should come from east once", got)
	}

	for i := 0; i < 2; i++ {
		if err := inv.CommitStock(ctx, order.StockRequest{OrderID: id}); err != nil {
			t.Fatalf("commit %d: %v", i+1, err)
		}
	}
	if got := rows(t, pool, "WATCH-42"); got[0] != (stockRow{"east", 1, 0}) {
		t.Errorf("after two commits east is %v, want on_hand 1 reserved 0", got[0])
	}
	if got := rows(t, pool, "BAND-1"); got[0] != (stockRow{"east", 1, 0}) {
		t.Errorf("after commit BAND-1 is %v", got[0])
	}
	// A release after the commit must not hand sold units back.
	if err := inv.ReleaseStock(ctx, order.StockRequest{OrderID: id}); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, pool, "WATCH-42"); got[0] != (stockRow{"east", 1, 0}) {
		t.Errorf("release after commit changed stock: %v", got[0])
	}

	// Release twice.
	id2 := uuid.NewString()
	if _, err := inv.ReserveStock(ctx, req(id2, order.StockLine{SKU: "WATCH-42", Quantity: 2})); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := inv.ReleaseStock(ctx, order.StockRequest{OrderID: id2}); err != nil {
			t.Fatal(err)
		}
	}
	if got := rows(t, pool, "WATCH-42"); got[0].reserved != 0 || got[1].reserved != 0 || got[0].onHand+got[1].onHand != 4 {
		t.Errorf("after reserve and two releases: %v", got)
	}
	checkLedger(t, pool)
}

func TestUndoOfAStepThatNeverHappenedChangesNothing(t *testing.T) {
	ctx := context.Background()
	pool, inv := setup(t, map[string]map[string]int{"WATCH-42": {"east": 5}})
	before := rows(t, pool, "WATCH-42")

	if err := inv.CommitStock(ctx, order.StockRequest{OrderID: uuid.NewString()}); err != nil {
		t.Errorf("commit of an order that never reserved: %v", err)
	}
	late := uuid.NewString()
	if err := inv.ReleaseStock(ctx, order.StockRequest{OrderID: late}); err != nil {
		t.Errorf("release of an order that never reserved: %v", err)
	}
	// The reservation of a released order arrives late: it is refused.
	_, err := inv.ReserveStock(ctx, req(late, order.StockLine{SKU: "WATCH-42", Quantity: 1}))
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != order.ErrReservationReleased || !appErr.NonRetryable() {
		t.Errorf("late reserve after release: want non-retryable %s, got %v", order.ErrReservationReleased, err)
	}
	if after := rows(t, pool, "WATCH-42"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("stock changed from %v to %v", before, after)
	}
	var movements int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM catalog.stock_movements WHERE kind <> 'initial'`).Scan(&movements)
	if movements != 0 {
		t.Errorf("%d ledger entries for steps that never happened", movements)
	}
}

func TestOutOfStockHoldsNothingAndAnswersTheSameTwice(t *testing.T) {
	ctx := context.Background()
	pool, inv := setup(t, map[string]map[string]int{"AAA-1": {"east": 5}, "WATCH-42": {"east": 1}})
	id := uuid.NewString()
	// AAA-1 sorts first and fits: its units must be given back when WATCH-42 does not.
	r := req(id, order.StockLine{SKU: "WATCH-42", Quantity: 3}, order.StockLine{SKU: "AAA-1", Quantity: 2})
	for i := 0; i < 2; i++ {
		_, err := inv.ReserveStock(ctx, r)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != order.ErrOutOfStock || !appErr.NonRetryable() {
			t.Fatalf("call %d: want non-retryable OutOfStock, got %v", i+1, err)
		}
		var d order.OutOfStockDetails
		if err := appErr.Details(&d); err != nil {
			t.Fatal(err)
		}
		if d != (order.OutOfStockDetails{SKU: "WATCH-42", Requested: 3, Available: 1}) {
			t.Errorf("details %+v", d)
		}
		if appErr.Message() != "SKU WATCH-42 has 1 available, 3 requested" {
			t.Errorf("message %q", appErr.Message())
		}
	}
	if got := rows(t, pool, "AAA-1"); got[0].reserved != 0 {
		t.Errorf("a refused order holds AAA-1 units: %v", got)
	}
	if err := inv.ReleaseStock(ctx, order.StockRequest{OrderID: id}); err != nil {
		t.Errorf("release of a refused reservation: %v", err)
	}
	checkLedger(t, pool)
}

func TestAllocationAcrossWarehouses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		stock map[string]int
		qty   int
		want  string
	}{
		{"one warehouse can fill: the one with most available", map[string]int{"east": 4, "west": 6}, 3, "[{SKU-1 west 3}]"},
		{"exactly fits one", map[string]int{"east": 4, "west": 2}, 4, "[{SKU-1 east 4}]"},
		{"split, most available first", map[string]int{"east": 4, "west": 6, "north": 1}, 10, "[{SKU-1 west 6} {SKU-1 east 4}]"},
		{"split uses all three", map[string]int{"east": 4, "west": 6, "north": 1}, 11, "[{SKU-1 west 6} {SKU-1 east 4} {SKU-1 north 1}]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, inv := setup(t, map[string]map[string]int{"SKU-1": tc.stock})
			res, err := inv.ReserveStock(ctx, req(uuid.NewString(), order.StockLine{SKU: "SKU-1", Quantity: tc.qty}))
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, a := range res.Allocations {
				got += fmt.Sprintf(" {%s %s %d}", a.SKU, a.Warehouse, a.Quantity)
			}
			if "["+got[1:]+"]" != tc.want {
				t.Errorf("allocations %s, want %s", "["+got[1:]+"]", tc.want)
			}
		})
	}
}

func TestBadRequestsAreNonRetryable(t *testing.T) {
	_, inv := setup(t, map[string]map[string]int{"SKU-1": {"east": 4}})
	for name, r := range map[string]order.StockRequest{
		"not a uuid":   req("order-1", order.StockLine{SKU: "SKU-1", Quantity: 1}),
		"no lines":     req(uuid.NewString()),
		"zero qty":     req(uuid.NewString(), order.StockLine{SKU: "SKU-1", Quantity: 0}),
		"sku repeated": req(uuid.NewString(), order.StockLine{SKU: "SKU-1", Quantity: 1}, order.StockLine{SKU: "SKU-1", Quantity: 1}),
	} {
		_, err := inv.ReserveStock(context.Background(), r)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != order.ErrInvalidRequest || !appErr.NonRetryable() {
			t.Errorf("%s: want non-retryable %s, got %v", name, order.ErrInvalidRequest, err)
		}
	}
}

// TestConcurrentReservationsNeverOversell: 200 orders race for a sku that
// holds 50 units in two warehouses. Exactly 50 units are reserved, every
// loser is told OutOfStock (no deadlock, no other error), and a sampler
// sees 0 ≤ reserved ≤ on_hand throughout.
func TestConcurrentReservationsNeverOversell(t *testing.T) {
	ctx := context.Background()
	pool, inv := setup(t, map[string]map[string]int{"HOT-1": {"east": 30, "west": 20}, "COLD-1": {"east": 1000}})

	stop := make(chan struct{})
	var samples, violations atomic.Int64
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var bad int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM catalog.stock WHERE NOT (0 <= reserved AND reserved <= on_hand)`).Scan(&bad); err == nil {
				samples.Add(1)
				violations.Add(int64(bad))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	var wg sync.WaitGroup
	var reservedUnits, won, lost atomic.Int64
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			qty := 1 + i%3
			// Half the orders also take a second sku, in the other order, to
			// exercise the lock order.
			lines := []order.StockLine{{SKU: "HOT-1", Quantity: qty}}
			if i%2 == 0 {
				lines = append([]order.StockLine{{SKU: "COLD-1", Quantity: 1}}, lines...)
			}
			_, err := inv.ReserveStock(ctx, req(uuid.NewString(), lines...))
			var appErr *temporal.ApplicationError
			switch {
			case err == nil:
				won.Add(1)
				reservedUnits.Add(int64(qty))
			case errors.As(err, &appErr) && appErr.Type() == order.ErrOutOfStock:
				lost.Add(1)
			default:
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error (deadlock?): %v", err)
	}

	got := rows(t, pool, "HOT-1")
	total := got[0].reserved + got[1].reserved
	if int64(total) != reservedUnits.Load() {
		t.Errorf("stock says %d reserved, winners hold %d", total, reservedUnits.Load())
	}
	if total > 50 || total < 48 {
		// 50 units and quantities of 1..3: at most 2 units can be left that no remaining order fits.
		t.Errorf("reserved %d of 50 units", total)
	}
	if won.Load()+lost.Load() != 200 {
		t.Errorf("won %d + lost %d != 200", won.Load(), lost.Load())
	}
	if violations.Load() != 0 || samples.Load() == 0 {
		t.Errorf("sampler: %d samples, %d violations", samples.Load(), violations.Load())
	}
	for _, r := range got {
		if r.reserved < 0 || r.reserved > r.onHand {
			t.Errorf("row %v breaks 0 <= reserved <= on_hand", r)
		}
	}
	checkLedger(t, pool)
	t.Logf("%d orders won, %d refused, %d units reserved, %d invariant samples", won.Load(), lost.Load(), total, samples.Load())
}
