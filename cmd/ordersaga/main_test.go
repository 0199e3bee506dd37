package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
)

// TestWeakJWTSecretStopsStartup: every command but dev refuses, before it
// starts anything, the JWT secrets that the compose file and the k8s
// manifests used to ship, and a low-entropy one.
func TestWeakJWTSecretStopsStartup(t *testing.T) {
	for _, secret := range []string{
		"change-me-change-me-change-me-change-me",
		"CHANGE-ME-TO-32-OR-MORE-RANDOM-CHARACTERS",
		strings.Repeat("x", 40),
	} {
		for _, cmd := range []string{"gateway", "ws", "worker"} {
			t.Run(cmd, func(t *testing.T) {
				t.Setenv("JWT_SECRET", secret)
				err := run(context.Background(), cmd, []string{"order"})
				if err == nil || !strings.Contains(err.Error(), "JWT_SECRET") {
					t.Fatalf("%s with JWT_SECRET=%q: %v, want a refusal naming JWT_SECRET", cmd, secret, err)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows the secret: %v", err)
				}
			})
		}
	}

	// A strong secret passes the check: the command goes on, here to a
	// history file that does not exist.
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	t.Setenv("JWT_SECRET", hex.EncodeToString(b))
	err := run(context.Background(), "replay", []string{filepath.Join(t.TempDir(), "missing.json")})
	if err == nil || strings.Contains(err.Error(), "JWT_SECRET") {
		t.Errorf("replay with a strong secret: %v, want the missing file's error", err)
	}
}
