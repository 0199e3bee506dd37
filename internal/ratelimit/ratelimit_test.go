package ratelimit

import (
	"testing"
	"time"
)

func TestKeyed(t *testing.T) {
	now := time.Unix(0, 0)
	k := New(10*time.Second, 3, func() time.Time { return now })
	for i := 0; i < 3; i++ {
		if ok, _ := k.Allow("a"); !ok {
			t.Fatalf("event %d within the burst refused", i+1)
		}
	}
	ok, wait := k.Allow("a")
	if ok || wait <= 0 || wait > 10*time.Second {
		t.Fatalf("fourth event: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := k.Allow("b"); !ok {
		t.Error("another key is limited by a's events")
	}
	now = now.Add(10 * time.Second)
	if ok, _ := k.Allow("a"); !ok {
		t.Error("a is still refused after the interval")
	}
}
