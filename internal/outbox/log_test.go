package outbox

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersaga/ordersaga/internal/apperr"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// TestAppendOnceAndReadBack: an event appended twice is stored once; Log
// reads an order's events after a seq, complete, its owner, and the lag.
func TestAppendOnceAndReadBack(t *testing.T) {
	ctx := context.Background()
	pool := testkit.NewPool(t)
	ids := writeOrders(t, pool, 1, order.Reserved)
	id := ids[0]
	late := order.OrderEvent{OrderID: id, CustomerID: uuid.New(), Seq: 3, Status: order.Rejected, Reason: order.ReasonOutOfStock, TotalCents: 100,
		OccurredAt: time.Now().Add(-time.Hour).Truncate(time.Millisecond).In(time.FixedZone("UTC+1", 3600))}
	if !appendEvent(t, pool, late) {
		t.Fatal("a new event was not appended")
	}
	if appendEvent(t, pool, late) {
		t.Error("the same (order, seq) was appended twice")
	}

	log := NewLog(pool)
	events, err := log.Events(ctx, id, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Seq != 2 || events[1].Seq != 3 {
		t.Fatalf("events after seq 1: %+v", events)
	}
	got := events[1]
	want := late.Complete()
	want.CustomerID = got.CustomerID // each of writeOrders' later events names a customer of its own
	if !got.OccurredAt.Equal(want.OccurredAt) || got.OccurredAt.Location() != time.UTC {
		t.Errorf("occurred_at %v, want %v in UTC", got.OccurredAt, want.OccurredAt)
	}
	got.OccurredAt = want.OccurredAt
	if got != want {
		t.Errorf("read back %+v, want %+v", got, want)
	}

	first, err := log.Events(ctx, id, 0)
	if err != nil || len(first) != 3 {
		t.Fatalf("all events: %d, %v", len(first), err)
	}
	if owner, err := log.Owner(ctx, id); err != nil || owner != first[0].CustomerID {
		t.Errorf("owner %s, %v; want the customer of seq 1, %s", owner, err, first[0].CustomerID)
	}
	if _, err := log.Owner(ctx, uuid.New()); !apperr.Is(err, apperr.NotFound) {
		t.Errorf("owner of an unknown order: %v, want NotFound", err)
	}
	if n, age, err := log.Lag(ctx); err != nil || n != 3 || age <= 0 {
		t.Errorf("lag %d events, oldest %s, %v; want 3 unpublished", n, age, err)
	}
	if err := log.Ping(ctx); err != nil {
		t.Error(err)
	}
}
