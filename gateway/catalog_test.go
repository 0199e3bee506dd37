package gateway_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/workflows/order"
)

type productJSON struct {
	SKU        string `json:"sku"`
	Name       string `json:"name"`
	Brand      string `json:"brand"`
	PriceCents int64  `json:"price_cents"`
	Currency   string `json:"currency"`
	Active     bool   `json:"active"`
	Available  int    `json:"available"`
	Stock      []struct {
		Warehouse string `json:"warehouse"`
		OnHand    int    `json:"on_hand"`
		Reserved  int    `json:"reserved"`
		Available int    `json:"available"`
	} `json:"stock"`
}

type productPage struct {
	Items      []productJSON `json:"items"`
	NextCursor string        `json:"next_cursor"`
}

func TestCatalogueBrowsing(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	for i := 0; i < 25; i++ {
		stock := map[string]int{"east": i % 3, "west": 0}
		s.product(fmt.Sprintf("%s-%03d", []string{"ACME", "ZEN"}[i%2], i), int64(100*(i+1)), stock)
	}
	list := func(q string) (productPage, response) {
		r := s.do("GET", "/api/v1/products?"+q, "", nil)
		var p productPage
		if r.Status == 200 {
			r.json(t, &p)
		}
		return p, r
	}

	// Every product exactly once across pages.
	seen := map[string]bool{}
	cursor := ""
	pages := 0
	for {
		p, r := list("limit=7&cursor=" + url.QueryEscape(cursor))
		if r.Status != 200 {
			t.Fatalf("page: %d %s", r.Status, r.Body)
		}
		pages++
		for _, it := range p.Items {
			if seen[it.SKU] {
				t.Errorf("%s on two pages", it.SKU)
			}
			seen[it.SKU] = true
		}
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if len(seen) != 25 || pages != 4 {
		t.Errorf("%d products over %d pages", len(seen), pages)
	}

	for _, tc := range []struct {
		query string
		want  int
		check func(productJSON) bool
	}{
		{"brand=brandA&limit=200", 13, func(p productJSON) bool { return p.Brand == "BrandA" }},
		{"brand=BRANDZ&limit=200", 12, func(p productJSON) bool { return p.Brand == "BrandZ" }},
		{"min_price_cents=1000&max_price_cents=1500&limit=200", 6, func(p productJSON) bool { return p.PriceCents >= 1000 && p.PriceCents <= 1500 }},
		{"in_stock=true&limit=200", 16, func(p productJSON) bool { return p.Available > 0 }},
		{"q=zen-00&limit=200", 5, func(p productJSON) bool { return p.SKU[:3] == "ZEN" }},
		{"q=product+acme-02&limit=200", 3, nil},
		{"q=%25&limit=200", 0, nil},
	} {
		p, r := list(tc.query)
		if r.Status != 200 || len(p.Items) != tc.want {
			t.Errorf("%s: %d, %d items, want %d", tc.query, r.Status, len(p.Items), tc.want)
		}
		for _, it := range p.Items {
			if tc.check != nil && !tc.check(it) {
				t.Errorf("%s returned %+v", tc.query, it)
			}
		}
	}

	for _, q := range []string{"limit=0", "limit=201", "limit=x", "cursor=forged", "cursor=eyJzIjoiWiJ9.AAAA", "min_price_cents=-1", "in_stock=yes"} {
		if _, r := list(q); r.Status != 400 || r.errCode() != "invalid_argument" {
			t.Errorf("%s: %d %s", q, r.Status, r.Body)
		}
	}

	r := s.do("GET", "/api/v1/products/ACME-002", "", nil)
	var p productJSON
	r.json(t, &p)
	if r.Status != 200 || p.SKU != "ACME-002" || p.Currency != "USD" || len(p.Stock) != 2 || p.Available != 2 {
		t.Errorf("product: %d %s", r.Status, r.Body)
	}
	for _, sku := range []string{"NOPE-1", "bad sku", "x"} {
		if r := s.do("GET", "/api/v1/products/"+url.PathEscape(sku), "", nil); r.Status != 404 || r.errCode() != "not_found" {
			t.Errorf("%q: %d %s", sku, r.Status, r.Body)
		}
	}
}

func TestAdminInventory(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	body := map[string]any{"sku": "WATCH-42", "name": "Watch", "brand": "Acme", "description": "steel", "price_cents": 12900,
		"stock": []map[string]any{{"warehouse": "east", "on_hand": 5}, {"warehouse": "west", "on_hand": 3}}}
	r := s.do("POST", "/api/v1/products", s.admin, body)
	var p productJSON
	r.json(t, &p)
	if r.Status != 201 || p.Available != 8 || !p.Active || p.Currency != "USD" {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/api/v1/products", s.admin, body); r.Status != 409 || r.errCode() != "conflict" {
		t.Errorf("duplicate sku: %d %s", r.Status, r.Body)
	}

	before := s.counts()
	for _, tc := range []struct {
		body  string
		field string
	}{
		{`{"sku":"lower","name":"x","brand":"y","price_cents":1}`, "sku"},
		{`{"sku":"OK-1","name":"","brand":"y","price_cents":1}`, "name"},
		{`{"sku":"OK-1","name":"x","brand":"y"}`, "price_cents"},
		{`{"sku":"OK-1","name":"x","brand":"y","price_cents":-5}`, "price_cents"},
		{`{"sku":"OK-1","name":"x","brand":"y","price_cents":1.5}`, "price_cents"},
		{`{"sku":"OK-1","name":"x","brand":"y","price_cents":1,"currency":"usd"}`, "currency"},
		{`{"sku":"OK-1","name":"x","brand":"y","price_cents":1,"stock":[{"warehouse":"east","on_hand":-1}]}`, "stock.on_hand"},
		{`{"sku":"OK-1","name":"x","brand":"y","price_cents":1,"stock":[{"warehouse":"east","on_hand":1},{"warehouse":"east","on_hand":1}]}`, "stock.warehouse"},
	} {
		if r := s.do("POST", "/api/v1/products", s.admin, tc.body); r.Status != 400 || r.errField() != tc.field {
			t.Errorf("%s: %d %s, want 400 on %s", tc.body, r.Status, r.Body, tc.field)
		}
	}
	if after := s.counts(); after != before {
		t.Errorf("refused creates wrote: %s -> %s", before, after)
	}

	r = s.do("PATCH", "/api/v1/products/WATCH-42", s.admin, map[string]any{"name": "Field Watch", "price_cents": 13900})
	r.json(t, &p)
	if r.Status != 200 || p.Name != "Field Watch" || p.PriceCents != 13900 || p.Brand != "Acme" {
		t.Errorf("patch: %d %s", r.Status, r.Body)
	}
	if r := s.do("PATCH", "/api/v1/products/NOPE-1", s.admin, map[string]any{"name": "x"}); r.Status != 404 {
		t.Errorf("patch of a missing product: %d", r.Status)
	}
	if r := s.do("PATCH", "/api/v1/products/WATCH-42", s.admin, map[string]any{"price_cents": "free"}); r.Status != 400 || r.errField() != "price_cents" {
		t.Errorf("patch with a bad price: %d %s", r.Status, r.Body)
	}

	// Stock: add, take away, open a new warehouse.
	for _, tc := range []struct {
		wh    string
		delta int
		want  int
	}{{"east", 10, 18}, {"west", -3, 15}, {"north", 4, 19}} {
		r := s.do("POST", "/api/v1/products/WATCH-42/stock", s.admin, map[string]any{"warehouse": tc.wh, "delta": tc.delta, "reason": "count"})
		r.json(t, &p)
		if r.Status != 200 || p.Available != tc.want {
			t.Errorf("adjust %s %+d: %d available %d, want %d: %s", tc.wh, tc.delta, r.Status, p.Available, tc.want, r.Body)
		}
	}
	// An open order holds 12 of east's 15 units.
	inv := inventory.New(s.pool, zap.NewNop())
	holding := order.StockRequest{OrderID: uuid.NewString(), Lines: []order.StockLine{{SKU: "WATCH-42", Quantity: 12}}}
	if res, err := inv.ReserveStock(context.Background(), holding); err != nil || len(res.Allocations) != 1 || res.Allocations[0].Warehouse != "east" {
		t.Fatalf("hold 12 units in east: %+v, %v", res, err)
	}
	before = s.counts()
	for _, tc := range []struct {
		body   map[string]any
		status int
		code   string
	}{
		{map[string]any{"warehouse": "east", "delta": -4, "reason": "damaged"}, 409, "conflict"},
		{map[string]any{"warehouse": "west", "delta": -1, "reason": "damaged"}, 409, "conflict"},
		{map[string]any{"warehouse": "south", "delta": -1, "reason": "x"}, 409, "conflict"},
		{map[string]any{"warehouse": "east", "delta": 0, "reason": "x"}, 400, "invalid_argument"},
		{map[string]any{"warehouse": "east", "delta": 1}, 400, "invalid_argument"},
		{map[string]any{"warehouse": "East!", "delta": 1, "reason": "x"}, 400, "invalid_argument"},
	} {
		if r := s.do("POST", "/api/v1/products/WATCH-42/stock", s.admin, tc.body); r.Status != tc.status || r.errCode() != tc.code {
			t.Errorf("%v: %d %s", tc.body, r.Status, r.Body)
		}
	}
	if after := s.counts(); after != before {
		t.Errorf("refused adjustments wrote: %s -> %s", before, after)
	}
	if r := s.do("DELETE", "/api/v1/products/WATCH-42", s.admin, nil); r.Status != 409 {
		t.Errorf("delete while reserved: %d %s", r.Status, r.Body)
	}
	// PATCH active=false is a deactivation too: the same rule, so that no
	// reserved unit is ever left on an inactive product.
	if r := s.do("PATCH", "/api/v1/products/WATCH-42", s.admin, map[string]any{"active": false}); r.Status != 409 || r.errCode() != "conflict" {
		t.Errorf("PATCH active=false while reserved: %d %s", r.Status, r.Body)
	}
	r = s.do("GET", "/api/v1/products/WATCH-42", "", nil)
	r.json(t, &p)
	if !p.Active {
		t.Errorf("a refused deactivation deactivated the product: %s", r.Body)
	}
	if err := inv.ReleaseStock(context.Background(), holding); err != nil {
		t.Fatal(err)
	}
	if r := s.do("DELETE", "/api/v1/products/WATCH-42", s.admin, nil); r.Status != 204 {
		t.Errorf("delete: %d %s", r.Status, r.Body)
	}
	r = s.do("GET", "/api/v1/products/WATCH-42", "", nil)
	r.json(t, &p)
	if r.Status != 200 || p.Active {
		t.Errorf("a deleted product stays readable and inactive: %d %s", r.Status, r.Body)
	}
	var listed productPage
	s.do("GET", "/api/v1/products", "", nil).json(t, &listed)
	if len(listed.Items) != 0 {
		t.Errorf("an inactive product is listed: %+v", listed.Items)
	}
	// The ledger explains every change, with who made it.
	var bad, adjusts int
	_ = s.pool.QueryRow(context.Background(), `SELECT count(*) FROM catalog.stock s LEFT JOIN (SELECT sku, warehouse, sum(on_hand_delta) oh FROM catalog.stock_movements GROUP BY 1, 2) m USING (sku, warehouse) WHERE s.on_hand <> coalesce(m.oh, 0)`).Scan(&bad)
	_ = s.pool.QueryRow(context.Background(), `SELECT count(*) FROM catalog.stock_movements WHERE kind = 'adjust' AND actor LIKE 'admin:%' AND reason = 'count'`).Scan(&adjusts)
	if bad != 0 || adjusts != 3 {
		t.Errorf("ledger: %d rows disagree, %d adjust entries", bad, adjusts)
	}
}

// TestWarehouseCodesAreCaseInsensitive: API.md's warehouse codes, in any
// case, name one warehouse, stored and returned in lower case; a code off
// the pattern is a 400 naming the field. Before, WH-A was refused with a
// pattern that API.md does not give.
func TestWarehouseCodesAreCaseInsensitive(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	r := s.do("POST", "/api/v1/products", s.admin, `{"sku":"WH-1","name":"n","brand":"b","price_cents":1,
		"stock":[{"warehouse":"WH-A","on_hand":3},{"warehouse":"Main_2","on_hand":1}]}`)
	var p productJSON
	r.json(t, &p)
	if r.Status != 201 || len(p.Stock) != 2 || p.Stock[0].Warehouse != "main_2" || p.Stock[1].Warehouse != "wh-a" {
		t.Fatalf("create with WH-A: %d %s", r.Status, r.Body)
	}
	for i, wh := range []string{"wh-a", "Wh-A", "WH-A"} {
		r := s.do("POST", "/api/v1/products/WH-1/stock", s.admin, map[string]any{"warehouse": wh, "delta": 2, "reason": "count"})
		r.json(t, &p)
		if r.Status != 200 || len(p.Stock) != 2 || p.Stock[1].Warehouse != "wh-a" || p.Stock[1].OnHand != 3+2*(i+1) {
			t.Errorf("adjust %s: %d %s", wh, r.Status, r.Body)
		}
	}
	r = s.do("GET", "/api/v1/products/WH-1", "", nil)
	r.json(t, &p)
	if len(p.Stock) != 2 || p.Stock[1].Warehouse != "wh-a" || p.Stock[1].OnHand != 3+2+2+2 {
		t.Errorf("one stock row for wh-a: %s", r.Body)
	}
	// A new warehouse opened by an adjustment is lower case too.
	r = s.do("POST", "/api/v1/products/WH-1/stock", s.admin, map[string]any{"warehouse": "NORTH", "delta": 1, "reason": "count"})
	r.json(t, &p)
	if r.Status != 200 || len(p.Stock) != 3 || p.Stock[1].Warehouse != "north" || p.Stock[2].Warehouse != "wh-a" {
		t.Errorf("adjust NORTH: %d %s", r.Status, r.Body)
	}
	var upper, ledger int
	_ = s.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM catalog.stock WHERE warehouse <> lower(warehouse))
		+ (SELECT count(*) FROM catalog.stock_movements WHERE warehouse <> lower(warehouse)),
		(SELECT sum(on_hand_delta) FROM catalog.stock_movements WHERE sku = 'WH-1' AND warehouse = 'wh-a')`).Scan(&upper, &ledger)
	if upper != 0 || ledger != 9 {
		t.Errorf("%d rows keep upper case; the wh-a ledger adds up to %d", upper, ledger)
	}

	long := strings.Repeat("z", 32)
	r = s.do("POST", "/api/v1/products", s.admin, `{"sku":"WH-2","name":"n","brand":"b","price_cents":1,"stock":[{"warehouse":"`+strings.ToUpper(long)+`","on_hand":1}]}`)
	r.json(t, &p)
	if r.Status != 201 || p.Stock[0].Warehouse != long {
		t.Errorf("a 32-character code: %d %s", r.Status, r.Body)
	}

	before := s.counts()
	if r := s.do("POST", "/api/v1/products", s.admin, `{"sku":"WH-3","name":"n","brand":"b","price_cents":1,
		"stock":[{"warehouse":"WH-A","on_hand":1},{"warehouse":"wh-a","on_hand":1}]}`); r.Status != 400 || r.errField() != "stock.warehouse" {
		t.Errorf("WH-A and wh-a in one product: %d %s", r.Status, r.Body)
	}
	for _, wh := range []string{"", "-a", "_a", "a b", "a.b", "a/b", "é", "ａ", strings.Repeat("a", 33), "a\u0000", "a\n"} {
		body := map[string]any{"sku": "WH-3", "name": "n", "brand": "b", "price_cents": 1, "stock": []map[string]any{{"warehouse": wh, "on_hand": 1}}}
		if r := s.do("POST", "/api/v1/products", s.admin, body); r.Status != 400 || r.errCode() != "invalid_argument" || r.errField() != "stock.warehouse" {
			t.Errorf("create with warehouse %q: %d %s", wh, r.Status, r.Body)
		}
		if r := s.do("POST", "/api/v1/products/WH-1/stock", s.admin, map[string]any{"warehouse": wh, "delta": 1, "reason": "r"}); r.Status != 400 || r.errCode() != "invalid_argument" || r.errField() != "warehouse" {
			t.Errorf("adjust warehouse %q: %d %s", wh, r.Status, r.Body)
		}
	}
	if after := s.counts(); after != before {
		t.Errorf("refused requests wrote: %s -> %s", before, after)
	}
}
