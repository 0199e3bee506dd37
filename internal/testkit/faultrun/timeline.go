package faultrun

import (
	"sync"
	"time"
)

// Timeline is the sequence of fault windows: a window begins when its
// fault is injected and lasts until the next one begins, so that it spans
// the fault, the recovery and the pause after it. Orders and events are
// attributed to the window they happened in.
type Timeline struct {
	mu     sync.Mutex
	names  []string
	starts []time.Time
	now    func() time.Time
}

// NewTimeline returns a timeline whose first window, named first, begins now.
func NewTimeline(first string, now func() time.Time) *Timeline {
	return &Timeline{names: []string{first}, starts: []time.Time{now()}, now: now}
}

// Begin starts a new window and returns its index.
func (t *Timeline) Begin(name string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.names = append(t.names, name)
	t.starts = append(t.starts, t.now())
	return len(t.names) - 1
}

// Current returns the index of the window that is running.
func (t *Timeline) Current() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.names) - 1
}

// At returns the index of the window that was running at time at.
func (t *Timeline) At(at time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.starts) - 1; i > 0; i-- {
		if !at.Before(t.starts[i]) {
			return i
		}
	}
	return 0
}

// Names returns the windows' names in order.
func (t *Timeline) Names() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.names...)
}
