package readcache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// source is a database of one value per key, whose reads can be held
// between reading and returning, as a slow query is.
type source struct {
	mu    sync.Mutex
	value map[string]int
	loads atomic.Int64
	// hold, if set, is received from after a read and before it returns.
	hold chan struct{}
	// read, if set, gets a token once a held read has read.
	read chan struct{}
}

func newSource() *source { return &source{value: map[string]int{}} }

func (s *source) set(k string, v int) {
	s.mu.Lock()
	s.value[k] = v
	s.mu.Unlock()
}

func (s *source) load(ctx context.Context, k string) (int, error) {
	s.loads.Add(1)
	s.mu.Lock()
	v, ok := s.value[k]
	hold, read := s.hold, s.read
	s.mu.Unlock()
	if hold != nil {
		read <- struct{}{}
		<-hold
	}
	if !ok {
		return 0, errors.New("no such key")
	}
	return v, nil
}

// holdReads makes the next reads wait for release after reading.
func (s *source) holdReads() (read <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hold, s.read = make(chan struct{}), make(chan struct{}, 8)
	hold := s.hold
	return s.read, func() {
		s.mu.Lock()
		s.hold, s.read = nil, nil
		s.mu.Unlock()
		close(hold)
	}
}

func get(t *testing.T, c *Cache[int], k string) int {
	t.Helper()
	v, err := c.Get(context.Background(), k)
	if err != nil {
		t.Fatalf("get %s: %v", k, err)
	}
	return v
}

// A value read before a change and returned after the change was reported
// is not stored: the next Get reads again and sees the change. Without the
// check of the loads that an invalidation marks, the old value would stay.
func TestALoadThatRacesAnInvalidationStoresNothing(t *testing.T) {
	src := newSource()
	src.set("A", 1)
	c := New(src.load, Options{MaxLag: time.Hour})
	c.Confirm(time.Now())

	read, release := src.holdReads()
	first := make(chan int)
	go func() { first <- get(t, c, "A") }()
	<-read // the load has read 1

	src.set("A", 2)   // the change commits
	c.Invalidate("A") // and the feed reports it
	release()         // then the load returns what it read
	if v := <-first; v != 1 {
		t.Fatalf("the racing Get returned %d, want the 1 it read", v)
	}
	if v := get(t, c, "A"); v != 2 {
		t.Fatalf("after the invalidation the cache answered %d, want 2", v)
	}
	if n := src.loads.Load(); n != 2 {
		t.Errorf("%d loads, want 2", n)
	}
	// The fresh value is cached now.
	if v := get(t, c, "A"); v != 2 || src.loads.Load() != 2 {
		t.Errorf("answered %d after %d loads, want 2 from the cache", v, src.loads.Load())
	}
}

// A Get that starts after an invalidation does not wait for, nor take the
// value of, a load that started before it.
func TestAGetAfterAnInvalidationDoesNotJoinAnOlderLoad(t *testing.T) {
	src := newSource()
	src.set("A", 1)
	c := New(src.load, Options{MaxLag: time.Hour})
	c.Confirm(time.Now())

	read, release := src.holdReads()
	first := make(chan int)
	go func() { first <- get(t, c, "A") }()
	<-read
	src.mu.Lock()
	src.hold, src.read = nil, nil // later reads return at once
	src.mu.Unlock()

	src.set("A", 2)
	c.Invalidate("A")
	second := make(chan int)
	go func() { second <- get(t, c, "A") }()
	select {
	case v := <-second:
		if v != 2 {
			t.Fatalf("a Get after the invalidation answered %d, want 2", v)
		}
	case <-time.After(5 * time.Second):
		release()
		t.Fatal("a Get after the invalidation waited for the load that began before it")
	}
	release()
	<-first
	if v := get(t, c, "A"); v != 2 {
		t.Fatalf("after both loads the cache answered %d, want 2", v)
	}
}

// Concurrent misses of one key make one load.
func TestConcurrentMissesMakeOneLoad(t *testing.T) {
	src := newSource()
	src.set("A", 7)
	c := New(src.load, Options{MaxLag: time.Hour})
	c.Confirm(time.Now())
	read, release := src.holdReads()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if v := get(t, c, "A"); v != 7 {
				t.Errorf("got %d", v)
			}
		})
	}
	<-read
	time.Sleep(20 * time.Millisecond) // let the others queue behind the load
	release()
	wg.Wait()
	if n := src.loads.Load(); n != 1 {
		t.Errorf("%d loads for 20 concurrent misses, want 1", n)
	}
}

// The cache serves only while the feed's confirmation is at most MaxLag
// old, and not at all before the first one or after a Reset; meanwhile
// every Get reads the source.
func TestServesOnlyWhileTheFeedIsCurrent(t *testing.T) {
	now := time.Unix(1000, 0)
	src := newSource()
	src.set("A", 1)
	c := New(src.load, Options{MaxLag: 50 * time.Millisecond, Now: func() time.Time { return now }})

	get(t, c, "A")
	get(t, c, "A")
	if s := c.Stats(); s.Bypasses != 2 || s.Hits != 0 || src.loads.Load() != 2 {
		t.Fatalf("before any confirmation: %+v after %d loads, want 2 bypasses", s, src.loads.Load())
	}

	c.Confirm(now)
	get(t, c, "A")
	get(t, c, "A")
	if s := c.Stats(); s.Misses != 1 || s.Hits != 1 {
		t.Fatalf("while current: %+v, want 1 miss then 1 hit", s)
	}

	// The feed falls silent: a change it cannot report is read anyway.
	src.set("A", 2)
	now = now.Add(51 * time.Millisecond)
	if v := get(t, c, "A"); v != 2 {
		t.Fatalf("with the feed %v behind, answered %d, want 2 from the source", 51*time.Millisecond, v)
	}
	c.Confirm(now)
	c.Invalidate("A")
	if v := get(t, c, "A"); v != 2 {
		t.Fatalf("answered %d, want 2", v)
	}

	c.Reset()
	src.set("A", 3)
	if v := get(t, c, "A"); v != 3 {
		t.Fatalf("after a reset answered %d, want 3 from the source", v)
	}
	if c.Serving() {
		t.Fatal("serving after a reset, before a confirmation")
	}
	c.Confirm(now)
	if v := get(t, c, "A"); v != 3 {
		t.Fatalf("after a reset and a confirmation answered %d, want 3: the reset dropped the 2", v)
	}
}

// A Reset keeps a load in progress from storing what it read.
func TestAResetDiscardsLoadsInProgress(t *testing.T) {
	src := newSource()
	src.set("A", 1)
	c := New(src.load, Options{MaxLag: time.Hour})
	c.Confirm(time.Now())
	read, release := src.holdReads()
	done := make(chan int)
	go func() { done <- get(t, c, "A") }()
	<-read
	src.set("A", 2)
	c.Reset()
	c.Confirm(time.Now())
	release()
	<-done
	if v := get(t, c, "A"); v != 2 {
		t.Fatalf("answered %d, want 2", v)
	}
}

// Errors are not cached, and a caller that gives up does not fail the
// others.
func TestErrorsAreNotCached(t *testing.T) {
	src := newSource()
	c := New(src.load, Options{MaxLag: time.Hour})
	c.Confirm(time.Now())
	if _, err := c.Get(context.Background(), "A"); err == nil {
		t.Fatal("no error for a missing key")
	}
	src.set("A", 5)
	if v := get(t, c, "A"); v != 5 {
		t.Fatalf("answered %d, want 5", v)
	}

	read, release := src.holdReads()
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error)
	c.Invalidate("A")
	go func() { _, err := c.Get(ctx, "A"); gaveUp <- err }()
	<-read
	waiter := make(chan int)
	go func() { waiter <- get(t, c, "A") }()
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that gave up got %v", err)
	}
	release()
	if v := <-waiter; v != 5 {
		t.Fatalf("the other caller got %d, want 5", v)
	}
}

// The cache holds at most Size entries.
func TestSizeIsBounded(t *testing.T) {
	src := newSource()
	for _, k := range []string{"A", "B", "C"} {
		src.set(k, 1)
	}
	c := New(src.load, Options{Size: 2, MaxLag: time.Hour})
	c.Confirm(time.Now())
	for _, k := range []string{"A", "B", "C", "C", "B", "A"} {
		get(t, c, k)
	}
	// A was evicted by C; C and B were hits; A was loaded again.
	if s := c.Stats(); s.Hits != 2 || s.Misses != 4 {
		t.Errorf("%+v, want 2 hits and 4 misses", s)
	}
}
