package gateway_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// badPlace is where a test puts a bad string into a request.
type badPlace int

const (
	inQuery badPlace = iota
	inPath
	inJSON
	inHeader
)

// stringSite is one string a client sends: the request with BAD where the
// string goes, the field the server must name when it refuses it, and the
// length in characters past the field's bound (0: no bound of its own).
type stringSite struct {
	method, path, body string
	place              badPlace
	token              string
	field              string
	long               int
}

// badStrings are the strings API.md refuses, as each place carries them.
var badStrings = map[badPlace][]struct{ name, value string }{
	inQuery: {{"NUL", "a%00b"}, {"escaped invalid UTF-8", "a%FFb"}, {"raw invalid UTF-8", "a\xffb"}, {"overlong encoding", "%C0%AF"}},
	inPath:  {{"NUL", "a%00b"}, {"escaped invalid UTF-8", "a%FFb"}, {"raw invalid UTF-8", "a\xffb"}},
	inJSON: {{"NUL", `a\u0000b`}, {"raw invalid UTF-8", "a\xffb"}, {"lone high surrogate", `a\ud800b`},
		{"lone low surrogate", `\udc00`}, {"surrogates reversed", `\udc00\ud800`}},
	// A NUL cannot reach the server in a header: Go's client refuses to
	// send it and its server answers such a request 400 by itself.
	inHeader: {{"raw invalid UTF-8", "a\xffb"}},
}

// TestBadStringsAreRefusedByField: every string of every endpoint, sent as
// NUL, invalid UTF-8 or longer than its bound, is a 400 invalid_argument
// naming that field, and nothing is written. Before, a NUL or invalid UTF-8
// reached PostgreSQL and came back 500.
func TestBadStringsAreRefusedByField(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	s.product("WATCH-42", 12900, map[string]int{"east": 5})
	customer, _ := s.customer()
	var o orderJSON
	s.placeOrder(customer, "tok_ok", "WATCH-42", 1).json(t, &o)
	order := "/api/v1/orders/" + o.ID
	const (
		newProduct = `{"sku":"NEW-1","name":"n","brand":"b","description":"d","price_cents":1,"currency":"USD","stock":[{"warehouse":"east","on_hand":1}]}`
		newOrder   = `{"items":[{"sku":"WATCH-42","quantity":1}],"payment_method":"tok_ok"}`
	)
	// with puts BAD in place of the value of name in a JSON template.
	with := func(tmpl, name string) string {
		i := strings.Index(tmpl, `"`+name+`":`)
		if i < 0 {
			t.Fatalf("%s has no %s", tmpl, name)
		}
		rest := tmpl[i+len(name)+3:]
		end := strings.IndexAny(rest, ",}")
		return tmpl[:i+len(name)+3] + `"BAD"` + rest[end:]
	}
	sites := []stringSite{
		{"POST", "/api/v1/auth/register", `{"email":"BAD","password":"password1","name":"N"}`, inJSON, "", "email", 255},
		{"POST", "/api/v1/auth/register", `{"email":"x@example.com","password":"BAD","name":"N"}`, inJSON, "", "password", 73},
		{"POST", "/api/v1/auth/register", `{"email":"x@example.com","password":"password1","name":"BAD"}`, inJSON, "", "name", 101},
		{"POST", "/api/v1/auth/login", `{"email":"BAD","password":"password1"}`, inJSON, "", "email", 0},
		{"POST", "/api/v1/auth/login", `{"email":"x@example.com","password":"BAD"}`, inJSON, "", "password", 0},

		{"GET", "/api/v1/products?q=BAD", "", inQuery, "", "q", 101},
		{"GET", "/api/v1/products?brand=BAD", "", inQuery, "", "brand", 101},
		{"GET", "/api/v1/products?cursor=BAD", "", inQuery, "", "cursor", 600},
		{"GET", "/api/v1/products?limit=BAD", "", inQuery, "", "limit", 30},
		{"GET", "/api/v1/products?min_price_cents=BAD", "", inQuery, "", "min_price_cents", 30},
		{"GET", "/api/v1/products?max_price_cents=BAD", "", inQuery, "", "max_price_cents", 30},
		{"GET", "/api/v1/products?in_stock=BAD", "", inQuery, "", "in_stock", 30},
		{"GET", "/api/v1/products?unknown=BAD", "", inQuery, "", "unknown", 0},
		{"GET", "/api/v1/products/BAD", "", inPath, "", "sku", 0},
		{"POST", "/api/v1/products", with(newProduct, "sku"), inJSON, s.admin, "sku", 65},
		{"POST", "/api/v1/products", with(newProduct, "name"), inJSON, s.admin, "name", 201},
		{"POST", "/api/v1/products", with(newProduct, "brand"), inJSON, s.admin, "brand", 101},
		{"POST", "/api/v1/products", with(newProduct, "description"), inJSON, s.admin, "description", 5001},
		{"POST", "/api/v1/products", with(newProduct, "currency"), inJSON, s.admin, "currency", 4},
		{"POST", "/api/v1/products", with(newProduct, "warehouse"), inJSON, s.admin, "stock.warehouse", 33},
		{"PATCH", "/api/v1/products/BAD", `{"name":"n"}`, inPath, s.admin, "sku", 0},
		{"PATCH", "/api/v1/products/WATCH-42", `{"name":"BAD"}`, inJSON, s.admin, "name", 201},
		{"PATCH", "/api/v1/products/WATCH-42", `{"brand":"BAD"}`, inJSON, s.admin, "brand", 101},
		{"PATCH", "/api/v1/products/WATCH-42", `{"description":"BAD"}`, inJSON, s.admin, "description", 5001},
		{"DELETE", "/api/v1/products/BAD", "", inPath, s.admin, "sku", 0},
		{"POST", "/api/v1/products/BAD/stock", `{"warehouse":"east","delta":1,"reason":"r"}`, inPath, s.admin, "sku", 0},
		{"POST", "/api/v1/products/WATCH-42/stock", `{"warehouse":"BAD","delta":1,"reason":"r"}`, inJSON, s.admin, "warehouse", 33},
		{"POST", "/api/v1/products/WATCH-42/stock", `{"warehouse":"east","delta":1,"reason":"BAD"}`, inJSON, s.admin, "reason", 201},

		{"POST", "/api/v1/orders", newOrder, inHeader, customer, "Idempotency-Key", 256},
		{"POST", "/api/v1/orders", with(newOrder, "sku"), inJSON, customer, "items.sku", 65},
		{"POST", "/api/v1/orders", with(newOrder, "payment_method"), inJSON, customer, "payment_method", 300},
		// A member the server ignores is refused too: every string is checked.
		{"POST", "/api/v1/orders", `{"note":"BAD","items":[{"sku":"WATCH-42","quantity":1}],"payment_method":"tok_ok"}`, inJSON, customer, "note", 0},
		{"POST", "/api/v1/orders", `{"items":[{"sku":"WATCH-42","quantity":1,"gift":{"to":"BAD"}}],"payment_method":"tok_ok"}`, inJSON, customer, "items.gift.to", 0},
		{"GET", "/api/v1/orders?status=BAD", "", inQuery, customer, "status", 30},
		{"GET", "/api/v1/orders?cursor=BAD", "", inQuery, customer, "cursor", 600},
		{"GET", "/api/v1/orders?limit=BAD", "", inQuery, s.admin, "limit", 30},
		{"GET", "/api/v1/orders/BAD", "", inPath, customer, "id", 0},
		{"GET", "/api/v1/orders/BAD/events", "", inPath, customer, "id", 0},
		{"GET", order + "/events?after_seq=BAD", "", inQuery, customer, "after_seq", 30},
		{"POST", "/api/v1/orders/BAD/cancel", "", inPath, customer, "id", 0},
		{"POST", order + "/cancel", `{"reason":"BAD"}`, inJSON, customer, "reason", 501},
	}

	before := s.counts()
	for _, site := range sites {
		cases := badStrings[site.place]
		if site.long > 0 {
			cases = append(cases, struct{ name, value string }{"too long", strings.Repeat("é", site.long)})
		}
		for _, bad := range cases {
			method, path, body := site.method, site.path, site.body
			var headers []string
			switch site.place {
			case inQuery, inPath:
				v := bad.value
				if bad.name == "too long" {
					v = url.QueryEscape(v)
				}
				path = strings.Replace(path, "BAD", v, 1)
			case inJSON:
				body = strings.Replace(body, "BAD", bad.value, 1)
			case inHeader:
				headers = []string{site.field, bad.value}
			}
			var b any
			if body != "" {
				b = body
			}
			r := s.do(method, path, site.token, b, headers...)
			if r.Status != 400 || r.errCode() != "invalid_argument" || r.errField() != site.field {
				t.Errorf("%s %s with %s in %s: %d %s, want 400 invalid_argument on %q", site.method, site.path, bad.name, site.field, r.Status, r.Body, site.field)
				continue
			}
			checkError(t, r)
		}
	}
	if after := s.counts(); after != before {
		t.Errorf("refused requests wrote: %s -> %s", before, after)
	}
}

// TestGoodTextIsAccepted: the checks refuse only what API.md refuses. Any
// valid UTF-8 passes, escaped or not, surrogate pairs included, and bounds
// count characters, not bytes.
func TestGoodTextIsAccepted(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	name := strings.Repeat("é", 199) + "😀" // 200 characters, 400 bytes
	r := s.do("POST", "/api/v1/products", s.admin,
		`{"sku":"CAFE-1","name":"`+name+`","brand":"Caf\u00e9 \ud83d\ude00","description":"a\\u0000b is not a NUL","price_cents":1}`)
	var p productJSON
	r.json(t, &p)
	if r.Status != 201 || p.Name != name || p.Brand != "Café 😀" {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var page productPage
	for _, q := range []string{"q=caf%C3%A9", "q=caf\u00e9", "brand=Caf%C3%A9+%F0%9F%98%80", "q=%3B%26"} {
		r := s.do("GET", "/api/v1/products?"+q, "", nil)
		page = productPage{}
		r.json(t, &page)
		want := 1
		if q == "q=%3B%26" {
			want = 0
		}
		if r.Status != 200 || len(page.Items) != want {
			t.Errorf("%s: %d %s, want %d items", q, r.Status, r.Body, want)
		}
	}
	customer, _ := s.customer()
	s.do("POST", "/api/v1/products/CAFE-1/stock", s.admin, map[string]any{"warehouse": "east", "delta": 1, "reason": "réassort"})
	key := strings.Repeat("ключ", 63) + "key" // 255 characters, 507 bytes
	r = s.placeOrderWithKey(customer, key)
	if r.Status != 202 {
		t.Errorf("order with a 255-character key: %d %s", r.Status, r.Body)
	}
	if r := s.placeOrderWithKey(customer, key); r.Status != 200 {
		t.Errorf("the same key again: %d %s", r.Status, r.Body)
	}
	if utf8.RuneCountInString(key) != 255 {
		t.Fatal("the key is not 255 characters")
	}
}

func (s *stack) placeOrderWithKey(token, key string) response {
	s.t.Helper()
	return s.do("POST", "/api/v1/orders", token, `{"items":[{"sku":"CAFE-1","quantity":1}],"payment_method":"tok_ok"}`, "Idempotency-Key", key)
}

// TestUnreadableQueryIsRefused: a query pair that Go cannot decode used to
// be dropped without a word, and of a parameter given twice the second was
// ignored, so the filter a client asked for was not applied; now either is
// a 400 naming the parameter.
func TestUnreadableQueryIsRefused(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	for _, tc := range []struct{ query, field string }{
		{"q=%zz", "q"},
		{"brand=acme;x", "brand"},
		{"limit=5&brand=a%", "brand"},
		{"%zz=1", "query"},
		{"a%00=1", "query"},
		{"=%00", "query"},
		{"limit=1&limit=x", "limit"},
		{"brand=a&q=b&brand=c", "brand"},
	} {
		r := s.do("GET", "/api/v1/products?"+tc.query, "", nil)
		if r.Status != 400 || r.errCode() != "invalid_argument" || r.errField() != tc.field {
			t.Errorf("%s: %d %s, want 400 on %s", tc.query, r.Status, r.Body, tc.field)
			continue
		}
		checkError(t, r)
	}
	// A JSON member name that is not valid text is named as readably as it
	// can be.
	r := s.do("POST", "/api/v1/auth/login", "", `{"em\u0000ail":"x@example.com","password":"p"}`)
	var e struct {
		Error struct{ Field string } `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	if r.Status != 400 || e.Error.Field != "em\uFFFDail" {
		t.Errorf("bad member name: %d %s", r.Status, r.Body)
	}
}
