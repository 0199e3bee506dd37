package ratelimit

import (
	"strconv"
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

func TestHoldKeepDropAndFreshness(t *testing.T) {
	now := time.Unix(0, 0)
	k := New(10*time.Second, 2, func() time.Time { return now })
	h1 := k.Hold("a")
	if !h1.OK || !h1.WasFresh {
		t.Fatalf("first event: %+v", h1)
	}
	h2 := k.Hold("a")
	if !h2.OK || h2.WasFresh {
		t.Fatalf("second event while the first is held: %+v", h2)
	}
	// Both held: a third does not fit, though nothing is taken yet.
	if h3 := k.Hold("a"); h3.OK || h3.Wait <= 0 {
		t.Fatalf("third event beside two held: %+v", h3)
	}
	if ok, _ := k.Allow("a"); ok {
		t.Fatal("Allow ignores held events")
	}
	// Time passes while they are held (a password being checked); one is
	// dropped, one kept.
	now = now.Add(time.Second)
	h1.Drop()
	h1.Keep() // only the first ending counts
	h2.Keep()
	if got := k.UntilFresh("a"); got != 10*time.Second {
		t.Errorf("UntilFresh after one kept event = %v, want 10s", got)
	}
	if h := k.Hold("a"); !h.OK || h.WasFresh {
		t.Errorf("after one kept and one dropped: %+v", h)
	} else {
		h.Keep()
	}
	if h := k.Hold("a"); h.OK || h.Wait != 10*time.Second {
		t.Errorf("over the limit: %+v", h)
	}
	k.Forget("a")
	if h := k.Hold("a"); !h.OK || !h.WasFresh {
		t.Errorf("after Forget: %+v", h)
	}
	if got := k.UntilFresh("never-seen"); got != 0 {
		t.Errorf("UntilFresh of an unknown key = %v", got)
	}
}

func TestKeyedMemoryIsBounded(t *testing.T) {
	now := time.Unix(0, 0)
	k := New(time.Second, 1, func() time.Time { return now }).WithMaxKeys(100)
	for i := 0; i < 10_000; i++ {
		k.Allow(strconv.Itoa(i))
	}
	if n := k.Len(); n > 100 {
		t.Errorf("%d keys remembered, want at most 100", n)
	}
	// Keys that went quiet are swept once their buckets are full again.
	now = now.Add(2 * time.Minute)
	for i := 0; i < 1024; i++ {
		k.Allow("busy")
	}
	if n := k.Len(); n != 1 {
		t.Errorf("%d keys after the idle ones were swept, want 1", n)
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not an address":       "not an address",
	} {
		if got := AddressKey(in); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", in, got, want)
		}
	}
}
