package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersaga/ordersaga/internal/authn"
)

func TestRegisterLoginMe(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	r := s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "Ann@Example.com", "password": "correct-horse", "name": " Ann "})
	if r.Status != 201 {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	var u struct{ ID, Email, Name, Role string }
	r.json(t, &u)
	if u.Email != "Ann@Example.com" || u.Name != "Ann" || u.Role != "customer" || uuid.Validate(u.ID) != nil {
		t.Errorf("registered %+v", u)
	}

	before := s.counts()
	for _, tc := range []struct {
		name, body, code, field string
		status                  int
	}{
		{"taken email, other case", `{"email":"ann@example.COM","password":"longenough","name":"A"}`, "conflict", "", 409},
		{"short password", `{"email":"b@example.com","password":"short","name":"B"}`, "invalid_argument", "password", 400},
		{"password over 72 bytes", `{"email":"b@example.com","password":"` + strings.Repeat("p", 73) + `","name":"B"}`, "invalid_argument", "password", 400},
		{"bad email", `{"email":"not-an-email","password":"longenough","name":"B"}`, "invalid_argument", "email", 400},
		{"email with display name", `{"email":"Bob <b@example.com>","password":"longenough","name":"B"}`, "invalid_argument", "email", 400},
		{"no name", `{"email":"b@example.com","password":"longenough","name":"  "}`, "invalid_argument", "name", 400},
		{"wrong type", `{"email":"b@example.com","password":12345678,"name":"B"}`, "invalid_argument", "password", 400},
		{"not JSON", `{"email":`, "invalid_json", "", 400},
		{"empty body", ``, "invalid_json", "", 400},
		{"array", `[1,2]`, "invalid_json", "", 400},
	} {
		r := s.do("POST", "/api/v1/auth/register", "", tc.body)
		if r.Status != tc.status || r.errCode() != tc.code || r.errField() != tc.field {
			t.Errorf("%s: %d %s (field %q), want %d %s (field %q): %s", tc.name, r.Status, r.errCode(), r.errField(), tc.status, tc.code, tc.field, r.Body)
		}
	}
	if after := s.counts(); after != before {
		t.Errorf("refused registrations wrote: %s -> %s", before, after)
	}

	// A huge email is refused before it costs a limiter key or a lookup.
	r = s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": strings.Repeat("a", 300) + "@example.com", "password": "correct-horse"})
	if r.Status != 400 || r.errCode() != "invalid_argument" || r.errField() != "email" {
		t.Errorf("login with a 300-character email: %d %s", r.Status, r.Body)
	}

	r = s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "ANN@example.com", "password": "correct-horse"})
	var login struct {
		Token     string
		ExpiresAt time.Time `json:"expires_at"`
		User      struct{ ID, Role string }
	}
	r.json(t, &login)
	if r.Status != 200 || login.Token == "" || login.User.ID != u.ID || login.ExpiresAt.Before(time.Now()) {
		t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	r = s.do("GET", "/api/v1/me", login.Token, nil)
	var me struct{ ID, Email, Role string }
	r.json(t, &me)
	if r.Status != 200 || me.ID != u.ID || me.Role != "customer" {
		t.Errorf("/me: %d %s", r.Status, r.Body)
	}

	for name, tc := range map[string]struct{ email, password string }{
		"wrong password": {"ann@example.com", "wrong-password"},
		"unknown email":  {"nobody@example.com", "correct-horse"},
	} {
		if r := s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": tc.email, "password": tc.password}); r.Status != 401 || r.errCode() != "unauthenticated" {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}

	forged := authn.New(strings.Repeat("f", 40), time.Hour, time.Now)
	ftok, _, _ := forged.Issue(authn.Claims{UserID: uuid.MustParse(u.ID), Role: "admin"})
	expired := authn.New(secret, time.Hour, func() time.Time { return time.Now().Add(-2 * time.Hour) })
	etok, _, _ := expired.Issue(authn.Claims{UserID: uuid.MustParse(u.ID), Role: "customer"})
	for name, tok := range map[string]string{"missing": "", "malformed": "abc.def", "forged": ftok, "expired": etok} {
		if r := s.do("GET", "/api/v1/me", tok, nil); r.Status != 401 || r.errCode() != "unauthenticated" {
			t.Errorf("%s token: %d %s", name, r.Status, r.Body)
		}
	}
}

func TestLoginIsRateLimited(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	s.customer()
	var last response
	for i := 0; i < 8; i++ {
		last = s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "victim@example.com", "password": "guess" + strings.Repeat("x", i)})
		if last.Status == 429 {
			break
		}
	}
	if last.Status != 429 || last.errCode() != "rate_limited" || last.Header.Get("Retry-After") == "" {
		t.Fatalf("repeated failed logins: %d %s, Retry-After %q", last.Status, last.Body, last.Header.Get("Retry-After"))
	}
	// Another email from the same address still gets through until the
	// address itself is over its limit.
	if r := s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "shopper1@example.com", "password": "password123"}); r.Status != 200 {
		t.Errorf("another email: %d %s", r.Status, r.Body)
	}
}
