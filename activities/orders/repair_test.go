package orders_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/internal/testkit"
	sys "github.com/ordersaga/ordersaga/internal/testkit/system"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// system is the whole of ordersaga (internal/testkit/system), seen by the
// repair tests.
type system struct {
	*sys.System
	pool   *pgxpool.Pool
	client client.Client
	store  *orders.Store
}

// startRepairSystem runs the whole system, the payment worker on the
// configured provider as wrap changes it: the provider as it misbehaved
// before an operator's repair.
func startRepairSystem(t *testing.T, wrap func(payment.Provider) payment.Provider) *system {
	t.Helper()
	s := sys.Start(t, sys.Options{SlowDelay: 5 * time.Second, Provider: func(sim *payment.Simulator) payment.Provider { return wrap(sim) }})
	return &system{System: s, pool: s.Pool, client: s.Temporal, store: s.Store}
}

func (s *system) repair(ctx context.Context, id uuid.UUID) (orders.RepairReport, error) {
	log := testkit.Logger()
	return orders.Repair(ctx, id, s.store, payment.NewOperator(s.pool, payment.NewProvider(s.pool), log), inventory.New(s.pool, log), s.client, log)
}

// waitTerminal waits until the order's status is terminal.
func (s *system) waitTerminal(t *testing.T, id uuid.UUID, within time.Duration) {
	t.Helper()
	testkit.WaitFor(t, "the order is terminal", within, func() bool {
		o, err := s.store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return o.Status.Terminal()
	})
}

// providerHold reads the payment provider's own ledger (paysim.holds) for
// an order: its state ("" when it holds nothing) and how many captures
// moved money.
func providerHold(t *testing.T, s *system, id uuid.UUID) (state string, captures int) {
	t.Helper()
	err := s.pool.QueryRow(context.Background(), `SELECT state, captures FROM paysim.holds WHERE idempotency_key = $1`, id.String()).Scan(&state, &captures)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	return state, captures
}

func reservedUnits(t *testing.T, s *system, sku string) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT coalesce(sum(reserved), 0) FROM catalog.stock WHERE sku = $1`, sku).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func paymentStatus(t *testing.T, s *system, id uuid.UUID) string {
	t.Helper()
	var st string
	if err := s.pool.QueryRow(context.Background(), `SELECT status FROM payments.payments WHERE order_id = $1`, id).Scan(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// heldCapture keeps every capture at the provider's door until released.
type heldCapture struct {
	payment.Provider
	once             sync.Once
	reached, release chan struct{}
}

func (h *heldCapture) Capture(ctx context.Context, key string, amountCents int64) error {
	h.once.Do(func() { close(h.reached) })
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return h.Provider.Capture(ctx, key, amountCents)
}

// TestRepairRefusesWhileACaptureMayBeInFlight: an operator terminates an
// order while its capture is at the provider (terminating does not stop
// the activity in its worker), then runs repair. Voiding then would race
// the capture; repair must refuse, say why, and leave the money and the
// stock alone. When the capture lands, the shopper is charged once and
// nothing was voided or released.
func TestRepairRefusesWhileACaptureMayBeInFlight(t *testing.T) {
	ctx := context.Background()
	held := &heldCapture{reached: make(chan struct{}), release: make(chan struct{})}
	s := startRepairSystem(t, func(p payment.Provider) payment.Provider { held.Provider = p; return held })
	s.StockProduct("REPAIR-1", 100, map[string]int{"east": 5})
	n := sys.NewOrder(payment.TokenOK, order.Line{SKU: "REPAIR-1", Name: "x", Quantity: 2, UnitPriceCents: 100})
	s.Record(n, true)
	select {
	case <-held.reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the capture never reached the provider")
	}
	if err := s.client.TerminateWorkflow(ctx, order.WorkflowID(n.ID.String()), "", "operator mistake"); err != nil {
		t.Fatal(err)
	}

	_, err := s.repair(ctx, n.ID)
	if !errors.Is(err, orders.ErrCaptureMayBeInFlight) {
		t.Fatalf("repair during a capture: got %v, want a refusal because a capture may be in flight", err)
	}
	if !strings.Contains(err.Error(), "CapturePayment") || !strings.Contains(err.Error(), "run the repair again after") {
		t.Errorf("the refusal does not say what is in flight and what to do: %v", err)
	}
	if state, _ := providerHold(t, s, n.ID); state != "AUTHORIZED" {
		t.Errorf("the refused repair changed the provider's hold to %q", state)
	}
	if got := reservedUnits(t, s, "REPAIR-1"); got != 2 {
		t.Errorf("the refused repair released stock: %d units reserved, want 2", got)
	}

	// The capture lands after all, as it would have.
	close(held.release)
	testkit.WaitFor(t, "the capture is recorded", 30*time.Second, func() bool { return paymentStatus(t, s, n.ID) == "CAPTURED" })
	if _, err := s.repair(ctx, n.ID); err == nil {
		t.Error("repair of a captured order was allowed")
	}
	if state, captures := providerHold(t, s, n.ID); state != "CAPTURED" || captures != 1 {
		t.Errorf("provider hold %s with %d captures, want CAPTURED once", state, captures)
	}
	if got := reservedUnits(t, s, "REPAIR-1"); got != 2 {
		t.Errorf("units of a paid order were released: %d reserved, want 2", got)
	}
}

// voidsRefused is a provider that refuses every void for good, until an
// operator fixes it: the saga's void fails and the order ends FAILED with
// the money still held.
type voidsRefused struct{ payment.Provider }

func (voidsRefused) Void(context.Context, string) error {
	return &payment.DeclineError{Code: "processor_error"}
}

// TestRepairVoidsTheLiveHoldOfAFailedOrder: a FAILED order whose void
// never reached the provider still holds the shopper's money there; once
// the cause is fixed, repair voids it at the configured provider (the one
// whose ledger the payment worker writes), and running it again changes
// nothing.
func TestRepairVoidsTheLiveHoldOfAFailedOrder(t *testing.T) {
	ctx := context.Background()
	s := startRepairSystem(t, func(p payment.Provider) payment.Provider { return voidsRefused{p} })
	s.StockProduct("REPAIR-2", 100, map[string]int{"east": 5})
	n := sys.NewOrder(payment.TokenCaptureFails, order.Line{SKU: "REPAIR-2", Name: "x", Quantity: 1, UnitPriceCents: 100})
	s.Record(n, true)
	s.waitTerminal(t, n.ID, time.Minute)
	if got := s.Outcome(n.ID); !strings.HasPrefix(got, "FAILED") {
		t.Fatalf("setup: order ended %s, want FAILED", got)
	}
	if state, _ := providerHold(t, s, n.ID); state != "AUTHORIZED" {
		t.Fatalf("setup: provider hold is %q, want a live AUTHORIZED hold", state)
	}

	rep, err := s.repair(ctx, n.ID)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	if !rep.Voided || !rep.Released || rep.MarkedFailed {
		t.Errorf("report %+v: want voided and released, the order already FAILED", rep)
	}
	if state, _ := providerHold(t, s, n.ID); state != "VOIDED" {
		t.Errorf("after repair the provider hold is %q, want VOIDED", state)
	}
	if got := paymentStatus(t, s, n.ID); got != "VOIDED" {
		t.Errorf("payment is %s", got)
	}
	if _, err := s.repair(ctx, n.ID); err != nil {
		t.Errorf("second repair: %v", err)
	}
	var voids int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM paysim.operations WHERE idempotency_key = $1 AND op = 'void' AND amount_cents > 0`, n.ID.String()).Scan(&voids); err != nil {
		t.Fatal(err)
	}
	if voids != 1 {
		t.Errorf("the provider let go of the hold %d times, want once", voids)
	}
	if got := reservedUnits(t, s, "REPAIR-2"); got != 0 {
		t.Errorf("%d units still reserved", got)
	}
	if got := s.Outcome(n.ID); !strings.HasPrefix(got, "FAILED") {
		t.Errorf("order is %s after repair; it stays FAILED", got)
	}
}

// A PENDING order whose workflow was never started belongs to the starter:
// a repair racing it would write the saga's next seq itself.
func TestRepairLeavesANeverStartedOrderToTheStarter(t *testing.T) {
	s := startRepairSystem(t, func(p payment.Provider) payment.Provider { return p })
	s.StockProduct("REPAIR-3", 100, map[string]int{"east": 5})
	n := sys.NewOrder(payment.TokenOK, order.Line{SKU: "REPAIR-3", Name: "x", Quantity: 1, UnitPriceCents: 100})
	s.Record(n, false)
	if _, err := s.repair(context.Background(), n.ID); err == nil || !strings.Contains(err.Error(), "starter") {
		t.Fatalf("repair of a never-started order: %v, want a refusal naming the starter", err)
	}
	if got := s.Outcome(n.ID); got != "PENDING" {
		t.Errorf("order is %s after the refused repair", got)
	}
}
