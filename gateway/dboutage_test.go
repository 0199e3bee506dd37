package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestDatabaseOutageIsA503: when PostgreSQL ends the gateway's session in
// the middle of a request, as a shutdown, a restart or a failover does
// (here an operator's pg_terminate_backend: SQLSTATE 57P01 admin_shutdown),
// the client gets 503 unavailable in API.md's error shape, not 500, and a
// retry with the same Idempotency-Key then places the order once.
func TestDatabaseOutageIsA503(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	s.product("WATCH-42", 1000, map[string]int{"east": 5})
	tok, _ := s.customer()
	order := map[string]any{"items": []map[string]any{{"sku": "WATCH-42", "quantity": 1}}, "payment_method": "tok_ok"}

	for _, tc := range []struct {
		name string
		// lock holds the table that the request writes or reads, so that
		// the request waits on it until its session is terminated.
		lock    string
		request func() response
	}{
		{"place an order", `LOCK TABLE orders.orders IN SHARE MODE`, func() response {
			return s.do("POST", "/api/v1/orders", tok, order, "Idempotency-Key", "outage-1")
		}},
		{"read the catalogue", `LOCK TABLE catalog.products IN ACCESS EXCLUSIVE MODE`, func() response {
			return s.do("GET", "/api/v1/products/WATCH-42", "", nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.duringTerminatedSession(t, tc.lock, tc.request)
			if r.Status != 503 || r.errCode() != "unavailable" {
				t.Fatalf("answered %d %s, want 503 unavailable", r.Status, r.Body)
			}
			var e struct {
				Error struct {
					Message   string `json:"message"`
					RequestID string `json:"request_id"`
				} `json:"error"`
			}
			r.json(t, &e)
			if e.Error.Message == "" || e.Error.RequestID != r.Header.Get("X-Request-ID") {
				t.Errorf("error shape: %s", r.Body)
			}
			if strings.Contains(string(r.Body), "SQLSTATE") || strings.Contains(string(r.Body), "terminating") {
				t.Errorf("the database's message reached the client: %s", r.Body)
			}
		})
	}

	// The 503 wrote nothing: the retry with the same key is the first order.
	r := s.do("POST", "/api/v1/orders", tok, order, "Idempotency-Key", "outage-1")
	if r.Status != 202 {
		t.Fatalf("retry after the outage: %d %s", r.Status, r.Body)
	}
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM orders.orders`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d orders after the retry (%v), want 1", n, err)
	}
}

// duringTerminatedSession sends request while another session holds lock,
// terminates the database session that the request waits in, and returns
// the answer.
func (s *stack) duringTerminatedSession(t *testing.T, lock string, request func() response) response {
	t.Helper()
	ctx := context.Background()
	holder, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, lock); err != nil {
		t.Fatal(err)
	}
	answer := make(chan response, 1)
	go func() { answer <- request() }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		var terminated bool
		err := s.pool.QueryRow(ctx, `SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`).Scan(&terminated)
		if err != nil {
			t.Fatal(err)
		}
		if terminated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the request never waited on the lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case r := <-answer:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no answer after the session was terminated")
		return response{}
	}
}
