package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// TestAppendWithAppliesTheChangeOnceAndNotifies: a transition recorded with
// AppendWith changes the order's row and wakes the relay when its event is
// new, and changes nothing, wakes no one, when it is a retry.
func TestAppendWithAppliesTheChangeOnceAndNotifies(t *testing.T) {
	pool := testkit.NewPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := writeOrders(t, pool, 1)[0]
	listener, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Release()
	if _, err := listener.Exec(ctx, "LISTEN "+channel); err != nil {
		t.Fatal(err)
	}
	change := Update{Table: "orders.orders", Set: "status = $4, last_seq = $2", Where: "id = $1 AND last_seq < $2"}
	e := order.OrderEvent{OrderID: id, CustomerID: uuid.New(), Seq: 2, Status: order.Reserved, TotalCents: 100, OccurredAt: time.Now()}
	status := func() (order.Status, int) {
		var s order.Status
		var seq int
		if err := pool.QueryRow(ctx, `SELECT status, last_seq FROM orders.orders WHERE id = $1`, id).Scan(&s, &seq); err != nil {
			t.Fatal(err)
		}
		return s, seq
	}
	notified := func() bool {
		wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := listener.Conn().WaitForNotification(wctx)
		return err == nil
	}

	added, err := AppendWith(ctx, pool, e, change)
	if err != nil || !added {
		t.Fatalf("first append: added %v, err %v", added, err)
	}
	if s, seq := status(); s != order.Reserved || seq != 2 {
		t.Errorf("after the transition the order is %s at seq %d, want RESERVED at 2", s, seq)
	}
	if !notified() {
		t.Error("the relay was not notified of a new event")
	}

	// A retry of the same transition, carrying another status: the event
	// is there, so the change must not apply.
	retry := e
	retry.Status = order.Authorized
	// Its condition has a top-level OR, which must not escape the check
	// that the event went in.
	added, err = AppendWith(ctx, pool, retry, Update{Table: "orders.orders", Set: "status = $4, last_seq = $2 - 1", Where: "id = $1 OR true"})
	if err != nil || added {
		t.Fatalf("retried append: added %v, err %v", added, err)
	}
	if s, seq := status(); s != order.Reserved || seq != 2 {
		t.Errorf("a retried transition changed the order to %s at seq %d", s, seq)
	}
	if notified() {
		t.Error("a retried transition woke the relay")
	}
	var events int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM orders.order_events WHERE order_id = $1`, id).Scan(&events); err != nil || events != 2 {
		t.Errorf("%d events (err %v), want 2", events, err)
	}
}
