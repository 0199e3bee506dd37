package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersaga/ordersaga/workflows/order"
)

func TestPlaceReadAndFollowAnOrder(t *testing.T) {
	s := newStack(t, options{})
	s.product("WATCH-42", 12900, map[string]int{"east": 5, "west": 3})
	s.product("BAND-1", 1500, map[string]int{"east": 10})
	tok, me := s.customer()

	r := s.placeOrder(tok, "tok_ok", "WATCH-42", 2, "BAND-1", 1)
	var o orderJSON
	r.json(t, &o)
	if r.Status != 202 || o.Status != "PENDING" || o.TotalCents != 2*12900+1500 || o.Currency != "USD" || o.CustomerID != me {
		t.Fatalf("place: %d %s", r.Status, r.Body)
	}
	if loc := r.Header.Get("Location"); loc != "/api/v1/orders/"+o.ID {
		t.Errorf("Location %q", loc)
	}
	// Prices come from the catalogue, per line.
	for _, it := range o.Items {
		if it.LineTotalCents != it.UnitPriceCents*int64(it.Quantity) || (it.SKU == "WATCH-42" && it.UnitPriceCents != 12900) {
			t.Errorf("line %+v", it)
		}
	}
	// Readable at once: the order, the list and its first event.
	if r := s.do("GET", "/api/v1/orders/"+o.ID, tok, nil); r.Status != 200 {
		t.Errorf("read after 202: %d", r.Status)
	}
	var events struct {
		Items []struct {
			EventID string `json:"event_id"`
			Type    string `json:"type"`
			Seq     int    `json:"seq"`
			Status  string `json:"status"`
		} `json:"items"`
	}
	s.do("GET", "/api/v1/orders/"+o.ID+"/events", tok, nil).json(t, &events)
	if len(events.Items) < 1 || events.Items[0].Seq != 1 || events.Items[0].Status != "PENDING" || events.Items[0].EventID != o.ID+":1" || events.Items[0].Type != "order.status_changed" {
		t.Errorf("events right after 202: %+v", events.Items)
	}

	final := s.waitStatus(tok, o.ID, 30*time.Second, "CONFIRMED")
	if final.Reason != "" {
		t.Errorf("confirmed with reason %q", final.Reason)
	}
	s.do("GET", "/api/v1/orders/"+o.ID+"/events", tok, nil).json(t, &events)
	var got []string
	for i, e := range events.Items {
		got = append(got, e.Status)
		if e.Seq != i+1 {
			t.Errorf("event %d has seq %d", i, e.Seq)
		}
	}
	if strings.Join(got, ",") != "PENDING,RESERVED,AUTHORIZED,CONFIRMED" {
		t.Errorf("events %v", got)
	}
	s.do("GET", "/api/v1/orders/"+o.ID+"/events?after_seq=2", tok, nil).json(t, &events)
	if len(events.Items) != 2 || events.Items[0].Seq != 3 {
		t.Errorf("after_seq=2: %+v", events.Items)
	}
	if r := s.do("GET", "/api/v1/orders/"+o.ID+"/events?after_seq=-1", tok, nil); r.Status != 400 {
		t.Errorf("after_seq=-1: %d", r.Status)
	}
	var p productJSON
	s.do("GET", "/api/v1/products/WATCH-42", "", nil).json(t, &p)
	if p.Available != 6 {
		t.Errorf("WATCH-42 available %d after selling 2 of 8", p.Available)
	}

	// Cancel of a confirmed order is a conflict.
	if r := s.do("POST", "/api/v1/orders/"+o.ID+"/cancel", tok, nil); r.Status != 409 || r.errCode() != "conflict" {
		t.Errorf("cancel confirmed: %d %s", r.Status, r.Body)
	}
	// Another customer cannot see or cancel it; an admin can see it.
	other, _ := s.customer()
	for _, path := range []string{"/api/v1/orders/" + o.ID, "/api/v1/orders/" + o.ID + "/events"} {
		if r := s.do("GET", path, other, nil); r.Status != 404 || r.errCode() != "not_found" {
			t.Errorf("other customer GET %s: %d", path, r.Status)
		}
	}
	if r := s.do("POST", "/api/v1/orders/"+o.ID+"/cancel", other, nil); r.Status != 404 {
		t.Errorf("other customer cancel: %d", r.Status)
	}
	if r := s.do("GET", "/api/v1/orders/"+o.ID, s.admin, nil); r.Status != 200 {
		t.Errorf("admin GET: %d", r.Status)
	}
	for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
		if r := s.do("GET", "/api/v1/orders/"+id, tok, nil); r.Status != 404 {
			t.Errorf("GET %s: %d", id, r.Status)
		}
	}
}

func TestRejectedAndCancelledOrders(t *testing.T) {
	s := newStack(t, options{})
	s.product("WATCH-42", 12900, map[string]int{"east": 5})
	tok, _ := s.customer()
	for _, tc := range []struct {
		token, sku string
		qty        int
		status     string
		reason     string
	}{
		{"tok_declined", "WATCH-42", 1, "REJECTED", "payment_declined"},
		{"tok_insufficient_funds", "WATCH-42", 1, "REJECTED", "insufficient_funds"},
		{"tok_capture_fails", "WATCH-42", 1, "REJECTED", "capture_failed"},
		{"tok_ok", "WATCH-42", 6, "REJECTED", "out_of_stock"},
		{"tok_transient_error", "WATCH-42", 1, "CONFIRMED", ""},
	} {
		r := s.placeOrder(tok, tc.token, tc.sku, tc.qty)
		var o orderJSON
		r.json(t, &o)
		if r.Status != 202 {
			t.Fatalf("%s: %d %s", tc.token, r.Status, r.Body)
		}
		final := s.waitStatus(tok, o.ID, 30*time.Second, "CONFIRMED", "REJECTED", "CANCELLED", "FAILED")
		if final.Status != tc.status || final.Reason != tc.reason {
			t.Errorf("%s: ended %s(%s), want %s(%s)", tc.token, final.Status, final.Reason, tc.status, tc.reason)
		}
	}

	// Cancelled while the slow authorization runs: 200, and CANCELLED(customer).
	r := s.placeOrder(tok, "tok_slow", "WATCH-42", 2)
	var o orderJSON
	r.json(t, &o)
	s.waitStatus(tok, o.ID, 30*time.Second, "RESERVED")
	r = s.do("POST", "/api/v1/orders/"+o.ID+"/cancel", tok, map[string]string{"reason": "changed my mind"})
	var c orderJSON
	r.json(t, &c)
	if r.Status != 200 {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	final := s.waitStatus(tok, o.ID, 30*time.Second, "CANCELLED")
	if final.Reason != "customer" {
		t.Errorf("cancelled with reason %q", final.Reason)
	}
	if r := s.do("POST", "/api/v1/orders/"+o.ID+"/cancel", tok, nil); r.Status != 409 {
		t.Errorf("second cancel: %d", r.Status)
	}
	// An admin cancelling records reason admin.
	r = s.placeOrder(tok, "tok_slow", "WATCH-42", 1)
	r.json(t, &o)
	s.waitStatus(tok, o.ID, 30*time.Second, "RESERVED")
	if r := s.do("POST", "/api/v1/orders/"+o.ID+"/cancel", s.admin, nil); r.Status != 200 {
		t.Fatalf("admin cancel: %d %s", r.Status, r.Body)
	}
	if final := s.waitStatus(tok, o.ID, 30*time.Second, "CANCELLED"); final.Reason != "admin" {
		t.Errorf("admin cancel reason %q", final.Reason)
	}
	var p productJSON
	s.do("GET", "/api/v1/products/WATCH-42", "", nil).json(t, &p)
	if p.Available != 4 || p.Stock[0].Reserved != 0 {
		t.Errorf("after one sale of 1: %+v", p)
	}

	// Lists: own orders only, filter by status, pages.
	var page struct {
		Items      []orderJSON `json:"items"`
		NextCursor string      `json:"next_cursor"`
	}
	s.do("GET", "/api/v1/orders?status=REJECTED", tok, nil).json(t, &page)
	if len(page.Items) != 4 {
		t.Errorf("REJECTED orders: %d", len(page.Items))
	}
	seen := 0
	cursor := ""
	for {
		r := s.do("GET", "/api/v1/orders?limit=3&cursor="+cursor, tok, nil)
		page.NextCursor = ""
		r.json(t, &page)
		seen += len(page.Items)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if seen != 7 {
		t.Errorf("paged through %d orders, want 7", seen)
	}
	other, _ := s.customer()
	s.do("GET", "/api/v1/orders", other, nil).json(t, &page)
	if len(page.Items) != 0 {
		t.Errorf("another customer lists %d orders", len(page.Items))
	}
	s.do("GET", "/api/v1/orders?limit=200", s.admin, nil).json(t, &page)
	if len(page.Items) != 7 {
		t.Errorf("admin lists %d orders", len(page.Items))
	}
	for _, q := range []string{"status=DONE", "limit=0", "cursor=abc"} {
		if r := s.do("GET", "/api/v1/orders?"+q, tok, nil); r.Status != 400 {
			t.Errorf("%s: %d", q, r.Status)
		}
	}
}

func TestOrderValidationWritesNothing(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	s.product("WATCH-42", 12900, map[string]int{"east": 5})
	s.product("OLD-1", 100, map[string]int{"east": 5})
	s.do("DELETE", "/api/v1/products/OLD-1", s.admin, nil)
	tok, _ := s.customer()
	fifty := make([]string, 51)
	for i := range fifty {
		fifty[i] = fmt.Sprintf(`{"sku":"S-%d","quantity":1}`, i)
	}
	before := s.counts()
	for _, tc := range []struct {
		name, body, code, field string
		status                  int
		key                     string
	}{
		{"no items", `{"items":[],"payment_method":"tok_ok"}`, "invalid_argument", "items", 400, ""},
		{"51 items", `{"items":[` + strings.Join(fifty, ",") + `],"payment_method":"tok_ok"}`, "invalid_argument", "items", 400, ""},
		{"quantity 0", `{"items":[{"sku":"WATCH-42","quantity":0}],"payment_method":"tok_ok"}`, "invalid_argument", "items.quantity", 400, ""},
		{"quantity 1001", `{"items":[{"sku":"WATCH-42","quantity":1001}],"payment_method":"tok_ok"}`, "invalid_argument", "items.quantity", 400, ""},
		{"fractional quantity", `{"items":[{"sku":"WATCH-42","quantity":1.5}],"payment_method":"tok_ok"}`, "invalid_argument", "items.quantity", 400, ""},
		{"no quantity", `{"items":[{"sku":"WATCH-42"}],"payment_method":"tok_ok"}`, "invalid_argument", "items.quantity", 400, ""},
		{"sku twice", `{"items":[{"sku":"WATCH-42","quantity":1},{"sku":"WATCH-42","quantity":2}],"payment_method":"tok_ok"}`, "invalid_argument", "items.sku", 400, ""},
		{"malformed sku", `{"items":[{"sku":"watch 42","quantity":1}],"payment_method":"tok_ok"}`, "invalid_argument", "items.sku", 400, ""},
		{"unknown token", `{"items":[{"sku":"WATCH-42","quantity":1}],"payment_method":"4111111111111111"}`, "invalid_argument", "payment_method", 400, ""},
		{"unknown sku", `{"items":[{"sku":"NOPE-1","quantity":1}],"payment_method":"tok_ok"}`, "unknown_sku", "", 422, ""},
		{"inactive sku", `{"items":[{"sku":"OLD-1","quantity":1}],"payment_method":"tok_ok"}`, "inactive_sku", "", 422, ""},
		{"bad JSON", `{"items":`, "invalid_json", "", 400, ""},
		{"key too long", `{"items":[{"sku":"WATCH-42","quantity":1}],"payment_method":"tok_ok"}`, "invalid_argument", "Idempotency-Key", 400, strings.Repeat("k", 256)},
		{"key not UTF-8", `{"items":[{"sku":"WATCH-42","quantity":1}],"payment_method":"tok_ok"}`, "invalid_argument", "Idempotency-Key", 400, "k\xffk"},
	} {
		var hdr []string
		if tc.key != "" {
			hdr = []string{"Idempotency-Key", tc.key}
		}
		r := s.do("POST", "/api/v1/orders", tok, tc.body, hdr...)
		if r.Status != tc.status || r.errCode() != tc.code || r.errField() != tc.field {
			t.Errorf("%s: %d %s field %q, want %d %s %q", tc.name, r.Status, r.errCode(), r.errField(), tc.status, tc.code, tc.field)
		}
		if strings.Contains(string(r.Body), "4111") {
			t.Errorf("%s: the error echoes card-like data: %s", tc.name, r.Body)
		}
	}
	big := `{"items":[{"sku":"WATCH-42","quantity":1}],"payment_method":"tok_ok","pad":"` + strings.Repeat("x", 1<<20) + `"}`
	if r := s.do("POST", "/api/v1/orders", tok, big); r.Status != 413 || r.errCode() != "payload_too_large" {
		t.Errorf("2 MiB body: %d %s", r.Status, r.Body)
	}
	if after := s.counts(); after != before {
		t.Errorf("refused orders wrote: %s -> %s", before, after)
	}
}

func TestIdempotencyKey(t *testing.T) {
	s := newStack(t, options{})
	s.product("WATCH-42", 12900, map[string]int{"east": 500})
	tok, _ := s.customer()
	items := []any{"WATCH-42", 1}

	first := s.do("POST", "/api/v1/orders", tok, map[string]any{"items": []map[string]any{{"sku": items[0], "quantity": items[1]}}, "payment_method": "tok_ok"}, "Idempotency-Key", "key-1")
	second := s.do("POST", "/api/v1/orders", tok, map[string]any{"items": []map[string]any{{"sku": items[0], "quantity": items[1]}}, "payment_method": "tok_ok"}, "Idempotency-Key", "key-1")
	var a, b orderJSON
	first.json(t, &a)
	second.json(t, &b)
	if first.Status != 202 || second.Status != 200 || a.ID != b.ID {
		t.Errorf("same key twice: %d %s / %d %s", first.Status, a.ID, second.Status, b.ID)
	}
	other := s.do("POST", "/api/v1/orders", tok, map[string]any{"items": []map[string]any{{"sku": "WATCH-42", "quantity": 2}}, "payment_method": "tok_ok"}, "Idempotency-Key", "key-1")
	if other.Status != 422 || other.errCode() != "idempotency_key_reused" {
		t.Errorf("same key, other body: %d %s", other.Status, other.Body)
	}
	// The key is the customer's own: another customer's same key is another order.
	tok2, _ := s.customer()
	r := s.do("POST", "/api/v1/orders", tok2, map[string]any{"items": []map[string]any{{"sku": "WATCH-42", "quantity": 1}}, "payment_method": "tok_ok"}, "Idempotency-Key", "key-1")
	var c orderJSON
	r.json(t, &c)
	if r.Status != 202 || c.ID == a.ID {
		t.Errorf("another customer's key-1: %d %s", r.Status, c.ID)
	}

	// 100 concurrent identical POSTs with one key: one order, one workflow.
	var wg sync.WaitGroup
	ids := make([]string, 100)
	statuses := make([]int, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := s.do("POST", "/api/v1/orders", tok, map[string]any{"items": []map[string]any{{"sku": "WATCH-42", "quantity": 3}}, "payment_method": "tok_ok"}, "Idempotency-Key", "burst")
			var o orderJSON
			if r.Status < 300 {
				r.json(t, &o)
			}
			ids[i], statuses[i] = o.ID, r.Status
		}(i)
	}
	wg.Wait()
	accepted := 0
	for i := range ids {
		if ids[i] != ids[0] || (statuses[i] != 200 && statuses[i] != 202) {
			t.Fatalf("request %d: %d %s (first %s)", i, statuses[i], ids[i], ids[0])
		}
		if statuses[i] == 202 {
			accepted++
		}
	}
	var orders int
	_ = s.pool.QueryRow(context.Background(), `SELECT count(*) FROM orders.orders WHERE total_cents = 3 * 12900`).Scan(&orders)
	if orders != 1 || accepted != 1 {
		t.Errorf("100 concurrent POSTs made %d orders, %d answered 202", orders, accepted)
	}
	s.waitStatus(tok, ids[0], 30*time.Second, "CONFIRMED")
	resp, err := s.temporal.ListWorkflow(context.Background(), listRequest(order.WorkflowID(ids[0])))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetExecutions()); n != 1 {
		t.Errorf("%d workflow runs for one order", n)
	}
	var p productJSON
	s.do("GET", "/api/v1/products/WATCH-42", "", nil).json(t, &p)
	if p.Available != 500-1-1-3 {
		t.Errorf("available %d: stock was taken more than once", p.Available)
	}
}
