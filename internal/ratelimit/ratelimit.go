// Package ratelimit keeps one token bucket per key (an address, an email),
// built on golang.org/x/time/rate, and forgets keys that went quiet.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Keyed limits each key to a rate with a burst.
type Keyed struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	calls   int
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// New returns a limiter that allows burst events at once and then one
// every interval, per key. now is the clock.
func New(interval time.Duration, burst int, now func() time.Time) *Keyed {
	return &Keyed{limit: rate.Every(interval), burst: burst, now: now, buckets: map[string]*bucket{}}
}

// Allow takes one event for key. When the key is over its limit it returns
// false and how long until the next event would be allowed.
func (k *Keyed) Allow(key string) (bool, time.Duration) {
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	if k.calls%1024 == 0 {
		k.sweep(now)
	}
	b, ok := k.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep forgets keys whose bucket has been full for a while.
func (k *Keyed) sweep(now time.Time) {
	idle := time.Duration(float64(k.burst)/float64(k.limit)*float64(time.Second)) + time.Minute
	for key, b := range k.buckets {
		if now.Sub(b.seen) > idle {
			delete(k.buckets, key)
		}
	}
}
