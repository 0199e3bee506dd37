package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/ordersaga/ordersaga/internal/apperr"
)

// CursorKey derives the cursor-signing key from the service secret, so one
// secret never signs two kinds of thing with the same key.
func CursorKey(secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("ordersaga pagination cursors v1"))
	return m.Sum(nil)
}

// cursors seals page positions into opaque strings, so that a client can
// only hand back a cursor the server issued.
type cursors struct {
	key []byte
}

func (c cursors) seal(kind string, v any) string {
	payload, _ := json.Marshal(v)
	body := base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(c.mac(kind, body))
}

func (c cursors) open(kind, s string, into any) error {
	bad := apperr.Invalid("cursor", "cursor is not one this server issued")
	body, sig, ok := strings.Cut(s, ".")
	if !ok {
		return bad
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, c.mac(kind, body)) {
		return bad
	}
	payload, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || json.Unmarshal(payload, into) != nil {
		return bad
	}
	return nil
}

func (c cursors) mac(kind, body string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(kind + ":" + body))
	return m.Sum(nil)[:16]
}
