package gateway_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// TestRetryReplaysTheStoredOrder: a retried POST /orders with the same
// Idempotency-Key and body answers the order as it was accepted, whatever
// the catalogue says now. Orders accepted while Temporal was down have no
// workflow yet: the retry starts it with the stored prices, never today's;
// and it never starts a workflow for an order that already ran.
func TestRetryReplaysTheStoredOrder(t *testing.T) {
	tmp := newOwnTemporal(t)
	s := newStack(t, options{temporalAddr: tmp.addr(), namespace: "default", startTimeout: time.Second})
	s.product("WATCH-42", 1000, map[string]int{"east": 5})
	s.product("STRAP-7", 500, map[string]int{"east": 5})
	s.product("RING-1", 700, map[string]int{"east": 5})
	tok, _ := s.customer()
	body := func(sku string, qty int) map[string]any {
		return map[string]any{"items": []map[string]any{{"sku": sku, "quantity": qty}}, "payment_method": "tok_ok"}
	}
	place := func(key, sku string, qty int, want int) orderJSON {
		t.Helper()
		r := s.do("POST", "/api/v1/orders", tok, body(sku, qty), "Idempotency-Key", key)
		var o orderJSON
		if r.Status < 300 {
			r.json(t, &o)
		}
		if r.Status != want || r.Header.Get("Location") != "/api/v1/orders/"+o.ID {
			t.Errorf("POST key %s: %d %s, want %d", key, r.Status, r.Body, want)
		}
		return o
	}

	// Temporal is down: every order is accepted, and none has a workflow.
	tmp.stop()
	repriced := place("repriced", "WATCH-42", 2, 202)
	withdrawn := place("withdrawn", "STRAP-7", 1, 202)
	finished := place("finished", "RING-1", 1, 202)
	ranUnmarked := place("ran-unmarked", "RING-1", 2, 202)

	// Meanwhile the price changes and a product is withdrawn.
	if r := s.do("PATCH", "/api/v1/products/WATCH-42", s.admin, map[string]any{"price_cents": 1500}); r.Status != 200 {
		t.Fatalf("reprice: %d %s", r.Status, r.Body)
	}
	if r := s.do("DELETE", "/api/v1/products/STRAP-7", s.admin, nil); r.Status != 204 {
		t.Fatalf("withdraw: %d %s", r.Status, r.Body)
	}
	// And two orders ran to their end through a workflow that Temporal has
	// since forgotten (its retention is 72 h): one marked started, one whose
	// mark was lost.
	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, `UPDATE orders.orders SET status = 'CONFIRMED', last_seq = 4, workflow_started_at = now() WHERE id = $1`, finished.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE orders.orders SET status = 'REJECTED', reason = 'out_of_stock', last_seq = 2 WHERE id = $1`, ranUnmarked.ID); err != nil {
		t.Fatal(err)
	}
	tmp.start()
	// Temporal is back once the gateway's own client says so: its
	// connection comes back after the client's reconnect backoff.
	testkit.WaitFor(t, "the gateway to reach Temporal again", 30*time.Second, func() bool {
		return s.do("GET", "/readyz", "", nil).Status == 200
	})

	// The same key with another body is still refused, whatever the prices.
	if r := s.do("POST", "/api/v1/orders", tok, body("WATCH-42", 3), "Idempotency-Key", "repriced"); r.Status != 422 || r.errCode() != "idempotency_key_reused" {
		t.Errorf("same key, other body: %d %s", r.Status, r.Body)
	}

	// The repriced order: answered and run at the price it was accepted at.
	again := place("repriced", "WATCH-42", 2, 200)
	if again.ID != repriced.ID || again.TotalCents != 2000 || len(again.Items) != 1 || again.Items[0].UnitPriceCents != 1000 {
		t.Errorf("retry answered %+v, want the stored order at 10.00", again)
	}
	in := workflowInput(t, s.temporal, repriced.ID)
	if in.TotalCents != 2000 || len(in.Lines) != 1 || in.Lines[0].UnitPriceCents != 1000 {
		t.Errorf("the workflow was started with %+v, want the stored prices", in)
	}
	done := s.waitStatus(tok, repriced.ID, 90*time.Second, "CONFIRMED", "REJECTED", "CANCELLED", "FAILED")
	if done.Status != "CONFIRMED" || done.TotalCents != 2000 {
		t.Errorf("the repriced order ended %s at %d cents", done.Status, done.TotalCents)
	}

	// The orders that already ran: answered as stored, and not run again.
	for _, tc := range []struct {
		key    string
		sku    string
		qty    int
		o      orderJSON
		status string
	}{{"finished", "RING-1", 1, finished, "CONFIRMED"}, {"ran-unmarked", "RING-1", 2, ranUnmarked, "REJECTED"}} {
		again := place(tc.key, tc.sku, tc.qty, 200)
		if again.ID != tc.o.ID || again.Status != tc.status {
			t.Errorf("retry of %s answered %+v", tc.key, again)
		}
		_, err := s.temporal.DescribeWorkflowExecution(ctx, order.WorkflowID(tc.o.ID), "")
		var notFound *serviceerror.NotFound
		if !errors.As(err, &notFound) {
			t.Errorf("the retry of %s, which already ran, started a workflow (describe: %v)", tc.key, err)
		}
	}

	// The withdrawn product's order: the stored order, not 422 inactive_sku.
	again = place("withdrawn", "STRAP-7", 1, 200)
	if again.ID != withdrawn.ID || again.TotalCents != 500 || len(again.Items) != 1 || again.Items[0].SKU != "STRAP-7" {
		t.Errorf("retry answered %+v, want the stored order", again)
	}
	if in := workflowInput(t, s.temporal, withdrawn.ID); in.TotalCents != 500 {
		t.Errorf("the withdrawn product's order was started with %+v", in)
	}
}

// workflowInput returns the input the order's workflow was started with.
func workflowInput(t *testing.T, c client.Client, orderID string) order.Input {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	it := c.GetWorkflowHistory(ctx, order.WorkflowID(orderID), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		t.Fatalf("order %s has no workflow", orderID)
	}
	ev, err := it.Next()
	if err != nil {
		t.Fatalf("order %s: workflow history: %v", orderID, err)
	}
	var in order.Input
	if err := testkit.Codec().DataConverter().FromPayloads(ev.GetWorkflowExecutionStartedEventAttributes().GetInput(), &in); err != nil {
		t.Fatal(err)
	}
	return in
}
