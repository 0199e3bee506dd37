// Package readcache is a read-through cache of values that live in a
// database and change there, kept fresh by a change feed rather than by
// expiry: the feed tells the cache which keys changed (Invalidate), and
// vouches, poll after poll, for how recent its news is (Confirm). The cache
// serves a value only while that news is at most MaxLag old, so that what
// it serves is never staler than MaxLag, whatever happens to the feed; the
// rest of the time every Get goes to the loader.
//
// A value loaded before a change and stored after the change was reported
// would stay stale until the next change: each load is registered before it
// starts, an invalidation of its key marks it, and a marked load's value is
// handed to its callers but not stored. Concurrent misses of one key make
// one load (singleflight), and a Get that starts after an invalidation
// never joins a load that started before it.
package readcache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// Options tune a Cache. Zero values take the defaults.
type Options struct {
	// Size bounds the number of entries; the least recently used go
	// first (default 10,000).
	Size int
	// MaxLag is how old the feed's last confirmation may be for the cache
	// to serve: the bound on the staleness of what it serves (default
	// 75 ms).
	MaxLag time.Duration
	// LoadTimeout bounds one load, which runs apart from the request that
	// started it, since other requests may be waiting for it (default 10 s).
	LoadTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Cache is a cache of values of type V by string key. Its methods are safe
// for concurrent use. Build it with New.
type Cache[V any] struct {
	load    func(ctx context.Context, key string) (V, error)
	opts    Options
	entries *lru.Cache[string, V]
	group   singleflight.Group

	// confirmed is the time up to which the feed has reported every
	// change, in nanoseconds since base (plus one, so that 0 says the feed
	// has vouched for nothing since the last Reset). Durations from base
	// use the monotonic clock: a step of the wall clock cannot make a late
	// feed look current.
	confirmed atomic.Int64
	base      time.Time

	mu sync.Mutex
	// loads are the loads in progress by key, each until it ends or its
	// key is invalidated.
	loads map[string][]*loading

	hits, misses, bypasses atomic.Uint64
}

// loading is one load in progress.
type loading struct {
	// stale is set, under Cache.mu, when the key changed after the load
	// began: its value may predate the change.
	stale bool
}

// New returns a cache that loads missing values with load, and serves
// nothing until the feed's first Confirm.
func New[V any](load func(ctx context.Context, key string) (V, error), opts Options) *Cache[V] {
	if opts.Size <= 0 {
		opts.Size = 10_000
	}
	if opts.MaxLag <= 0 {
		opts.MaxLag = 75 * time.Millisecond
	}
	if opts.LoadTimeout <= 0 {
		opts.LoadTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	entries, err := lru.New[string, V](opts.Size)
	if err != nil {
		panic(err) // only for a size below 1, which was replaced above
	}
	return &Cache[V]{load: load, opts: opts, entries: entries, loads: map[string][]*loading{}, base: opts.Now()}
}

// Get returns the value of key: from the cache while the feed is current,
// else from the loader. Errors are never cached.
func (c *Cache[V]) Get(ctx context.Context, key string) (V, error) {
	if !c.Serving() {
		c.bypasses.Add(1)
		return c.load(ctx, key)
	}
	if v, ok := c.entries.Get(key); ok {
		c.hits.Add(1)
		return v, nil
	}
	c.misses.Add(1)
	ch := c.group.DoChan(key, func() (any, error) { return c.fill(key) })
	select {
	case r := <-ch:
		if r.Err != nil {
			var zero V
			return zero, r.Err
		}
		return r.Val.(V), nil
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// fill loads key and stores its value unless the key changed meanwhile.
func (c *Cache[V]) fill(key string) (V, error) {
	l := &loading{}
	c.mu.Lock()
	c.loads[key] = append(c.loads[key], l)
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), c.opts.LoadTimeout)
	defer cancel()
	v, err := c.safeLoad(ctx, key)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.forget(key, l)
	if err == nil && !l.stale {
		c.entries.Add(key, v)
	}
	return v, err
}

// safeLoad is load with a panic turned into an error: fill runs on
// singleflight's goroutine, where a panic would end the process rather than
// the one request (gin's recovery is on the request's goroutine).
func (c *Cache[V]) safeLoad(ctx context.Context, key string) (v V, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("load %s: panic: %v", key, r)
		}
	}()
	return c.load(ctx, key)
}

// forget removes l from the loads of key. It holds c.mu.
func (c *Cache[V]) forget(key string, l *loading) {
	ls := c.loads[key]
	for i := range ls {
		if ls[i] == l {
			ls = append(ls[:i], ls[i+1:]...)
			break
		}
	}
	if len(ls) == 0 {
		delete(c.loads, key)
	} else {
		c.loads[key] = ls
	}
}

// Invalidate drops the values of keys, and keeps the loads of keys in
// progress from storing what they read: they may have read it before the
// change.
func (c *Cache[V]) Invalidate(keys ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		c.entries.Remove(k)
		for _, l := range c.loads[k] {
			l.stale = true
		}
		delete(c.loads, k)
		// A Get from now on starts a load of its own.
		c.group.Forget(k)
	}
}

// Reset drops every value, as Invalidate of every key would, and stops
// serving until the next Confirm: for a feed that may have missed changes.
func (c *Cache[V]) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.confirmed.Store(0)
	c.entries.Purge()
	for k, ls := range c.loads {
		for _, l := range ls {
			l.stale = true
		}
		c.group.Forget(k)
	}
	clear(c.loads)
}

// Confirm records that every change committed before asOf has been passed
// to Invalidate. The cache serves until asOf is MaxLag old.
func (c *Cache[V]) Confirm(asOf time.Time) {
	n := int64(asOf.Sub(c.base)) + 1
	for {
		old := c.confirmed.Load()
		if n <= old || c.confirmed.CompareAndSwap(old, n) {
			return
		}
	}
}

// Serving reports whether Get may answer from the cache now.
func (c *Cache[V]) Serving() bool {
	at := c.confirmed.Load()
	return at != 0 && int64(c.opts.Now().Sub(c.base))+1-at <= int64(c.opts.MaxLag)
}

// Lag is how old the feed's last confirmation is; false if there was none
// since the last Reset.
func (c *Cache[V]) Lag() (time.Duration, bool) {
	at := c.confirmed.Load()
	if at == 0 {
		return 0, false
	}
	return time.Duration(int64(c.opts.Now().Sub(c.base)) + 1 - at), true
}

// Stats counts the Gets since the cache was built.
type Stats struct {
	// Hits were answered from the cache, Misses loaded (one load for the
	// misses of a key at one time), Bypasses loaded because the feed was
	// not current.
	Hits, Misses, Bypasses uint64
}

// Stats returns the counts of Gets so far.
func (c *Cache[V]) Stats() Stats {
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Bypasses: c.bypasses.Load()}
}
