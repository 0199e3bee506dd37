package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestContractStatesWhatTheServerValidates: each request below is one the
// gateway refuses with 400; openapi.json must refuse it too, so that a
// client built from the document knows every rule the server applies.
// (Requests the gateway accepts are held to the document by the test
// client itself: see contractMismatches.) The few rules JSON Schema cannot
// state are listed apart, each with why, and described in the document's
// text instead.
func TestContractStatesWhatTheServerValidates(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	s.product("WATCH-42", 12900, map[string]int{"east": 5})
	customer, _ := s.customer()
	tokens := map[string]string{"": "", "customer": customer, "admin": s.admin}
	long := func(n int) string { return strings.Repeat("x", n) }
	fiftyOne := make([]map[string]any, 51)
	for i := range fiftyOne {
		fiftyOne[i] = map[string]any{"sku": "WATCH-42", "quantity": 1}
	}
	hundredOne := make([]map[string]any, 101)
	for i := range hundredOne {
		hundredOne[i] = map[string]any{"warehouse": "w" + strings.Repeat("a", i%30) + string(rune('a'+i%26)), "on_hand": 1}
	}
	product := func(change map[string]any) map[string]any {
		p := map[string]any{"sku": "NEW-1", "name": "n", "brand": "b", "price_cents": 1}
		for k, v := range change {
			p[k] = v
		}
		return p
	}
	order := func(items any, method string) map[string]any {
		return map[string]any{"items": items, "payment_method": method}
	}
	one := []map[string]any{{"sku": "WATCH-42", "quantity": 1}}

	type req struct {
		who, method, path string
		body              any
		headers           []string
		field             string // the field the server names
	}
	refused := []req{
		{"", "POST", "/api/v1/auth/register", map[string]any{"email": "not-an-email", "password": "password1", "name": "A"}, nil, "email"},
		{"", "POST", "/api/v1/auth/register", map[string]any{"email": "a@example.com", "password": "short", "name": "A"}, nil, "password"},
		{"", "POST", "/api/v1/auth/register", map[string]any{"email": "a@example.com", "password": long(73), "name": "A"}, nil, "password"},
		{"", "POST", "/api/v1/auth/register", map[string]any{"email": "a@example.com", "password": "pass\x00word1", "name": "A"}, nil, "password"},
		{"", "POST", "/api/v1/auth/register", map[string]any{"email": "a@example.com", "password": 12345678, "name": "A"}, nil, "password"},
		{"", "POST", "/api/v1/auth/register", map[string]any{"email": "a@example.com", "password": "password1", "name": "   "}, nil, "name"},
		{"", "POST", "/api/v1/auth/register", map[string]any{"email": "a@example.com", "password": "password1", "name": long(101)}, nil, "name"},
		{"", "POST", "/api/v1/auth/register", map[string]any{"email": "a@example.com", "password": "password1", "name": "A\x00"}, nil, "name"},
		{"", "POST", "/api/v1/auth/register", map[string]any{"email": "a@example.com", "password": "password1"}, nil, "name"},
		{"", "POST", "/api/v1/auth/login", map[string]any{"email": "", "password": "password1"}, nil, "email"},
		{"", "POST", "/api/v1/auth/login", map[string]any{"email": "a\x00@example.com", "password": "password1"}, nil, "email"},
		{"", "POST", "/api/v1/auth/login", map[string]any{"email": "a@example.com"}, nil, "password"},

		{"", "GET", "/api/v1/products?limit=0", nil, nil, "limit"},
		{"", "GET", "/api/v1/products?limit=201", nil, nil, "limit"},
		{"", "GET", "/api/v1/products?limit=ten", nil, nil, "limit"},
		{"", "GET", "/api/v1/products?min_price_cents=-1", nil, nil, "min_price_cents"},
		{"", "GET", "/api/v1/products?max_price_cents=10000000001", nil, nil, "max_price_cents"},
		{"", "GET", "/api/v1/products?in_stock=yes", nil, nil, "in_stock"},
		{"", "GET", "/api/v1/products?q=" + long(101), nil, nil, "q"},
		{"", "GET", "/api/v1/products?q=a%00b", nil, nil, "q"},
		{"", "GET", "/api/v1/products?brand=" + long(101), nil, nil, "brand"},
		{"", "GET", "/api/v1/products?brand=%00", nil, nil, "brand"},

		{"admin", "POST", "/api/v1/products", product(map[string]any{"sku": "lower-1"}), nil, "sku"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"sku": "X"}), nil, "sku"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"name": ""}), nil, "name"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"name": " \t "}), nil, "name"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"name": long(201)}), nil, "name"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"brand": long(101)}), nil, "brand"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"description": long(5001)}), nil, "description"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"description": "a\x00"}), nil, "description"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"price_cents": -5}), nil, "price_cents"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"price_cents": 1.5}), nil, "price_cents"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"price_cents": 10_000_000_001}), nil, "price_cents"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"price_cents": nil}), nil, "price_cents"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"currency": "usd"}), nil, "currency"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"stock": []map[string]any{{"warehouse": "BAD WH", "on_hand": 1}}}), nil, "stock.warehouse"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"stock": []map[string]any{{"warehouse": "_east", "on_hand": 1}}}), nil, "stock.warehouse"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"stock": []map[string]any{{"warehouse": long(33), "on_hand": 1}}}), nil, "stock.warehouse"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"stock": []map[string]any{{"on_hand": 1}}}), nil, "stock.warehouse"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"stock": []map[string]any{{"warehouse": "east", "on_hand": -1}}}), nil, "stock.on_hand"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"stock": []map[string]any{{"warehouse": "east", "on_hand": 10_000_001}}}), nil, "stock.on_hand"},
		{"admin", "POST", "/api/v1/products", product(map[string]any{"stock": hundredOne}), nil, "stock"},

		{"admin", "PATCH", "/api/v1/products/WATCH-42", map[string]any{"name": ""}, nil, "name"},
		{"admin", "PATCH", "/api/v1/products/WATCH-42", map[string]any{"brand": long(101)}, nil, "brand"},
		{"admin", "PATCH", "/api/v1/products/WATCH-42", map[string]any{"description": long(5001)}, nil, "description"},
		{"admin", "PATCH", "/api/v1/products/WATCH-42", map[string]any{"price_cents": "free"}, nil, "price_cents"},
		{"admin", "PATCH", "/api/v1/products/WATCH-42", map[string]any{"price_cents": -1}, nil, "price_cents"},
		{"admin", "PATCH", "/api/v1/products/WATCH-42", map[string]any{"active": "yes"}, nil, "active"},

		{"admin", "POST", "/api/v1/products/WATCH-42/stock", map[string]any{"warehouse": "East!", "delta": 1, "reason": "r"}, nil, "warehouse"},
		{"admin", "POST", "/api/v1/products/WATCH-42/stock", map[string]any{"delta": 1, "reason": "r"}, nil, "warehouse"},
		{"admin", "POST", "/api/v1/products/WATCH-42/stock", map[string]any{"warehouse": "east", "delta": 0, "reason": "r"}, nil, "delta"},
		{"admin", "POST", "/api/v1/products/WATCH-42/stock", map[string]any{"warehouse": "east", "reason": "r"}, nil, "delta"},
		{"admin", "POST", "/api/v1/products/WATCH-42/stock", map[string]any{"warehouse": "east", "delta": 10_000_001, "reason": "r"}, nil, "delta"},
		{"admin", "POST", "/api/v1/products/WATCH-42/stock", map[string]any{"warehouse": "east", "delta": 1}, nil, "reason"},
		{"admin", "POST", "/api/v1/products/WATCH-42/stock", map[string]any{"warehouse": "east", "delta": 1, "reason": "  "}, nil, "reason"},
		{"admin", "POST", "/api/v1/products/WATCH-42/stock", map[string]any{"warehouse": "east", "delta": 1, "reason": long(201)}, nil, "reason"},

		{"customer", "POST", "/api/v1/orders", order([]any{}, "tok_ok"), nil, "items"},
		{"customer", "POST", "/api/v1/orders", order(fiftyOne, "tok_ok"), nil, "items"},
		{"customer", "POST", "/api/v1/orders", order(nil, "tok_ok"), nil, "items"},
		{"customer", "POST", "/api/v1/orders", order([]map[string]any{{"sku": "WATCH-42", "quantity": 0}}, "tok_ok"), nil, "items.quantity"},
		{"customer", "POST", "/api/v1/orders", order([]map[string]any{{"sku": "WATCH-42", "quantity": 1001}}, "tok_ok"), nil, "items.quantity"},
		{"customer", "POST", "/api/v1/orders", order([]map[string]any{{"sku": "WATCH-42", "quantity": 1.5}}, "tok_ok"), nil, "items.quantity"},
		{"customer", "POST", "/api/v1/orders", order([]map[string]any{{"sku": "WATCH-42"}}, "tok_ok"), nil, "items.quantity"},
		{"customer", "POST", "/api/v1/orders", order([]map[string]any{{"sku": "watch 42", "quantity": 1}}, "tok_ok"), nil, "items.sku"},
		{"customer", "POST", "/api/v1/orders", order(one, "4111111111111111"), nil, "payment_method"},
		{"customer", "POST", "/api/v1/orders", order(one, ""), nil, "payment_method"},
		{"customer", "POST", "/api/v1/orders", order(one, "tok_ok"), []string{"Idempotency-Key", long(256)}, "Idempotency-Key"},

		{"customer", "GET", "/api/v1/orders?status=DONE", nil, nil, "status"},
		{"customer", "GET", "/api/v1/orders?limit=0", nil, nil, "limit"},
		{"customer", "GET", "/api/v1/orders?limit=201", nil, nil, "limit"},
	}
	for _, r := range refused {
		name := r.method + " " + r.path
		if b, err := json.Marshal(r.body); err == nil && r.body != nil {
			name += " " + clip(b)
		}
		got := s.do(r.method, r.path, tokens[r.who], r.body, r.headers...)
		if got.Status != 400 || got.errField() != r.field {
			t.Errorf("%s: the server answered %d (field %q), want 400 on %s: %s", name, got.Status, got.errField(), r.field, clip(got.Body))
		}
		if len(s.contractRefusals(r.method, r.path, tokens[r.who], r.body, r.headers...)) == 0 {
			t.Errorf("%s: the server refuses it (400 on %s) but openapi.json allows it", name, r.field)
		}
	}

	// What the server refuses for reasons a JSON Schema cannot state, and
	// the document describes in words instead.
	order42 := []map[string]any{{"sku": "WATCH-42", "quantity": 1}, {"sku": "WATCH-42", "quantity": 2}}
	unstated := []struct {
		req
		why string
	}{
		{req{"", "POST", "/api/v1/auth/register", map[string]any{"email": "Bob <b@example.com>", "password": "password1", "name": "B"}, nil, "email"},
			"the address syntax is Go's net/mail, not a regular expression"},
		{req{"", "POST", "/api/v1/auth/register", map[string]any{"email": "b@example.com", "password": strings.Repeat("é", 40), "name": "B"}, nil, "password"},
			"the bound is 72 bytes, and JSON Schema counts characters"},
		{req{"admin", "POST", "/api/v1/products", product(map[string]any{"stock": []map[string]any{{"warehouse": "WH-A", "on_hand": 1}, {"warehouse": "wh-a", "on_hand": 1}}}), nil, "stock.warehouse"},
			"each warehouse once, compared in lower case: uniqueness of one member across array items"},
		{req{"customer", "POST", "/api/v1/orders", order(order42, "tok_ok"), nil, "items.sku"},
			"each sku once: uniqueness of one member across array items"},
		{req{"customer", "GET", "/api/v1/orders?cursor=abc", nil, nil, "cursor"},
			"only cursors the server issued (signed) are accepted"},
		{req{"", "GET", "/api/v1/products?q=a;b", nil, nil, "q"},
			"a raw ';' in a query is refused as ambiguous; the document's parameters see decoded values"},
		{req{"", "GET", "/api/v1/products?limit=1&limit=2", nil, nil, "limit"},
			"a parameter given twice is refused; OpenAPI cannot say that a parameter that is not a list appears once"},
	}
	for _, u := range unstated {
		r := u.req
		got := s.do(r.method, r.path, tokens[r.who], r.body, r.headers...)
		if got.Status != 400 || got.errField() != r.field {
			t.Errorf("%s %s: the server answered %d (field %q), want 400 on %s: %s", r.method, r.path, got.Status, got.errField(), r.field, clip(got.Body))
		}
		if refusals := s.contractRefusals(r.method, r.path, tokens[r.who], r.body, r.headers...); len(refusals) > 0 {
			t.Errorf("%s %s: openapi.json now states this rule (%s); move it to the stated ones", r.method, r.path, refusals[0])
		}
	}

	// Edges the server accepts: the test client holds each request and
	// response to the document, so a bound stated too tight fails here.
	accepted := []req{
		{"admin", "POST", "/api/v1/products", map[string]any{"sku": "EDGE-" + strings.Repeat("E", 59), "name": long(200), "brand": long(100),
			"description": long(5000), "price_cents": 10_000_000_000, "currency": "EUR",
			"stock": []map[string]any{{"warehouse": "WH-A", "on_hand": 10_000_000}, {"warehouse": "b" + long(31)}}}, nil, ""},
		{"admin", "POST", "/api/v1/products", map[string]any{"sku": "Z9", "name": " n ", "brand": "b", "price_cents": 0, "unknown": "ignored"}, nil, ""},
		{"admin", "PATCH", "/api/v1/products/Z9", map[string]any{"name": nil, "description": "", "active": true}, nil, ""},
		{"admin", "POST", "/api/v1/products/WATCH-42/stock", map[string]any{"warehouse": "East", "delta": -1, "reason": "count"}, nil, ""},
		{"admin", "POST", "/api/v1/products/WATCH-42/stock", map[string]any{"warehouse": "NEW_WH", "delta": 10_000_000, "reason": long(200)}, nil, ""},
		{"", "GET", "/api/v1/products?limit=200&q=" + url.QueryEscape(" watch ") + "&brand=brandw&in_stock=false&min_price_cents=0&max_price_cents=10000000000", nil, nil, ""},
		{"", "POST", "/api/v1/auth/register", map[string]any{"email": "edge@example.com", "password": long(72), "name": long(100)}, nil, ""},
		{"customer", "POST", "/api/v1/orders", order([]map[string]any{{"sku": "WATCH-42", "quantity": 1}}, "tok_declined"),
			[]string{"Idempotency-Key", strings.Repeat("k", 255)}, ""},
		{"customer", "GET", "/api/v1/orders?limit=1&status=PENDING", nil, nil, ""},
	}
	for _, r := range accepted {
		if got := s.do(r.method, r.path, tokens[r.who], r.body, r.headers...); got.Status >= 300 {
			t.Errorf("%s %s: %d %s", r.method, r.path, got.Status, clip(got.Body))
		}
	}
	// Warehouse codes are case-insensitive and come back in lower case
	// (the document's response pattern checks the case on every answer).
	var p struct {
		Stock []struct{ Warehouse string } `json:"stock"`
	}
	s.do("GET", "/api/v1/products/EDGE-"+strings.Repeat("E", 59), "", nil).json(t, &p)
	if len(p.Stock) != 2 || p.Stock[0].Warehouse != "b"+long(31) || p.Stock[1].Warehouse != "wh-a" {
		t.Errorf("stock %+v", p.Stock)
	}
}

// contractRefusals is what openapi.json says of the request that s.do
// would send.
func (s *stack) contractRefusals(method, path, token string, body any, headers ...string) []string {
	s.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		raw, _ = json.Marshal(b)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	return requestRefusals(method, s.url+path, h, raw)
}

// TestContractCatchesDrift: the test client's check reports an answer that
// departs from openapi.json, saying which operation, which status and what
// differs, and lets through the answers the document allows.
func TestContractCatchesDrift(t *testing.T) {
	const base = "http://gateway.test"
	headers := func(extra ...string) http.Header {
		h := http.Header{}
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("X-Request-ID", "req-1")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}
	product := `{"sku":"WATCH-42","name":"Watch","brand":"Acme","description":"","price_cents":100,"currency":"USD","active":true,` +
		`"available":1,"stock":[{"warehouse":"east","on_hand":1,"reserved":0,"available":1}],"updated_at":"2026-01-02T03:04:05Z"}`
	orderBody := `{"items":[{"sku":"WATCH-42","quantity":1}],"payment_method":"tok_ok"}`
	order := `{"id":"6c0f3f53-3a43-4c6e-9a8e-4b1d5a7e2f10","customer_id":"6c0f3f53-3a43-4c6e-9a8e-4b1d5a7e2f11","status":"PENDING",` +
		`"reason":"","items":[{"sku":"WATCH-42","name":"Watch","quantity":1,"unit_price_cents":100,"line_total_cents":100}],` +
		`"total_cents":100,"currency":"USD","payment_method":"tok_ok","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"}`
	auth := http.Header{"Authorization": {"Bearer t"}, "Content-Type": {"application/json"}}
	location := []string{"Location", "/api/v1/orders/6c0f3f53-3a43-4c6e-9a8e-4b1d5a7e2f10"}
	for _, tc := range []struct {
		name    string
		x       exchange
		mention []string // what the report must say; none: no mismatch
	}{
		{"a product as documented", exchange{method: "GET", url: base + "/api/v1/products/WATCH-42", status: 200, respHeader: headers(), respBody: []byte(product)}, nil},
		{"an undocumented field", exchange{method: "GET", url: base + "/api/v1/products/WATCH-42", status: 200, respHeader: headers(),
			respBody: []byte(strings.Replace(product, `"active"`, `"cost_cents":1,"active"`, 1))}, []string{"GET /api/v1/products/WATCH-42 → 200", "cost_cents"}},
		{"a warehouse in upper case", exchange{method: "GET", url: base + "/api/v1/products/WATCH-42", status: 200, respHeader: headers(),
			respBody: []byte(strings.Replace(product, `"east"`, `"EAST"`, 1))}, []string{"→ 200", "warehouse"}},
		{"a status the operation does not document", exchange{method: "GET", url: base + "/api/v1/products/WATCH-42", status: 409, respHeader: headers(),
			respBody: []byte(`{"error":{"code":"conflict","message":"m","request_id":"req-1"}}`)}, []string{"GET /api/v1/products/WATCH-42 → 409"}},
		{"a code that does not go with the status", exchange{method: "GET", url: base + "/api/v1/products/WATCH-42", status: 404, respHeader: headers(),
			respBody: []byte(`{"error":{"code":"conflict","message":"m","request_id":"req-1"}}`)}, []string{"→ 404", "code"}},
		{"invalid_argument without a field", exchange{method: "GET", url: base + "/api/v1/products?limit=0", status: 400, respHeader: headers(),
			respBody: []byte(`{"error":{"code":"invalid_argument","message":"m","request_id":"req-1"}}`)}, []string{"→ 400", "field"}},
		{"no X-Request-ID", exchange{method: "GET", url: base + "/healthz", status: 200,
			respHeader: func() http.Header { h := headers(); h.Del("X-Request-ID"); return h }(), respBody: []byte(`{"status":"ok"}`)}, []string{"GET /healthz → 200", "X-Request-ID"}},
		{"an unknown route answered 404 not_found", exchange{method: "GET", url: base + "/api/v1/nope", status: 404, respHeader: headers(),
			respBody: []byte(`{"error":{"code":"not_found","message":"no such endpoint","request_id":"req-1"}}`)}, nil},
		{"an unknown route that answers", exchange{method: "GET", url: base + "/api/v1/nope", status: 200, respHeader: headers(), respBody: []byte(`{}`)},
			[]string{"GET /api/v1/nope → 200", "not in openapi.json"}},
		{"an accepted order", exchange{method: "POST", url: base + "/api/v1/orders", reqHeader: auth, reqBody: []byte(orderBody),
			status: 202, respHeader: headers(location...), respBody: []byte(order)}, nil},
		{"an order without Location", exchange{method: "POST", url: base + "/api/v1/orders", reqHeader: auth, reqBody: []byte(orderBody),
			status: 202, respHeader: headers(), respBody: []byte(order)}, []string{"POST /api/v1/orders → 202", "Location"}},
		{"a reason that does not go with the status", exchange{method: "POST", url: base + "/api/v1/orders", reqHeader: auth, reqBody: []byte(orderBody),
			status: 202, respHeader: headers(location...), respBody: []byte(strings.Replace(order, `"reason":""`, `"reason":"timeout"`, 1))}, []string{"→ 202", "reason"}},
		{"a request the server took that the document refuses", exchange{method: "POST", url: base + "/api/v1/orders", reqHeader: auth,
			reqBody: []byte(strings.Replace(orderBody, `"quantity":1`, `"quantity":5000`, 1)), status: 202, respHeader: headers(location...), respBody: []byte(order)},
			[]string{"POST /api/v1/orders → 202", "request the server accepted", "quantity"}},
		{"a refused request is the server's business", exchange{method: "POST", url: base + "/api/v1/orders", reqHeader: auth,
			reqBody: []byte(`{"items":[]}`), status: 400, respHeader: headers(),
			respBody: []byte(`{"error":{"code":"invalid_argument","message":"m","field":"items","request_id":"req-1"}}`)}, nil},
	} {
		if tc.x.reqHeader == nil {
			tc.x.reqHeader = http.Header{}
		}
		got := contractMismatches(tc.x)
		report := strings.Join(got, "\n")
		t.Logf("%s:\n%s", tc.name, report)
		switch {
		case len(tc.mention) == 0 && len(got) > 0:
			t.Errorf("%s: reported\n%s", tc.name, report)
		case len(tc.mention) > 0 && len(got) == 0:
			t.Errorf("%s: not reported", tc.name)
		}
		for _, m := range tc.mention {
			if !strings.Contains(report, m) {
				t.Errorf("%s: the report does not say %q:\n%s", tc.name, m, report)
			}
		}
	}
}
