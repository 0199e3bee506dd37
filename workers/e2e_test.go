package workers_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/internal/testkit"
	sys "github.com/ordersaga/ordersaga/internal/testkit/system"
	"github.com/ordersaga/ordersaga/workflows/order"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// system is the whole of ordersaga (internal/testkit/system) with a
// starter that the tests drive themselves.
type system struct {
	*sys.System
	pool    *pgxpool.Pool
	client  client.Client
	store   *orders.Store
	starter *orders.Starter
}

func startSystem(t testing.TB) *system {
	t.Helper()
	return newSystem(t, sys.Options{SlowDelay: 2 * time.Second})
}

// startSystemWithoutOrderWorker runs everything but the order worker:
// workflows wait for startOrderWorker.
func startSystemWithoutOrderWorker(t testing.TB) *system {
	t.Helper()
	return newSystem(t, sys.Options{SlowDelay: 2 * time.Second, NoOrderWorker: true})
}

func newSystem(t testing.TB, opt sys.Options) *system {
	t.Helper()
	s := sys.Start(t, opt)
	starter := orders.NewStarter(s.Store, s.Temporal, orders.StarterSettings{Interval: 200 * time.Millisecond, Timeouts: order.Timeouts{Step: time.Minute}},
		testkit.Logger(), prometheus.NewRegistry())
	return &system{System: s, pool: s.Pool, client: s.Temporal, store: s.Store, starter: starter}
}

func (s *system) startOrderWorker(t testing.TB) {
	t.Helper()
	s.StartWorker("order")
}

func (s *system) waitAllTerminal(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var open int
		if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM orders.orders WHERE status NOT IN ('CONFIRMED','REJECTED','CANCELLED','FAILED')`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d orders still not terminal after %s", open, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkInvariants checks DESIGN.md's invariants 1-4 in SQL once every order is terminal.
func (s *system) checkInvariants(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	count := func(what, sql string) {
		t.Helper()
		var n int
		if err := s.pool.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n != 0 {
			t.Errorf("invariant broken: %s (%d rows)", what, n)
		}
	}
	// 1. No oversell, and nothing stays held once every order is terminal.
	count("0 <= reserved <= on_hand", `SELECT count(*) FROM catalog.stock WHERE NOT (0 <= reserved AND reserved <= on_hand)`)
	count("no units held after every order ended", `SELECT count(*) FROM catalog.stock WHERE reserved <> 0`)
	count("no reservation left RESERVED", `SELECT count(*) FROM catalog.reservations WHERE status = 'RESERVED'`)
	// 2. Conservation: initial on_hand − units of confirmed orders = on_hand, per sku.
	count("conservation per sku", `
		WITH initial AS (SELECT sku, sum(on_hand_delta) n FROM catalog.stock_movements WHERE kind IN ('initial','adjust') GROUP BY sku),
		     sold AS (SELECT l.sku, sum(l.quantity) n FROM orders.order_lines l JOIN orders.orders o ON o.id = l.order_id WHERE o.status = 'CONFIRMED' GROUP BY l.sku),
		     now AS (SELECT sku, sum(on_hand) n FROM catalog.stock GROUP BY sku)
		SELECT count(*) FROM now JOIN initial USING (sku) LEFT JOIN sold USING (sku)
		WHERE initial.n - coalesce(sold.n, 0) <> now.n`)
	count("ledger explains every stock row", `SELECT count(*) FROM catalog.stock s
		LEFT JOIN (SELECT sku, warehouse, sum(on_hand_delta) oh, sum(reserved_delta) rs FROM catalog.stock_movements GROUP BY 1, 2) m USING (sku, warehouse)
		WHERE s.on_hand <> coalesce(m.oh, 0) OR s.reserved <> coalesce(m.rs, 0)`)
	// 3. Money: CAPTURED exactly for CONFIRMED orders, for their total; every other authorization voided.
	count("captured payment without a confirmed order", `SELECT count(*) FROM payments.payments p LEFT JOIN orders.orders o ON o.id = p.order_id
		WHERE p.status = 'CAPTURED' AND (o.status IS DISTINCT FROM 'CONFIRMED' OR o.total_cents <> p.amount_cents)`)
	count("confirmed order without a captured payment", `SELECT count(*) FROM orders.orders o LEFT JOIN payments.payments p ON p.order_id = o.id
		WHERE o.status = 'CONFIRMED' AND p.status IS DISTINCT FROM 'CAPTURED'`)
	count("authorization left open", `SELECT count(*) FROM payments.payments WHERE status IN ('AUTHORIZED', 'PENDING')`)
	// 4. Every order terminal, its events seq 1..n without gaps, the last one its status.
	count("order not terminal", `SELECT count(*) FROM orders.orders WHERE status NOT IN ('CONFIRMED','REJECTED','CANCELLED','FAILED')`)
	count("event seqs with gaps", `SELECT count(*) FROM (SELECT order_id, max(seq) m, count(*) c, min(seq) lo FROM orders.order_events GROUP BY order_id) e
		WHERE e.c <> e.m OR e.lo <> 1`)
	count("read model disagrees with the last event", `SELECT count(*) FROM orders.orders o JOIN orders.order_events e ON e.order_id = o.id AND e.seq = o.last_seq
		WHERE e.status <> o.status OR e.reason <> o.reason`)
	count("FAILED orders", `SELECT count(*) FROM orders.orders WHERE status = 'FAILED'`)
}

// TestHundredOrdersEndToEnd runs 100 orders with a mix of tokens, some for
// skus that run out, 10 of them left for the starter, and 3 cancelled while
// authorizing; every order ends terminal and the invariants hold.
func TestHundredOrdersEndToEnd(t *testing.T) {
	s := startSystem(t)
	s.StockProduct("PLENTY-1", 1000, map[string]int{"east": 500, "west": 500})
	s.StockProduct("PLENTY-2", 250, map[string]int{"east": 500})
	s.StockProduct("SCARCE-1", 9900, map[string]int{"east": 4, "west": 3})
	s.StockProduct("SCARCE-2", 4900, map[string]int{"west": 5})

	tokens := []string{payment.TokenOK, payment.TokenOK, payment.TokenOK, payment.TokenDeclined, payment.TokenInsufficientFunds,
		payment.TokenTransientError, payment.TokenCaptureFails, payment.TokenOK}
	allowed := map[string][]string{
		payment.TokenOK:                {"CONFIRMED"},
		payment.TokenTransientError:    {"CONFIRMED"},
		payment.TokenSlow:              {"CONFIRMED", "CANCELLED(customer)"},
		payment.TokenDeclined:          {"REJECTED(payment_declined)"},
		payment.TokenInsufficientFunds: {"REJECTED(insufficient_funds)"},
		payment.TokenCaptureFails:      {"REJECTED(capture_failed)"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var placed []orders.NewOrder
	var cancelled []orders.NewOrder
	for i := 0; i < 100; i++ {
		token := tokens[i%len(tokens)]
		lines := []order.Line{{SKU: "PLENTY-1", Name: "Plenty", Quantity: 1 + rng.IntN(3), UnitPriceCents: 1000}}
		if i%3 == 0 {
			lines = append(lines, order.Line{SKU: "SCARCE-1", Name: "Scarce", Quantity: 1 + rng.IntN(2), UnitPriceCents: 9900})
		}
		if i%5 == 0 {
			lines = append(lines, order.Line{SKU: "SCARCE-2", Name: "Scarce 2", Quantity: 1, UnitPriceCents: 4900})
		}
		if i%7 == 0 {
			lines = append(lines, order.Line{SKU: "PLENTY-2", Name: "Plenty 2", Quantity: 2, UnitPriceCents: 250})
		}
		if i >= 97 {
			// Cancelled while authorizing: plentiful stock, so only the cancel stops them.
			token = payment.TokenSlow
			lines = lines[:1]
		}
		n := sys.NewOrder(token, lines...)
		s.Record(n, i%10 != 9) // every tenth order is left for the starter
		placed = append(placed, n)
		if token == payment.TokenSlow {
			cancelled = append(cancelled, n)
		}
	}

	starterCtx, stopStarter := context.WithCancel(context.Background())
	starterDone := make(chan struct{})
	go func() { _ = s.starter.Run(starterCtx); close(starterDone) }()
	defer func() { stopStarter(); <-starterDone }()

	// Cancel the slow ones while their authorization is at the provider.
	var wg sync.WaitGroup
	for _, n := range cancelled {
		wg.Add(1)
		go func(n orders.NewOrder) {
			defer wg.Done()
			s.cancelWhen(t, n.ID, order.Reserved)
		}(n)
	}
	wg.Wait()
	s.waitAllTerminal(t, 3*time.Minute)

	outcomes := map[string]int{}
	for _, n := range placed {
		got := s.Outcome(n.ID)
		outcomes[got]++
		ok := got == "REJECTED(out_of_stock)" && n.PaymentMethod != payment.TokenSlow
		for _, want := range allowed[n.PaymentMethod] {
			ok = ok || got == want
		}
		if !ok {
			t.Errorf("order with %s ended %s", n.PaymentMethod, got)
		}
	}
	for _, n := range cancelled {
		if got := s.Outcome(n.ID); got != "CANCELLED(customer)" {
			t.Errorf("slow order cancelled while authorizing ended %s", got)
		}
	}
	t.Logf("outcomes: %v", outcomes)
	if outcomes["REJECTED(out_of_stock)"] == 0 || outcomes["CONFIRMED"] == 0 {
		t.Errorf("the mix should confirm some orders and run some skus out: %v", outcomes)
	}
	s.checkInvariants(t)
	s.checkVisibility(t, outcomes)
}

// cancelWhen sends the cancel update once the order shows status.
func (s *system) cancelWhen(t *testing.T, id uuid.UUID, status order.Status) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		var st string
		_ = s.pool.QueryRow(ctx, `SELECT status FROM orders.orders WHERE id = $1`, id).Scan(&st)
		if st == string(status) {
			break
		}
		if ctx.Err() != nil {
			t.Errorf("order %s never reached %s (is %s)", id, status, st)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h, err := s.client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: order.WorkflowID(id.String()), UpdateName: order.UpdateCancel,
		Args: []any{order.CancelRequest{Reason: order.ReasonCustomer}}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		t.Errorf("cancel %s: %v", id, err)
		return
	}
	var v order.View
	if err := h.Get(ctx, &v); err != nil {
		t.Errorf("cancel %s: %v", id, err)
		return
	}
	if v.Status != order.Cancelled || strings.Join(v.Compensations, ",") != "void payment,release stock" {
		t.Errorf("cancel answered %+v", v)
	}
}

// checkVisibility: operators can filter by OrderStatus in the Temporal UI.
func (s *system) checkVisibility(t *testing.T, outcomes map[string]int) {
	t.Helper()
	want := 0
	for k, n := range outcomes {
		if strings.HasPrefix(k, "REJECTED") {
			want += n
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := s.client.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: `OrderStatus = "REJECTED"`})
		if err != nil {
			t.Fatal(err)
		}
		if int(resp.GetCount()) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf(`visibility query OrderStatus="REJECTED" finds %d workflows, the database %d`, resp.GetCount(), want)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestCancelOfConfirmedOrderIsRefusedByTheServer(t *testing.T) {
	s := startSystem(t)
	s.StockProduct("SKU-1", 100, map[string]int{"east": 5})
	n := sys.NewOrder(payment.TokenOK, order.Line{SKU: "SKU-1", Name: "x", Quantity: 1, UnitPriceCents: 100})
	s.Record(n, true)
	s.waitAllTerminal(t, time.Minute)
	_, err := s.client.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{
		WorkflowID: order.WorkflowID(n.ID.String()), UpdateName: order.UpdateCancel,
		Args: []any{order.CancelRequest{Reason: order.ReasonCustomer}}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		t.Error("cancel of a confirmed order was accepted")
	}
	if got := s.Outcome(n.ID); got != "CONFIRMED" {
		t.Errorf("order is %s", got)
	}
	s.checkInvariants(t)
}

// TestStarterPicksUpOrphans: orders recorded while no workflow could be
// started are run by the starter, once each, however often it runs.
func TestStarterPicksUpOrphans(t *testing.T) {
	s := startSystem(t)
	s.StockProduct("SKU-1", 100, map[string]int{"east": 50})
	var ids []uuid.UUID
	for i := 0; i < 5; i++ {
		n := sys.NewOrder(payment.TokenOK, order.Line{SKU: "SKU-1", Name: "x", Quantity: 2, UnitPriceCents: 100})
		s.Record(n, false)
		ids = append(ids, n.ID)
	}
	ctx := context.Background()
	started, err := s.starter.Once(ctx)
	if err != nil || started != 5 {
		t.Fatalf("starter started %d, %v", started, err)
	}
	if again, err := s.starter.Once(ctx); err != nil || again != 0 {
		t.Errorf("second pass started %d, %v", again, err)
	}
	s.waitAllTerminal(t, time.Minute)
	for _, id := range ids {
		if got := s.Outcome(id); got != "CONFIRMED" {
			t.Errorf("orphan %s ended %s", id, got)
		}
	}
	var onHand int
	_ = s.pool.QueryRow(ctx, `SELECT on_hand FROM catalog.stock WHERE sku = 'SKU-1'`).Scan(&onHand)
	if onHand != 40 {
		t.Errorf("on_hand %d, want 40: each orphan must run exactly once", onHand)
	}
	s.checkInvariants(t)
}

// TestRepairFinishesATerminatedOrder: an operator terminates an order in
// the middle (the wrong tool: compensation is skipped); repair gives the
// stock back, voids the authorization and closes the order as FAILED.
func TestRepairFinishesATerminatedOrder(t *testing.T) {
	s := startSystem(t)
	s.StockProduct("SKU-1", 100, map[string]int{"east": 5})
	n := sys.NewOrder(payment.TokenSlow, order.Line{SKU: "SKU-1", Name: "x", Quantity: 2, UnitPriceCents: 100})
	s.Record(n, true)
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for s.Outcome(n.ID) != "RESERVED" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := orders.Repair(ctx, n.ID, s.store, payment.NewOperator(s.pool, payment.NewProvider(s.pool), testkit.Logger()), inventory.New(s.pool, testkit.Logger()), s.client, testkit.Logger()); err == nil {
		t.Error("repair of a running order was allowed")
	}
	if err := s.client.TerminateWorkflow(ctx, order.WorkflowID(n.ID.String()), "", "operator mistake"); err != nil {
		t.Fatal(err)
	}
	// Let the authorization that was in flight finish at the provider.
	time.Sleep(2500 * time.Millisecond)
	rep, err := orders.Repair(ctx, n.ID, s.store, payment.NewOperator(s.pool, payment.NewProvider(s.pool), testkit.Logger()), inventory.New(s.pool, testkit.Logger()), s.client, testkit.Logger())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Released || !rep.Voided || !rep.MarkedFailed {
		t.Errorf("report %+v", rep)
	}
	if got := s.Outcome(n.ID); got != "FAILED(operator_repair)" {
		t.Errorf("order is %s", got)
	}
	// Running it again changes nothing.
	if _, err := orders.Repair(ctx, n.ID, s.store, payment.NewOperator(s.pool, payment.NewProvider(s.pool), testkit.Logger()), inventory.New(s.pool, testkit.Logger()), s.client, testkit.Logger()); err != nil {
		t.Errorf("second repair: %v", err)
	}
	var reserved int
	_ = s.pool.QueryRow(ctx, `SELECT reserved FROM catalog.stock WHERE sku = 'SKU-1'`).Scan(&reserved)
	if reserved != 0 {
		t.Errorf("%d units still reserved", reserved)
	}
	// FAILED is allowed here: the check below is everything else.
	var open int
	_ = s.pool.QueryRow(ctx, `SELECT count(*) FROM payments.payments WHERE status IN ('AUTHORIZED','PENDING')`).Scan(&open)
	if open != 0 {
		t.Errorf("%d authorizations left open", open)
	}
}
