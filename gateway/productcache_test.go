package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/ordersaga/ordersaga/activities/inventory"
)

// freshBound is how stale a product page may be: API.md's promise that
// available (and every other field) is fresh within 100 ms of a change.
const freshBound = 100 * time.Millisecond

// watcher watches one product in the database and on the gateway at once.
// It records each state of the product in the database and when it was
// superseded, while readers ask the gateway for the page again and again
// (which keeps it in the cache); check then finds the pages whose state had
// been superseded more than freshBound before the request was sent.
type watcher struct {
	t    *testing.T
	s    *stack
	sku  string
	stop chan struct{}
	halt sync.Once
	wg   sync.WaitGroup

	mu sync.Mutex
	// states are the database's states of the product (its JSON) in
	// order; superseded[i] is the latest time at which states[i] can have
	// stopped being current (when a read first saw its successor ended).
	states     []string
	superseded []time.Time
	// pages are what the gateway answered, with when each request was sent.
	pages []served
}

type served struct {
	sent time.Time
	body string
}

func watch(t *testing.T, s *stack, sku string, readers int) *watcher {
	t.Helper()
	w := &watcher{t: t, s: s, sku: sku, stop: make(chan struct{})}
	cat := inventory.NewCatalog(s.pool)
	read := func() string {
		p, err := cat.Get(context.Background(), sku)
		if err != nil {
			t.Errorf("read %s from the database: %v", sku, err)
			return ""
		}
		b, _ := json.Marshal(p)
		return string(b)
	}
	w.states = []string{read()}
	// A test that fails early stops the watcher before the system stops.
	t.Cleanup(w.halted)
	w.wg.Go(func() {
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			st := read()
			seen := time.Now()
			w.mu.Lock()
			if st != w.states[len(w.states)-1] {
				w.superseded = append(w.superseded, seen)
				w.states = append(w.states, st)
			}
			w.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	})
	for range readers {
		w.wg.Go(func() {
			for {
				select {
				case <-w.stop:
					return
				default:
				}
				sent := time.Now()
				resp, err := http.Get(s.url + "/api/v1/products/" + sku)
				if err != nil {
					t.Errorf("GET %s: %v", sku, err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("GET %s: %d %s", sku, resp.StatusCode, b)
					return
				}
				w.mu.Lock()
				w.pages = append(w.pages, served{sent: sent, body: string(b)})
				w.mu.Unlock()
			}
		})
	}
	return w
}

// halted stops the watcher's goroutines and waits for them.
func (w *watcher) halted() {
	w.halt.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// check stops the watcher and fails the test for each page that was
// staler than freshBound, or unlike any state of the database.
func (w *watcher) check() {
	w.t.Helper()
	w.halted()
	stale, unknown := 0, 0
	for _, p := range w.pages {
		fresh, known := false, false
		for i, st := range w.states {
			if st != p.body {
				continue
			}
			known = true
			if i == len(w.states)-1 || p.sent.Sub(w.superseded[i]) <= freshBound {
				fresh = true
				break
			}
		}
		switch {
		case !known:
			// A state that lasted less than one read of the watcher:
			// the gateway read it from the database, so it was current.
			unknown++
		case !fresh:
			stale++
			if stale <= 3 {
				w.t.Errorf("a page requested at %s showed a state superseded long before: %s", p.sent.Format("15:04:05.000"), p.body)
			}
		}
	}
	if stale > 0 {
		w.t.Errorf("%d of %d pages were staler than %s", stale, len(w.pages), freshBound)
	}
	if len(w.pages) == 0 || len(w.states) < 2 {
		w.t.Fatalf("the watcher saw %d pages and %d states: nothing was checked", len(w.pages), len(w.states))
	}
	w.t.Logf("%d pages checked against %d states of the database (%d showed a state too short-lived for the watcher to see)", len(w.pages), len(w.states), unknown)
}

// cacheFigures reads the product cache's counters from the system's registry.
func cacheFigures(t *testing.T, s *stack) (hits, bypasses float64, serving bool) {
	t.Helper()
	families, err := s.sys.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "ordersaga_product_cache_gets_total":
				switch label(m, "result") {
				case "hit":
					hits = m.GetCounter().GetValue()
				case "bypass":
					bypasses = m.GetCounter().GetValue()
				}
			case "ordersaga_product_cache_serving":
				serving = m.GetGauge().GetValue() == 1
			}
		}
	}
	return hits, bypasses, serving
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// available reads the product page and returns its available units.
func (s *stack) available(sku string) int {
	s.t.Helper()
	r := s.do("GET", "/api/v1/products/"+sku, "", nil)
	if r.Status != 200 {
		s.t.Fatalf("GET %s: %d %s", sku, r.Status, r.Body)
	}
	var p struct{ Available int }
	r.json(s.t, &p)
	return p.Available
}

// TestProductPagesAreFreshAfterEveryWriter: while the product page is read
// over and over, and so served from the gateway's cache, each writer
// changes the product (an admin's stock adjustment, the reservation and
// sale of an order, the reservation and release of a declined one, an
// edit, a deactivation), and no page is staler than 100 ms.
func TestProductPagesAreFreshAfterEveryWriter(t *testing.T) {
	s := newStack(t, options{})
	s.product("FRESH-1", 1500, map[string]int{"east": 10, "west": 5})
	tok, _ := s.customer()
	w := watch(t, s, "FRESH-1", 4)
	time.Sleep(50 * time.Millisecond) // the page is cached
	var page struct {
		UpdatedAt time.Time `json:"updated_at"`
	}
	s.do("GET", "/api/v1/products/FRESH-1", "", nil).json(t, &page)
	before := page.UpdatedAt

	// An adjustment's new stock is on the page within the bound of its 200.
	r := s.do("POST", "/api/v1/products/FRESH-1/stock", s.admin, map[string]any{"warehouse": "east", "delta": 4, "reason": "count"})
	done := time.Now()
	if r.Status != 200 {
		t.Fatalf("adjust: %d %s", r.Status, r.Body)
	}
	waitAvailable(t, s, "FRESH-1", 19, done, "the adjustment")
	// The page's updated_at is the latest change of the product or of any
	// of its warehouses, whichever row the change was in.
	s.do("GET", "/api/v1/products/FRESH-1", "", nil).json(t, &page)
	if !page.UpdatedAt.After(before) {
		t.Errorf("after an adjustment of east the page says updated_at %s, as before it", page.UpdatedAt)
	}

	// A write that no code of this build makes (an operator's fix in SQL,
	// an older build during a rolling deploy) is on the page all the same.
	if _, err := s.pool.Exec(context.Background(), `UPDATE catalog.stock SET on_hand = on_hand + 1 WHERE sku = 'FRESH-1' AND warehouse = 'west'`); err != nil {
		t.Fatal(err)
	}
	done = time.Now()
	waitAvailable(t, s, "FRESH-1", 20, done, "a change made in SQL")

	var o orderJSON
	r = s.placeOrder(tok, "tok_ok", "FRESH-1", 3)
	r.json(t, &o)
	s.waitStatus(tok, o.ID, 30*time.Second, "CONFIRMED")
	r = s.placeOrder(tok, "tok_declined", "FRESH-1", 2)
	r.json(t, &o)
	s.waitStatus(tok, o.ID, 30*time.Second, "REJECTED")
	if r := s.do("PATCH", "/api/v1/products/FRESH-1", s.admin, map[string]any{"price_cents": 1700, "name": "Renamed"}); r.Status != 200 {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	time.Sleep(50 * time.Millisecond)
	if r := s.do("DELETE", "/api/v1/products/FRESH-1", s.admin, nil); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	time.Sleep(200 * time.Millisecond)
	w.check()

	var p struct {
		Available  int   `json:"available"`
		PriceCents int64 `json:"price_cents"`
		Active     bool  `json:"active"`
	}
	s.do("GET", "/api/v1/products/FRESH-1", "", nil).json(t, &p)
	if p.Available != 17 || p.PriceCents != 1700 || p.Active {
		t.Errorf("the page ends as %+v, want 17 available, 1700 cents, inactive", p)
	}
	if hits, _, _ := cacheFigures(t, s); hits < 100 {
		t.Errorf("the cache answered %v pages: the test did not exercise it", hits)
	}
}

// TestProductCacheIsOffWhileItsFeedIsDown: when the session of the
// catalogue's change feed is terminated, the cache stops answering (a
// change made meanwhile is on the page at once); when the feed has
// connected again, the cache answers again, and not with the page it held
// from before.
func TestProductCacheIsOffWhileItsFeedIsDown(t *testing.T) {
	// The feed waits 2 s before it connects again, long enough to look.
	s := newStack(t, options{noWorkers: true, catalogFeed: inventory.FeedOptions{RetryInitial: 2 * time.Second, RetryMax: 2 * time.Second}})
	s.product("DOWN-1", 1000, map[string]int{"east": 10})
	// The page is cached once the feed has reported the product's creation.
	waitUntil(t, "a read answered from the cache", func() bool {
		hits, _, _ := cacheFigures(t, s)
		if s.available("DOWN-1") != 10 {
			t.Fatal("wrong stock")
		}
		h, _, _ := cacheFigures(t, s)
		return h > hits
	})

	var killed bool
	if err := s.pool.QueryRow(context.Background(), `SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'ordersaga catalog changes'`).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the feed's session: %v (found: %v)", err, killed)
	}
	waitUntil(t, "the cache stops serving", func() bool { _, _, serving := cacheFigures(t, s); return !serving })
	if r := s.do("POST", "/api/v1/products/DOWN-1/stock", s.admin, map[string]any{"warehouse": "east", "delta": -3, "reason": "damaged"}); r.Status != 200 {
		t.Fatalf("adjust: %d %s", r.Status, r.Body)
	}
	_, bypasses, _ := cacheFigures(t, s)
	if got := s.available("DOWN-1"); got != 7 {
		t.Fatalf("with the feed down the page shows %d available, want 7", got)
	}
	if _, b, serving := cacheFigures(t, s); b != bypasses+1 || serving {
		t.Fatalf("the read did not go to the database (%v bypasses, had %v; serving %v)", b, bypasses, serving)
	}

	waitUntil(t, "the feed reconnects", func() bool { _, _, serving := cacheFigures(t, s); return serving })
	for range 2 {
		if got := s.available("DOWN-1"); got != 7 {
			t.Fatalf("after the feed reconnected the page shows %d available, want 7", got)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitAvailable reads the page of sku until it shows want available, and
// fails if a read sent more than freshBound after done still did not.
func waitAvailable(t *testing.T, s *stack, sku string, want int, done time.Time, what string) {
	t.Helper()
	for {
		sent := time.Now()
		if s.available(sku) == want {
			return
		}
		if sent.Sub(done) > freshBound {
			t.Fatalf("%s was not on the page %s after it was made", what, freshBound)
		}
	}
}
