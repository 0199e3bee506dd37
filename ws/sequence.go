package ws

import (
	"sync"

	"github.com/google/uuid"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// sequencer admits each order's events once and in seq order, for the
// whole hub: an at-least-once relay may publish an event again, or an
// older one after a newer. Deciding once per event, rather than in each
// connection, lets a connection that follows a scope ("all", "mine")
// keep no memory per order: thousands of dashboards would otherwise each
// remember every order they saw.
type sequencer struct {
	mu sync.Mutex
	// last is the highest seq admitted per open order.
	last map[uuid.UUID]int
	// finished remembers the final seq of recently finished orders, so
	// that last holds open orders only.
	finished finishedRing
}

// admit reports whether e is new: after every event of its order admitted
// so far. An event admitted is marked as sent.
func (s *sequencer) admit(e order.OrderEvent) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = map[uuid.UUID]int{}
	}
	if e.Seq <= s.last[e.OrderID] || e.Seq <= s.finished.seq[e.OrderID] {
		return false
	}
	if e.Status.Terminal() {
		delete(s.last, e.OrderID)
		s.finished.add(e.OrderID, e.Seq)
	} else {
		s.last[e.OrderID] = e.Seq
	}
	return true
}

// tracked is how many orders the sequencer remembers, for tests.
func (s *sequencer) tracked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.last) + len(s.finished.seq)
}

// finishedRing is a bounded memory of finished orders' final seqs: enough to
// drop the late duplicates an at-least-once relay may send after the end.
type finishedRing struct {
	seq  map[uuid.UUID]int
	ring []uuid.UUID
	next int
}

// finishedMemory is how many finished orders the hub remembers: one memory
// for every connection, so it must outlast any relay's redelivery after a
// failover even when thousands of orders end a minute (at 20 orders/s,
// 131,072 orders are close to two hours; some 10 MB).
const finishedMemory = 1 << 17

func (f *finishedRing) add(id uuid.UUID, seq int) {
	if f.seq == nil {
		f.seq = make(map[uuid.UUID]int, finishedMemory)
		f.ring = make([]uuid.UUID, finishedMemory)
	}
	if old := f.ring[f.next]; old != uuid.Nil {
		delete(f.seq, old)
	}
	f.ring[f.next] = id
	f.seq[id] = seq
	f.next = (f.next + 1) % finishedMemory
}
