// Package authn issues and checks the gateway's and the websocket hub's
// bearer tokens: JWTs signed with HS256, carrying the user id and role.
package authn

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// Claims are what a token says about its bearer.
type Claims struct {
	UserID uuid.UUID
	Role   order.Role
}

// Tokens signs and verifies tokens with one secret.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
	// verified remembers the tokens that passed Verify, with what they
	// say, until they expire: a client sends the same token with every
	// request, and checking it again (decoding, parsing JSON, hashing) is
	// a good part of a small request's cost. Only a token that passed
	// every check, compared whole, is found there.
	verified *lru.Cache[string, verified]
}

// verified is what a token that passed Verify says, and when it expires.
type verified struct {
	claims Claims
	exp    time.Time
}

// verifiedTokens bounds how many verified tokens Tokens remembers.
const verifiedTokens = 10_000

// New returns Tokens that sign with secret and last ttl. now is the clock.
func New(secret string, ttl time.Duration, now func() time.Time) *Tokens {
	verified, err := lru.New[string, verified](verifiedTokens)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &Tokens{secret: []byte(secret), ttl: ttl, now: now, verified: verified}
}

type claims struct {
	Role order.Role `json:"role"`
	jwt.RegisteredClaims
}

// Issue returns a token for c and its expiry.
func (t *Tokens) Issue(c Claims) (string, time.Time, error) {
	now := t.now().UTC()
	exp := now.Add(t.ttl).Truncate(time.Second)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{
		Role: c.Role,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.UserID.String(),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
	})
	s, err := tok.SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return s, exp, nil
}

// ErrInvalid says a token is missing, malformed, expired or forged.
var ErrInvalid = errors.New("invalid token")

// Verify checks a token's signature, algorithm and expiry and returns its claims.
func (t *Tokens) Verify(token string) (Claims, error) {
	if v, ok := t.verified.Get(token); ok {
		// Expired at exp, as the full check below judges it.
		if !t.now().Before(v.exp) {
			t.verified.Remove(token)
			return Claims{}, ErrInvalid
		}
		return v.claims, nil
	}
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return Claims{}, ErrInvalid
	}
	id, err := uuid.Parse(c.Subject)
	if err != nil || !c.Role.Valid() {
		return Claims{}, ErrInvalid
	}
	out := Claims{UserID: id, Role: c.Role}
	t.verified.Add(token, verified{claims: out, exp: c.ExpiresAt.Time})
	return out, nil
}
