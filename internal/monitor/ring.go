package monitor

import "time"

// key names one series of one chart.
type key struct{ chart, series string }

// ring keeps, for each of the last n steps, the values sampled at that
// step by series. A slot is reused once it is n steps old, so the ring
// never holds more than the window.
type ring struct {
	step  int64 // seconds
	slots []slot
}

type slot struct {
	// at is the time of the sample in Unix seconds, a multiple of step;
	// 0 while the slot is empty.
	at     int64
	values map[key]float64
}

// newRing returns an empty ring of n slots of step each.
func newRing(step time.Duration, n int) *ring {
	return &ring{step: int64(step / time.Second), slots: make([]slot, n)}
}

func (r *ring) index(at int64) int {
	n := int64(len(r.slots))
	return int(((at/r.step)%n + n) % n)
}

// put records v for k at at, a multiple of the step; it forgets the
// values of the slot's previous step.
func (r *ring) put(at int64, k key, v float64) {
	s := &r.slots[r.index(at)]
	if s.at != at {
		*s = slot{at: at, values: map[key]float64{}}
	}
	s.values[k] = v
}

// get returns the value of k sampled at at, if the ring still holds one.
func (r *ring) get(at int64, k key) (float64, bool) {
	s := r.slots[r.index(at)]
	if s.at != at || s.values == nil {
		return 0, false
	}
	v, ok := s.values[k]
	return v, ok
}
