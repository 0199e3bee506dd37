package authn

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

func TestTokens(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tokens := New(strings.Repeat("s", 32), time.Hour, clock)
	id := uuid.New()
	tok, exp, err := tokens.Issue(Claims{UserID: id, Role: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(time.Hour)) {
		t.Errorf("expiry %v", exp)
	}
	c, err := tokens.Verify(tok)
	if err != nil || c.UserID != id || c.Role != "admin" {
		t.Fatalf("verify: %+v, %v", c, err)
	}

	forged := New(strings.Repeat("x", 32), time.Hour, clock)
	if _, err := forged.Verify(tok); err == nil {
		t.Error("a token signed with another secret was accepted")
	}
	now = now.Add(2 * time.Hour)
	if _, err := tokens.Verify(tok); err == nil {
		t.Error("an expired token was accepted")
	}
	now = now.Add(-2 * time.Hour)
	for name, bad := range map[string]string{
		"empty":     "",
		"garbage":   "not.a.token",
		"alg none":  unsigned(t, id),
		"no expiry": noExpiry(t, id),
	} {
		if _, err := tokens.Verify(bad); err == nil {
			t.Errorf("%s token accepted", name)
		}
	}
}

func unsigned(t *testing.T, id uuid.UUID) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": id.String(), "role": "admin", "exp": time.Now().Add(time.Hour).Unix()})
	s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func noExpiry(t *testing.T, id uuid.UUID) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": id.String(), "role": "admin"})
	s, err := tok.SignedString([]byte(strings.Repeat("s", 32)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A token that Verify remembers is judged as a fresh one would be: valid
// up to its expiry and not a second after, and a token that differs from
// it in any byte is checked in full.
func TestRememberedTokensAreJudgedAsFreshOnes(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tokens := New(strings.Repeat("s", 32), time.Hour, clock)
	id := uuid.New()
	tok, exp, err := tokens.Issue(Claims{UserID: id, Role: "customer"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second from memory
		if c, err := tokens.Verify(tok); err != nil || c.UserID != id || c.Role != "customer" {
			t.Fatalf("verify: %+v, %v", c, err)
		}
	}
	// The signature's last character carries padding bits that decode to
	// the same bytes; any other change is a forgery.
	tampered := tok[:len(tok)-5] + string(rune('A'+(tok[len(tok)-5]-'A'+1)%26)) + tok[len(tok)-4:]
	if _, err := tokens.Verify(tampered); err == nil {
		t.Error("a token that differs from a remembered one was accepted")
	}
	fresh := New(strings.Repeat("s", 32), time.Hour, clock)
	for _, at := range []time.Time{exp, exp.Add(time.Second)} {
		now = at
		_, remembered := tokens.Verify(tok)
		_, checked := fresh.Verify(tok)
		if (remembered == nil) != (checked == nil) {
			t.Errorf("at %v: remembered token %v, fresh check %v", at.Sub(exp), remembered, checked)
		}
	}
	if _, err := tokens.Verify(tok); err == nil {
		t.Error("an expired remembered token was accepted")
	}
}
