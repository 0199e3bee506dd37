// Package authn issues and checks the gateway's and the websocket hub's
// bearer tokens: JWTs signed with HS256, carrying the user id and role.
package authn

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

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
}

// New returns Tokens that sign with secret and last ttl. now is the clock.
func New(secret string, ttl time.Duration, now func() time.Time) *Tokens {
	return &Tokens{secret: []byte(secret), ttl: ttl, now: now}
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
	return Claims{UserID: id, Role: c.Role}, nil
}
