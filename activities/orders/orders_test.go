package orders_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestRecordStatusTwiceAndOutOfOrder(t *testing.T) {
	ctx := context.Background()
	pool := testkit.NewPool(t)
	store := orders.NewStore(pool)
	acts := orders.NewActivities(store, zap.NewNop())
	n := orders.NewOrder{ID: uuid.New(), CustomerID: uuid.New(), PaymentMethod: "tok_ok", Currency: "USD",
		Lines: []order.Line{{SKU: "SKU-1", Name: "x", Quantity: 2, UnitPriceCents: 150}}}
	if err := store.CreatePending(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := store.CreatePending(ctx, n); !errors.Is(err, orders.ErrExists) {
		t.Errorf("second CreatePending: %v", err)
	}
	rec := func(seq int, st order.Status) order.StatusRecord {
		return order.StatusRecord{OrderID: n.ID.String(), CustomerID: n.CustomerID.String(), Seq: seq, Status: st,
			TotalCents: 300, OccurredAt: time.Now().UTC()}
	}
	state := func() (string, int, int) {
		var st string
		var last, events int
		if err := pool.QueryRow(ctx, `SELECT status, last_seq, (SELECT count(*) FROM orders.order_events WHERE order_id = o.id) FROM orders.orders o WHERE id = $1`, n.ID).Scan(&st, &last, &events); err != nil {
			t.Fatal(err)
		}
		return st, last, events
	}
	for i := 0; i < 2; i++ {
		if err := acts.RecordStatus(ctx, rec(2, order.Reserved)); err != nil {
			t.Fatal(err)
		}
	}
	if st, last, events := state(); st != "RESERVED" || last != 2 || events != 2 {
		t.Errorf("after RESERVED twice: %s seq %d, %d events", st, last, events)
	}
	if err := acts.RecordStatus(ctx, rec(4, order.Confirmed)); err != nil {
		t.Fatal(err)
	}
	// seq 3 arrives late (a retried local activity): it fills the history but
	// does not move the order back.
	if err := acts.RecordStatus(ctx, rec(3, order.Authorized)); err != nil {
		t.Fatal(err)
	}
	if st, last, events := state(); st != "CONFIRMED" || last != 4 || events != 4 {
		t.Errorf("after a late seq 3: %s seq %d, %d events", st, last, events)
	}
	var total int64
	if err := pool.QueryRow(ctx, `SELECT total_cents FROM orders.orders WHERE id = $1`, n.ID).Scan(&total); err != nil || total != 300 {
		t.Errorf("total %d, %v", total, err)
	}

	err := acts.RecordStatus(ctx, order.StatusRecord{OrderID: "nope", Seq: 2, Status: order.Reserved})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() {
		t.Errorf("an invalid record should be a non-retryable error, got %v", err)
	}
}
