package inventory_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// recorder is a ChangeSink that remembers what it was told.
type recorder struct {
	mu        sync.Mutex
	changed   map[string]int
	resets    int
	confirmed time.Time
}

func (r *recorder) Invalidate(skus ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range skus {
		r.changed[s]++
	}
}

func (r *recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resets++
}

func (r *recorder) Confirm(asOf time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.confirmed = asOf
}

func (r *recorder) count(sku string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed[sku]
}

func (r *recorder) state() (resets int, confirmed time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resets, r.confirmed
}

// runFeed runs a change feed of pool's catalogue into a new recorder until
// the test ends.
func runFeed(t *testing.T, pool *pgxpool.Pool, opts inventory.FeedOptions) *recorder {
	t.Helper()
	r := &recorder{changed: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- inventory.NewCatalog(pool).Changes(opts, nil).Run(ctx, r) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("feed: %v", err)
		}
	})
	waitFor(t, "the feed's first poll", func() bool { _, at := r.state(); return !at.IsZero() })
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitPolled waits until the feed has vouched for every change committed
// up to now.
func waitPolled(t *testing.T, r *recorder) {
	t.Helper()
	now := time.Now()
	waitFor(t, "a poll", func() bool { _, at := r.state(); return at.After(now) })
}

// Every writer of a product or its stock is reported: the catalogue's
// product writes, an admin's adjustment, and the ledger's moves for an
// order's reservation, sale and release.
func TestChangeFeedReportsEveryWriter(t *testing.T) {
	pool, act := setup(t, map[string]map[string]int{"FEED-1": {"east": 10}})
	cat := inventory.NewCatalog(pool)
	r := runFeed(t, pool, inventory.FeedOptions{})
	ctx := context.Background()
	orderID := uuid.NewString()
	req := order.StockRequest{OrderID: orderID, Lines: []order.StockLine{{SKU: "FEED-1", Quantity: 2}}}
	other := uuid.NewString()
	otherReq := order.StockRequest{OrderID: other, Lines: []order.StockLine{{SKU: "FEED-1", Quantity: 1}}}
	name := "Renamed"
	for _, step := range []struct {
		name, sku string
		write     func() error
	}{
		{"create", "FEED-2", func() error {
			_, err := cat.Create(ctx, inventory.NewProduct{SKU: "FEED-2", Name: "Two", Brand: "Test", Currency: "USD"}, "test")
			return err
		}},
		{"update", "FEED-1", func() error { _, err := cat.Update(ctx, "FEED-1", inventory.Patch{Name: &name}); return err }},
		{"adjust", "FEED-1", func() error { _, err := cat.AdjustStock(ctx, "FEED-1", "east", 3, "count", "test"); return err }},
		{"adjust a new warehouse", "FEED-1", func() error { _, err := cat.AdjustStock(ctx, "FEED-1", "west", 1, "count", "test"); return err }},
		{"reserve", "FEED-1", func() error { _, err := act.ReserveStock(ctx, req); return err }},
		{"commit", "FEED-1", func() error { return act.CommitStock(ctx, req) }},
		{"reserve again", "FEED-1", func() error { _, err := act.ReserveStock(ctx, otherReq); return err }},
		{"release", "FEED-1", func() error { return act.ReleaseStock(ctx, otherReq) }},
		{"deactivate", "FEED-2", func() error { return cat.Deactivate(ctx, "FEED-2") }},
	} {
		before := r.count(step.sku)
		if err := step.write(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		waitFor(t, step.name+" reported", func() bool { return r.count(step.sku) > before })
	}
	// A refused change writes nothing, so nothing is reported.
	before := r.count("FEED-1")
	if _, err := cat.AdjustStock(ctx, "FEED-1", "east", -1000, "too many", "test"); err == nil {
		t.Fatal("an adjustment below zero was accepted")
	}
	waitPolled(t, r)
	if n := r.count("FEED-1"); n != before {
		t.Errorf("a refused adjustment was reported (%d reports, had %d)", n, before)
	}
}

// A change is reported once its transaction commits, however many polls
// it stays open for, and never if it rolls back.
func TestChangeFeedReportsLongTransactionsWhenTheyCommit(t *testing.T) {
	pool, _ := setup(t, nil)
	r := runFeed(t, pool, inventory.FeedOptions{})
	ctx := context.Background()
	begin := func(sku string) func(commit bool) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO catalog.changes (sku) VALUES ($1)`, sku); err != nil {
			t.Fatal(err)
		}
		return func(commit bool) {
			if commit {
				err = tx.Commit(ctx)
			} else {
				err = tx.Rollback(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	long := begin("LONG")
	gone := begin("GONE")
	// Transactions that start and commit meanwhile move the snapshots on.
	for range 5 {
		begin("SHORT")(true)
		waitPolled(t, r)
	}
	if r.count("LONG") != 0 {
		t.Fatal("a change was reported before its transaction committed")
	}
	long(true)
	gone(false)
	waitFor(t, "the long transaction's change", func() bool { return r.count("LONG") == 1 })
	waitPolled(t, r)
	if r.count("GONE") != 0 {
		t.Error("a rolled back change was reported")
	}
	if n := r.count("SHORT"); n != 5 {
		t.Errorf("%d reports of 5 committed changes", n)
	}
}

// When its session ends, the feed connects again and resets its sink: it
// cannot know what it missed meanwhile.
func TestChangeFeedResetsWhenItReconnects(t *testing.T) {
	pool, _ := setup(t, nil)
	r := runFeed(t, pool, inventory.FeedOptions{})
	if resets, _ := r.state(); resets != 1 {
		t.Fatalf("%d resets after the first poll, want 1", resets)
	}
	var killed bool
	if err := pool.QueryRow(context.Background(), `SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'ordersaga catalog changes'`).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the feed's session: %v (found: %v)", err, killed)
	}
	waitFor(t, "a reset after reconnecting", func() bool { resets, _ := r.state(); return resets == 2 })
	if _, err := pool.Exec(context.Background(), `INSERT INTO catalog.changes (sku) VALUES ('AFTER')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a change after reconnecting", func() bool { return r.count("AFTER") == 1 })
}

// Changes are pruned once every feed has seen them, and feeds keep
// reporting new ones.
func TestChangeFeedPrunesWhatItReported(t *testing.T) {
	pool, _ := setup(t, nil)
	r := runFeed(t, pool, inventory.FeedOptions{Retain: 300 * time.Millisecond})
	ctx := context.Background()
	for i := range 3 {
		if _, err := pool.Exec(ctx, `INSERT INTO catalog.changes (sku) VALUES ('OLD')`); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the change reported", func() bool { return r.count("OLD") == i+1 })
	}
	waitFor(t, "the changes pruned", func() bool {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM catalog.changes WHERE sku = 'OLD'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	if _, err := pool.Exec(ctx, `INSERT INTO catalog.changes (sku) VALUES ('NEW')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a change after pruning", func() bool { return r.count("NEW") == 1 })
	if resets, _ := r.state(); resets != 1 {
		t.Errorf("%d resets, want 1: a feed that polls on time never needs another", resets)
	}
}
