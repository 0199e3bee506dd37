package gateway_test

import (
	"strings"
	"testing"
)

// with returns s reporting to t, for use inside a fuzz function.
func (s *stack) with(t testing.TB) *stack {
	c := *s
	c.t = t
	return &c
}

var commonSeeds = []string{
	``, `null`, `[]`, `{}`, `"str"`, `1e309`, `{"a":`, "{\"\x00\":1}", `{"items":null}`, strings.Repeat("[", 2000),
	`{"email":{"$ne":null}}`, `{"name":"\u0000"}`, `{"sku":"A","sku":"B"}`, "\xff\xfe", `{"price_cents":9223372036854775808}`,
}

// fuzzBody posts each body to path and checks what a client would see: no
// 5xx ever, and a refused request changes nothing.
func fuzzBody(f *testing.F, s *stack, path, token string, seeds ...string) {
	for _, seed := range append(seeds, commonSeeds...) {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s := s.with(t)
		before := s.counts()
		r := s.do("POST", path, token, body)
		if r.Status >= 500 {
			t.Fatalf("%s answered %d for %q: %s", path, r.Status, body, r.Body)
		}
		if r.Status >= 400 {
			if r.errCode() == "" {
				t.Errorf("%d without an error code: %s", r.Status, r.Body)
			}
			if after := s.counts(); after != before {
				t.Errorf("a refused request (%d %s) wrote: %s -> %s", r.Status, r.errCode(), before, after)
			}
		}
	})
}

func FuzzCreateOrder(f *testing.F) {
	s := newStack(f, options{noWorkers: true})
	s.product("WATCH-42", 12900, map[string]int{"east": 5})
	tok, _ := s.customer()
	fuzzBody(f, s, "/api/v1/orders", tok,
		`{"items":[{"sku":"WATCH-42","quantity":1}],"payment_method":"tok_ok"}`,
		`{"items":[{"sku":"WATCH-42","quantity":1,"price_cents":1}],"payment_method":"tok_ok","total_cents":1}`,
		`{"items":[{"sku":"WATCH-42","quantity":-1}],"payment_method":"tok_ok"}`,
		`{"items":[{"sku":"WATCH-42","quantity":1e3}],"payment_method":"tok_ok"}`,
		`{"items":[{"sku":"WATCH-42","quantity":"1"}],"payment_method":"tok_ok"}`,
		`{"items":[{"sku":"NOPE-9","quantity":1}],"payment_method":"tok_ok"}`,
		`{"items":[{"sku":"WATCH-42","quantity":1}],"payment_method":"tok_nope"}`,
		`{"items":[{"sku":"WATCH-42","quantity":1},{"sku":"WATCH-42","quantity":1}],"payment_method":"tok_ok"}`,
		`{"items":{"sku":"WATCH-42"},"payment_method":"tok_ok"}`,
	)
}

func FuzzCreateProduct(f *testing.F) {
	s := newStack(f, options{noWorkers: true})
	fuzzBody(f, s, "/api/v1/products", s.admin,
		`{"sku":"NEW-1","name":"n","brand":"b","price_cents":100}`,
		`{"sku":"NEW-2","name":"n","brand":"b","price_cents":100,"stock":[{"warehouse":"east","on_hand":3}]}`,
		`{"sku":"NEW-3","name":"n","brand":"b","price_cents":100,"stock":[{"warehouse":"east","on_hand":3},{"warehouse":"BAD WH","on_hand":1}]}`,
		`{"sku":"NEW-4","name":"n","brand":"b","price_cents":100,"stock":[{"warehouse":"east","on_hand":99999999999}]}`,
		`{"sku":"new-5","name":"n","brand":"b","price_cents":100}`,
		`{"sku":"NEW-6","name":"`+strings.Repeat("n", 201)+`","brand":"b","price_cents":100}`,
		`{"sku":"NEW-7","name":"n","brand":"b","price_cents":100,"currency":"EURO"}`,
	)
}

func FuzzRegister(f *testing.F) {
	s := newStack(f, options{noWorkers: true})
	fuzzBody(f, s, "/api/v1/auth/register", "",
		`{"email":"a@example.com","password":"password1","name":"A"}`,
		`{"email":"a@example.com","password":"password1","name":"A"}`,
		`{"email":"b@example.com","password":"`+strings.Repeat("é", 40)+`","name":"B"}`,
		`{"email":"@","password":"password1","name":"C"}`,
		`{"email":"c@example.com","password":"password1","name":"`+strings.Repeat("x", 101)+`"}`,
		`{"email":"d@example.com","password":null,"name":"D"}`,
	)
}
