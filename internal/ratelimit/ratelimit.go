// Package ratelimit keeps one token bucket per key (an address, an email),
// built on golang.org/x/time/rate, and forgets keys that went quiet, so
// that its memory stays bounded however many keys clients make up.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys bounds how many keys a Keyed remembers.
const DefaultMaxKeys = 100_000

// Keyed limits each key to a rate with a burst.
type Keyed struct {
	limit   rate.Limit
	burst   int
	now     func() time.Time
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*bucket
	calls   int
}

type bucket struct {
	lim *rate.Limiter
	// held counts events that are held (see Hold): they count against the
	// limit without having been taken from lim yet.
	held int
	seen time.Time
}

// New returns a limiter that allows burst events at once and then one
// every interval, per key. now is the clock.
func New(interval time.Duration, burst int, now func() time.Time) *Keyed {
	return &Keyed{limit: rate.Every(interval), burst: burst, now: now, maxKeys: DefaultMaxKeys, buckets: map[string]*bucket{}}
}

// WithMaxKeys sets how many keys k remembers (DefaultMaxKeys unless set)
// and returns k.
func (k *Keyed) WithMaxKeys(n int) *Keyed {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.maxKeys = max(n, 1)
	return k
}

// Allow takes one event for key. When the key is over its limit it returns
// false and how long until the next event would be allowed.
func (k *Keyed) Allow(key string) (bool, time.Duration) {
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.bucket(key, now)
	if wait := k.waitFor(b, now); wait > 0 {
		return false, wait
	}
	b.lim.ReserveN(now, 1)
	return true, 0
}

// Hold is an event that may or may not happen, such as the failure of a
// sign-in whose password is being checked. While held it counts against
// its key's limit, so that concurrent callers cannot all slip under it;
// Keep then takes it for good, Drop gives it up.
type Hold struct {
	// OK says whether the limit allowed the event (and it is held).
	OK bool
	// Wait is, when the event was refused, how long until one would be allowed.
	Wait time.Duration
	// WasFresh says whether the key had no events counted or held against
	// it before this one: its bucket was full.
	WasFresh bool

	k    *Keyed
	b    *bucket
	done bool
}

// Hold holds one event for key if its limit allows, and reports whether
// the key was fresh; both in one step, so that concurrent callers cannot
// all see a fresh key.
func (k *Keyed) Hold(key string) *Hold {
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.bucket(key, now)
	fresh := b.held == 0 && b.lim.TokensAt(now) >= float64(k.burst)
	if wait := k.waitFor(b, now); wait > 0 {
		return &Hold{Wait: wait, WasFresh: fresh, done: true}
	}
	b.held++
	return &Hold{OK: true, WasFresh: fresh, k: k, b: b}
}

// Keep takes the held event: it happened. Only the first Keep or Drop of
// a Hold counts, and neither does anything for a refused one.
func (h *Hold) Keep() {
	if h.done {
		return
	}
	h.done = true
	now := h.k.now()
	h.k.mu.Lock()
	defer h.k.mu.Unlock()
	h.b.held--
	// Taken even if it puts the bucket in debt (several held events kept
	// at once): the debt is paid back in waiting, as x/time/rate does.
	h.b.lim.ReserveN(now, 1)
}

// Drop gives the held event up: it did not happen.
func (h *Hold) Drop() {
	if h.done {
		return
	}
	h.done = true
	h.k.mu.Lock()
	defer h.k.mu.Unlock()
	h.b.held--
}

// waitFor is how long until one more event fits in b beside the held
// ones; 0 if it fits now. k.mu is held.
func (k *Keyed) waitFor(b *bucket, now time.Time) time.Duration {
	missing := 1 + float64(b.held) - b.lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return max(time.Duration(missing/float64(k.limit)*float64(time.Second)), time.Nanosecond)
}

// UntilFresh is how long until key has no events counted against it: its
// bucket has refilled.
func (k *Keyed) UntilFresh(key string) time.Duration {
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	b, ok := k.buckets[key]
	if !ok {
		return 0
	}
	missing := float64(k.burst) - b.lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / float64(k.limit) * float64(time.Second))
}

// Forget drops key's events: its next event finds a full bucket. Events
// held meanwhile stay held.
func (k *Keyed) Forget(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if b, ok := k.buckets[key]; ok {
		b.lim = rate.NewLimiter(k.limit, k.burst)
	}
}

// Len is how many keys k remembers.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}

// bucket returns key's bucket, making it if needed. k.mu is held.
func (k *Keyed) bucket(key string, now time.Time) *bucket {
	k.calls++
	if k.calls%1024 == 0 {
		k.sweep(now)
	}
	b, ok := k.buckets[key]
	if !ok {
		if len(k.buckets) >= k.maxKeys {
			k.sweep(now)
		}
		// Still full: every key is busy, which only a flood of made-up keys
		// does. Forget arbitrary ones (map order is random) rather than
		// grow without bound; the flood would need about maxKeys new keys
		// to hit any one bucket it wants reset.
		for victim, vb := range k.buckets {
			if len(k.buckets) < k.maxKeys {
				break
			}
			if vb.held == 0 {
				delete(k.buckets, victim)
			}
		}
		b = &bucket{lim: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = b
	}
	b.seen = now
	return b
}

// sweep forgets keys whose bucket has been full for a while: forgetting
// them changes nothing, since a new key starts full.
func (k *Keyed) sweep(now time.Time) {
	idle := time.Duration(float64(k.burst)/float64(k.limit)*float64(time.Second)) + time.Minute
	for key, b := range k.buckets {
		if b.held == 0 && now.Sub(b.seen) > idle {
			delete(k.buckets, key)
		}
	}
}

// AddressKey is the key under which a client address is limited. An IPv6
// client usually holds a whole /64 and can pick any address in it, so all
// of a /64 counts as one address; an IPv4 address (also when written as
// IPv4-mapped IPv6) counts alone. Anything that does not parse is its own key.
func AddressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
