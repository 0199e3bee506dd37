package gateway_test

import (
	"net/url"
	"testing"
	"time"
)

// movementJSON is a StockMovement as a client reads it.
type movementJSON struct {
	ID            int64   `json:"id"`
	SKU           string  `json:"sku"`
	Warehouse     string  `json:"warehouse"`
	Kind          string  `json:"kind"`
	OnHandDelta   int     `json:"on_hand_delta"`
	ReservedDelta int     `json:"reserved_delta"`
	Reason        string  `json:"reason"`
	OrderID       *string `json:"order_id"`
	Actor         string  `json:"actor"`
	At            string  `json:"at"`
}

type movementPage struct {
	Items      []movementJSON `json:"items"`
	NextCursor string         `json:"next_cursor"`
}

// movements reads one page of a product's ledger as the admin.
func (s *stack) movements(sku, query string) movementPage {
	s.t.Helper()
	r := s.do("GET", "/api/v1/products/"+sku+"/movements"+query, s.admin, nil)
	if r.Status != 200 {
		s.t.Fatalf("movements of %s%s: %d %s", sku, query, r.Status, r.Body)
	}
	var p movementPage
	r.json(s.t, &p)
	return p
}

// TestStockMovements: an admin follows a product's stock ledger: its
// initial stock, an adjustment with its reason, and an order's reservation
// and sale with the order's id; by warehouse and page by page.
func TestStockMovements(t *testing.T) {
	s := newStack(t, options{})
	var me struct{ ID string }
	s.do("GET", "/api/v1/me", s.admin, nil).json(t, &me)
	adminActor := "admin:" + me.ID

	s.product("MOVE-1", 500, map[string]int{"East": 10, "west": 3})
	initial := s.movements("MOVE-1", "")
	if len(initial.Items) != 2 || initial.NextCursor != "" {
		t.Fatalf("a new product's ledger: %+v, want its two initial rows on one page", initial)
	}
	for _, m := range initial.Items {
		want := map[string]int{"east": 10, "west": 3}[m.Warehouse]
		if m.SKU != "MOVE-1" || m.Kind != "initial" || want == 0 || m.OnHandDelta != want || m.ReservedDelta != 0 ||
			m.OrderID != nil || m.Actor != adminActor || m.Reason == "" {
			t.Errorf("initial row %+v: want %d units in a lower-case warehouse, by %s, without an order", m, want, adminActor)
		}
		if at, err := time.Parse(time.RFC3339Nano, m.At); err != nil || time.Since(at) > time.Minute || at.Location() != time.UTC {
			t.Errorf("initial row at %q: want a recent UTC time", m.At)
		}
	}
	if initial.Items[0].ID <= initial.Items[1].ID {
		t.Errorf("ids %d, %d: want newest first", initial.Items[0].ID, initial.Items[1].ID)
	}

	if r := s.do("POST", "/api/v1/products/MOVE-1/stock", s.admin, map[string]any{"warehouse": "EAST", "delta": -2, "reason": "damaged in transit"}); r.Status != 200 {
		t.Fatalf("adjust: %d %s", r.Status, r.Body)
	}
	adjusted := s.movements("MOVE-1", "").Items
	if len(adjusted) != 3 {
		t.Fatalf("after an adjustment: %d rows, want 3", len(adjusted))
	}
	if a := adjusted[0]; a.Kind != "adjust" || a.Warehouse != "east" || a.OnHandDelta != -2 || a.ReservedDelta != 0 ||
		a.Reason != "damaged in transit" || a.Actor != adminActor || a.OrderID != nil {
		t.Errorf("newest row after the adjustment: %+v", a)
	}

	shopper, _ := s.customer()
	var o orderJSON
	if r := s.placeOrder(shopper, "tok_ok", "MOVE-1", 3); r.Status != 202 {
		t.Fatalf("place order: %d %s", r.Status, r.Body)
	} else {
		r.json(t, &o)
	}
	s.waitStatus(shopper, o.ID, 30*time.Second, "CONFIRMED")
	all := s.movements("MOVE-1", "").Items
	if len(all) != 5 {
		t.Fatalf("after a confirmed order: %d rows, want 5: %+v", len(all), all)
	}
	commit, reserve := all[0], all[1]
	if commit.Kind != "commit" || commit.OnHandDelta != -3 || commit.ReservedDelta != -3 || commit.OrderID == nil || *commit.OrderID != o.ID {
		t.Errorf("newest row: %+v, want the commit of 3 units for order %s", commit, o.ID)
	}
	if reserve.Kind != "reserve" || reserve.OnHandDelta != 0 || reserve.ReservedDelta != 3 || reserve.OrderID == nil || *reserve.OrderID != o.ID {
		t.Errorf("second row: %+v, want the reservation of 3 units for order %s", reserve, o.ID)
	}
	if commit.Warehouse != reserve.Warehouse {
		t.Errorf("committed in %s what was reserved in %s", commit.Warehouse, reserve.Warehouse)
	}

	// The ledger accounts for the stock: its deltas add up to each row.
	var p struct {
		Stock []struct {
			Warehouse string `json:"warehouse"`
			OnHand    int    `json:"on_hand"`
			Reserved  int    `json:"reserved"`
		} `json:"stock"`
	}
	s.do("GET", "/api/v1/products/MOVE-1", "", nil).json(t, &p)
	sums := map[string][2]int{}
	for _, m := range all {
		v := sums[m.Warehouse]
		sums[m.Warehouse] = [2]int{v[0] + m.OnHandDelta, v[1] + m.ReservedDelta}
	}
	for _, st := range p.Stock {
		if got := sums[st.Warehouse]; got != [2]int{st.OnHand, st.Reserved} {
			t.Errorf("%s: the ledger adds up to on_hand %d, reserved %d; the stock row says %d, %d", st.Warehouse, got[0], got[1], st.OnHand, st.Reserved)
		}
	}
	if len(p.Stock) != len(sums) {
		t.Errorf("stock rows %+v, ledger warehouses %v", p.Stock, sums)
	}

	// One warehouse, named in any case.
	west := s.movements("MOVE-1", "?warehouse=WEST").Items
	if len(west) != 1 || west[0].Warehouse != "west" || west[0].Kind != "initial" {
		t.Errorf("west's ledger: %+v, want its initial row only", west)
	}
	var east []movementJSON
	for _, m := range all {
		if m.Warehouse == "east" {
			east = append(east, m)
		}
	}
	if got := s.movements("MOVE-1", "?warehouse=east&limit=200").Items; !sameIDs(got, east) {
		t.Errorf("east's ledger: %v, want %v", ids(got), ids(east))
	}
	if got := s.movements("MOVE-1", "?warehouse=nowhere"); len(got.Items) != 0 || got.NextCursor != "" {
		t.Errorf("a warehouse without stock: %+v, want an empty page", got)
	}
	if got := s.movements("MOVE-1", "?warehouse="); !sameIDs(got.Items, all) {
		t.Errorf("an empty warehouse: %v, want every row %v", ids(got.Items), ids(all))
	}

	// Page by page, newest first, each row once.
	for _, limit := range []string{"1", "2", "4"} {
		var got []movementJSON
		page := s.movements("MOVE-1", "?limit="+limit)
		pages := 1
		for page.NextCursor != "" {
			got = append(got, page.Items...)
			page = s.movements("MOVE-1", "?limit="+limit+"&cursor="+url.QueryEscape(page.NextCursor))
			pages++
		}
		got = append(got, page.Items...)
		if !sameIDs(got, all) {
			t.Errorf("limit %s: pages gave %v, want %v", limit, ids(got), ids(all))
		}
		if want := map[string]int{"1": 5, "2": 3, "4": 2}[limit]; pages != want {
			t.Errorf("limit %s: %d pages, want %d", limit, pages, want)
		}
	}
	eastPage := s.movements("MOVE-1", "?warehouse=east&limit=1")
	if eastPage.NextCursor == "" {
		t.Fatal("east's first page of 1: no next_cursor")
	}
	if next := s.movements("MOVE-1", "?warehouse=EAST&limit=1&cursor="+url.QueryEscape(eastPage.NextCursor)).Items; len(next) != 1 || next[0].ID != east[1].ID {
		t.Errorf("east's second page: %v, want [%d]", ids(next), east[1].ID)
	}
	s.product("MOVE-2", 100, map[string]int{"east": 1})

	// Refused, each with its status and field, and nothing changes.
	customer, _ := s.customer()
	before := s.counts()
	cursorOfEast := url.QueryEscape(eastPage.NextCursor)
	refused := []struct {
		token, path string
		status      int
		code, field string
		stated      bool // openapi.json states the rule too
	}{
		{"", "/api/v1/products/MOVE-1/movements", 401, "unauthenticated", "", true},
		{customer, "/api/v1/products/MOVE-1/movements", 403, "forbidden", "", true},
		{s.admin, "/api/v1/products/NOPE-1/movements", 404, "not_found", "", true},
		{s.admin, "/api/v1/products/NOPE-1/movements?warehouse=east&limit=1", 404, "not_found", "", true},
		{s.admin, "/api/v1/products/lower-case/movements", 404, "not_found", "", true},
		{s.admin, "/api/v1/products/MOVE-1/movements?limit=0", 400, "invalid_argument", "limit", true},
		{s.admin, "/api/v1/products/MOVE-1/movements?limit=201", 400, "invalid_argument", "limit", true},
		{s.admin, "/api/v1/products/MOVE-1/movements?limit=ten", 400, "invalid_argument", "limit", true},
		{s.admin, "/api/v1/products/MOVE-1/movements?warehouse=East%21", 400, "invalid_argument", "warehouse", true},
		{s.admin, "/api/v1/products/MOVE-1/movements?warehouse=_east", 400, "invalid_argument", "warehouse", true},
		{s.admin, "/api/v1/products/MOVE-1/movements?warehouse=" + url.QueryEscape("a\x00"), 400, "invalid_argument", "warehouse", true},
		{s.admin, "/api/v1/products/MOVE-1/movements?cursor=abc", 400, "invalid_argument", "cursor", false},
		// A cursor issued for another list: east's, for all warehouses,
		// for west, for another product.
		{s.admin, "/api/v1/products/MOVE-1/movements?cursor=" + cursorOfEast, 400, "invalid_argument", "cursor", false},
		{s.admin, "/api/v1/products/MOVE-1/movements?warehouse=west&cursor=" + cursorOfEast, 400, "invalid_argument", "cursor", false},
		{s.admin, "/api/v1/products/MOVE-2/movements?warehouse=east&cursor=" + cursorOfEast, 400, "invalid_argument", "cursor", false},
		// Another list's cursor of the same server is not a movements cursor.
		{s.admin, "/api/v1/products/MOVE-1/movements?cursor=" + url.QueryEscape(productsCursor(t, s)), 400, "invalid_argument", "cursor", false},
	}
	for _, r := range refused {
		got := s.do("GET", r.path, r.token, nil)
		if got.Status != r.status || got.errCode() != r.code || got.errField() != r.field {
			t.Errorf("GET %s: %d %s (field %q), want %d %s (field %q): %s", r.path, got.Status, got.errCode(), got.errField(), r.status, r.code, r.field, got.Body)
		}
		if r.status == 400 {
			if stated := len(s.contractRefusals("GET", r.path, r.token, nil)) > 0; stated != r.stated {
				t.Errorf("GET %s: openapi.json refuses it: %v, want %v", r.path, stated, r.stated)
			}
		}
	}
	if after := s.counts(); after != before {
		t.Errorf("refused requests changed the tables:\n%s\n%s", before, after)
	}
}

// productsCursor is a next_cursor of the product list.
func productsCursor(t *testing.T, s *stack) string {
	t.Helper()
	var p struct {
		NextCursor string `json:"next_cursor"`
	}
	s.do("GET", "/api/v1/products?limit=1", "", nil).json(t, &p)
	if p.NextCursor == "" {
		t.Fatal("the product list of 1 has no next page")
	}
	return p.NextCursor
}

func ids(ms []movementJSON) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func sameIDs(a, b []movementJSON) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID {
			return false
		}
	}
	return true
}
