package config

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJWTSecretOutsideDev: the secrets that docker-compose.yml and
// deploy/k8s shipped, placeholder words and guessable strings are refused
// with an error naming JWT_SECRET; what `openssl rand` makes is accepted.
func TestJWTSecretOutsideDev(t *testing.T) {
	for _, tc := range []struct{ name, secret string }{
		{"compose default", "change-me-change-me-change-me-change-me"},
		{"k8s default", "CHANGE-ME-TO-32-OR-MORE-RANDOM-CHARACTERS"},
		{"k8s default, lower case", "change-me-to-32-or-more-random-characters"},
		{"placeholder word", "please-changeme-" + hex.EncodeToString(random(t, 16))},
		{"a phrase", "our-jwt-secret-for-the-shop-in-production"},
		{"a phrase about the system", "ordersaga-prod-jwt-key-2024-ordersaga"},
		{"one repeated character", strings.Repeat("a", 64)},
		{"two characters in turn", strings.Repeat("ab", 32)},
		{"a run", "abcdefghijklmnopqrstuvwxyz0123456789"},
		{"the hex alphabet twice", "0123456789abcdef0123456789abcdef"},
		{"digits only", "31415926535897932384626433832795"},
		{"16 random bytes as hex", hex.EncodeToString(random(t, 16))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadFrom(map[string]string{"JWT_SECRET": tc.secret})
			if err != nil {
				if !strings.Contains(err.Error(), "JWT_SECRET") {
					t.Fatalf("error %q does not name JWT_SECRET", err)
				}
				return // already refused by Load (too short)
			}
			err = c.CheckSecrets()
			if err == nil {
				t.Fatalf("%q was accepted (estimated %.0f bits)", tc.secret, SecretBits(tc.secret))
			}
			if !strings.HasPrefix(err.Error(), "JWT_SECRET: ") {
				t.Errorf("error %q does not name JWT_SECRET first", err)
			}
			if strings.Contains(err.Error(), tc.secret) {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
	for _, tc := range []struct{ name, secret string }{
		{"openssl rand -hex 32", hex.EncodeToString(random(t, 32))},
		{"openssl rand -base64 32", base64.StdEncoding.EncodeToString(random(t, 32))},
		{"48 random bytes, URL base64", base64.RawURLEncoding.EncodeToString(random(t, 48))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadFrom(map[string]string{"JWT_SECRET": tc.secret})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.CheckSecrets(); err != nil {
				t.Errorf("a strong secret was refused: %v", err)
			}
		})
	}
	// Unset passes here: Require refuses it where a service needs it.
	c, _ := LoadFrom(map[string]string{})
	if err := c.CheckSecrets(); err != nil {
		t.Errorf("no secret: %v", err)
	}
}

// TestRandomSecretsAlwaysPass: the estimate never refuses what the dev
// stack and the fault run generate (32 random bytes as hex).
func TestRandomSecretsAlwaysPass(t *testing.T) {
	for range 2000 {
		s := hex.EncodeToString(random(t, 32))
		if bits := SecretBits(s); bits < MinJWTSecretBits+50 {
			t.Fatalf("%s estimated at %.0f bits", s, bits)
		}
	}
}

func TestCodecKeys(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(random(t, 32))
	if _, err := LoadFrom(map[string]string{"TEMPORAL_CODEC_KEYS": "k2:" + key + ",k1:" + base64.StdEncoding.EncodeToString(random(t, 32))}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"k1", "k1:" + key[:20], "k1:" + key + ",k1:" + key} {
		_, err := LoadFrom(map[string]string{"TEMPORAL_CODEC_KEYS": bad})
		if err == nil || !strings.Contains(err.Error(), "TEMPORAL_CODEC_KEYS") {
			t.Errorf("TEMPORAL_CODEC_KEYS=%q: %v, want an error naming the variable", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), key[:20]) {
			t.Errorf("the error shows the key: %v", err)
		}
	}
}
