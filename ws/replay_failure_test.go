package ws_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/outbox"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
	"github.com/ordersaga/ordersaga/ws"
)

// TestReplayFailureLosesNothing: the database fails a subscription's
// replay (its session is terminated while live events of the order arrive
// and are held). The client is told, with an error frame naming the order,
// to subscribe again with after_seq; it receives nothing of the order
// until it does (a live event meanwhile would follow a gap); and once
// resubscribed it receives every event, once, in seq order.
func TestReplayFailureLosesNothing(t *testing.T) {
	ctx := context.Background()
	dsn := testkit.NewDatabase(t)
	// The hub's own pool, named so that the test can find its session.
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	const appName = "ws-hub-under-test"
	cfg.ConnConfig.RuntimeParams["application_name"] = appName
	hubPool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hubPool.Close)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	tokens := authn.New(strings.Repeat("h", 32), time.Hour, time.Now)
	hub := ws.New(ws.Deps{Events: outbox.NewLog(hubPool), Tokens: tokens, Registry: prometheus.NewRegistry(), Log: testkit.Logger()}, ws.Settings{})
	srv := httptest.NewServer(hub)
	t.Cleanup(srv.Close)
	adminToken, _, err := tokens.Issue(authn.Claims{UserID: uuid.New(), Role: "admin"})
	if err != nil {
		t.Fatal(err)
	}

	// An order with three committed events, as the gateway and workflow write them.
	store := orders.NewStore(pool)
	customer := uuid.New()
	o := orders.NewOrder{ID: uuid.New(), CustomerID: customer, PaymentMethod: "tok_ok", Currency: "USD",
		Lines: []order.Line{{SKU: "SKU-1", Name: "x", Quantity: 1, UnitPriceCents: 100}}}
	if err := store.CreatePending(ctx, o); err != nil {
		t.Fatal(err)
	}
	record := func(seq int, st order.Status) {
		t.Helper()
		if err := store.RecordStatus(ctx, order.StatusRecord{OrderID: o.ID.String(), CustomerID: customer.String(), Seq: seq, Status: st, TotalCents: 100, OccurredAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	record(2, order.Reserved)
	record(3, order.Authorized)
	// publish hands an order's event to the hub as its Kafka consumer does.
	committed := map[int]order.OrderEvent{}
	readEvents := func() {
		t.Helper()
		events, err := outbox.NewLog(pool).Events(ctx, o.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			committed[e.Seq] = e
		}
	}
	publish := func(seq int) {
		data, _ := json.Marshal(committed[seq])
		hub.Dispatch(committed[seq], data)
	}
	readEvents()

	// Hold the replay on a lock, so that live events arrive during it.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE orders.order_events IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	c := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"), adminToken)
	c.send(map[string]any{"type": "subscribe", "order_id": o.ID, "after_seq": 0})
	var pid int
	// (Outside the transaction: within one, pg_stat_activity is a snapshot.)
	testkit.WaitFor(t, "the replay to wait for the lock", 30*time.Second, func() bool {
		err := pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, appName).Scan(&pid)
		return err == nil
	})
	publish(2) // the relay published events 2 and 3 meanwhile
	publish(3)
	// The database fails the replay: its session is killed, as a server
	// restart or an administrator would.
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	m, err := c.next(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != "error" {
		t.Fatalf("after a failed replay the client got %+v, want an error frame", m)
	}
	if m.Code != "unavailable" || m.OrderID != o.ID.String() || !strings.Contains(m.Message, "after_seq") {
		t.Errorf("error frame %+v: want code unavailable, the order's id, and a message that says to resubscribe with after_seq", m)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// The order goes on; its next event must not reach a client whose
	// subscription failed: it would follow a gap. (Dispatch queues to the
	// client at once, so it would arrive before anything that follows.)
	record(4, order.Confirmed)
	readEvents()
	publish(4)

	// The client does as the error says: subscribe again from its last seq.
	// What it receives after the error frame is every event, once, in order.
	c.send(map[string]any{"type": "subscribe", "order_id": o.ID, "after_seq": 0})
	got := c.eventsUntilTerminal(10 * time.Second)
	if statuses(got) != "1:PENDING 2:RESERVED 3:AUTHORIZED 4:CONFIRMED" {
		t.Errorf("after the error frame the client received %s", statuses(got))
	}
	c.quiet(300 * time.Millisecond)
}
