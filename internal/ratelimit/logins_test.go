package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

// clock is a settable clock for the limits.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// fail makes one failed attempt, or returns why it was refused.
func fail(l *Logins, addr, account string) *Refusal {
	a, r := l.Begin(addr, account)
	if r != nil {
		return r
	}
	a.Failed()
	return nil
}

func TestLoginsCountFailuresNotSignIns(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	l := NewLogins(c.now)
	for i := 0; i < 60; i++ {
		a, r := l.Begin("192.0.2.1", fmt.Sprintf("shopper%d@example.com", i))
		if r != nil {
			t.Fatalf("sign-in %d from one office address refused: %+v", i+1, r)
		}
		a.Succeeded()
	}
	// Failures from one address on many accounts are limited.
	var refused *Refusal
	for i := 0; i < 40 && refused == nil; i++ {
		refused = fail(l, "192.0.2.2", fmt.Sprintf("guess%d@example.com", i))
	}
	if refused == nil || refused.Limit != "address_failures" || refused.RetryAfter <= 0 || refused.RetryAfter > 6*time.Second {
		t.Fatalf("40 failures on 40 accounts from one address: %+v", refused)
	}
	// An abandoned attempt (the store was down) counts nothing.
	for i := 0; i < 30; i++ {
		a, r := l.Begin("192.0.2.3", "someone@example.com")
		if r != nil {
			t.Fatalf("attempt %d after abandoned ones refused: %+v", i+1, r)
		}
		a.Abandoned()
	}
}

func TestLoginsAttemptCeiling(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	l := NewLogins(c.now)
	var refused *Refusal
	for i := 0; i < 101 && refused == nil; i++ {
		var a *Attempt
		if a, refused = l.Begin("192.0.2.1", fmt.Sprintf("s%d@example.com", i)); a != nil {
			a.Succeeded()
		}
	}
	if refused == nil || refused.Limit != "attempts" {
		t.Fatalf("101 attempts within a moment: %+v", refused)
	}
}

func TestLoginsSoftLock(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	l := NewLogins(c.now)
	const victim = "victim@example.com"
	// Attackers on eight addresses fail on the victim's account until it
	// locks: the first four addresses use up their pair budget (5 each)
	// and the account's (20).
	for i := 0; i < 8; i++ {
		addr := fmt.Sprintf("198.51.100.%d", i)
		for j := 0; j < 5; j++ {
			fail(l, addr, victim)
		}
	}
	// An attacking address that has failed on the account is refused even
	// though its own pair budget is not spent.
	r := fail(l, "198.51.100.7", victim)
	if r == nil || r.Limit != "account_locked" {
		t.Fatalf("attacker after the lock: %+v", r)
	}
	if r.RetryAfter <= 0 || r.RetryAfter > time.Minute {
		t.Errorf("Retry-After of a locked pair with one failure: %v", r.RetryAfter)
	}
	// The owner, from an address of their own, is not; even while the
	// attackers keep failing.
	c.advance(10 * time.Second)
	a, r := l.Begin("203.0.113.9", "Victim@Example.com")
	if r != nil {
		t.Fatalf("owner from a fresh address refused: %+v", r)
	}
	if fail(l, "198.51.100.7", victim) == nil {
		t.Fatal("an attacker got through while the owner's attempt was checked")
	}
	// They mistype: now their address is one that failed, and it waits;
	// but only as long as their own one failure takes to decay.
	a.Failed()
	if r = fail(l, "203.0.113.9", victim); r == nil || r.Limit != "account_locked" || r.RetryAfter <= 0 || r.RetryAfter > time.Minute {
		t.Fatalf("owner after a typo while locked: %+v", r)
	}
	c.advance(r.RetryAfter)
	a, r = l.Begin("203.0.113.9", victim)
	if r != nil {
		t.Fatalf("owner after the Retry-After: %+v", r)
	}
	a.Succeeded()
	// The sign-in reset the account's failures: the lock is gone.
	if a, r = l.Begin("198.51.100.6", victim); r != nil {
		t.Fatalf("after the owner's sign-in: %+v", r)
	}
	a.Failed()
	// Without the owner, the lock lifts by itself as failures decay.
	l = NewLogins(c.now)
	for i := 0; i < 4; i++ {
		for j := 0; j < 5; j++ {
			fail(l, fmt.Sprintf("198.51.100.%d", i), victim)
		}
	}
	if r = fail(l, "198.51.100.0", victim); r == nil {
		t.Fatal("no lock after 20 failures")
	}
	c.advance(5 * time.Minute)
	if _, r = l.Begin("198.51.100.0", victim); r != nil {
		t.Errorf("still locked 5 minutes later: %+v", r)
	}
}

func TestLoginsAccountKeyFoldsCase(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	l := NewLogins(c.now)
	for i := 0; i < 5; i++ {
		fail(l, "192.0.2.1", fmt.Sprintf(" Victim@EXAMPLE.com%s", []string{"", " "}[i%2]))
	}
	if r := fail(l, "192.0.2.1", "victim@example.com"); r == nil || r.Limit != "account_address_failures" {
		t.Errorf("case and spaces make another account: %+v", r)
	}
}

// Guesses sent at once, before any has failed, are held against the
// limits: they cannot all slip under them.
func TestLoginsCountConcurrentAttempts(t *testing.T) {
	c := &clock{t: time.Unix(0, 0)}
	l := NewLogins(c.now)
	var held []*Attempt
	for i := 0; i < 50; i++ {
		if a, r := l.Begin("192.0.2.1", "victim@example.com"); r == nil {
			held = append(held, a)
		}
	}
	if len(held) != 5 {
		t.Fatalf("%d concurrent guesses on one account from one address let through, want 5", len(held))
	}
	// When they turn out to be sign-ins, nothing was counted.
	for _, a := range held {
		a.Succeeded()
	}
	for i := 0; i < 5; i++ {
		if _, r := l.Begin("192.0.2.1", "victim@example.com"); r != nil {
			t.Fatalf("attempt %d after the held ones succeeded: %+v", i+1, r)
		}
	}
}
