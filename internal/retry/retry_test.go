package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelaysGrowWithJitterUpToTheCap(t *testing.T) {
	b := NewBackoff(100*time.Millisecond, time.Second)
	nominal := 100 * time.Millisecond
	seen := map[time.Duration]bool{}
	for i := 0; i < 12; i++ {
		d := b.Next()
		lo, hi := time.Duration(float64(nominal)*(1-Jitter)), time.Duration(float64(nominal)*(1+Jitter))
		if d < lo || d > hi {
			t.Fatalf("delay %d is %s, want within %s..%s", i, d, lo, hi)
		}
		seen[d] = true
		nominal = min(nominal*2, time.Second)
	}
	if len(seen) < 6 {
		t.Fatalf("only %d distinct delays in 12: no jitter?", len(seen))
	}
	b.Reset()
	if d := b.Next(); d > 120*time.Millisecond {
		t.Fatalf("after Reset the delay is %s, want about 100ms", d)
	}
}

func TestDoRetriesUntilSuccessAndStopsWithItsContext(t *testing.T) {
	calls := 0
	var told []error
	err := Do(context.Background(), time.Millisecond, 2*time.Millisecond, func(context.Context) error {
		calls++
		if calls < 4 {
			return errors.New("not yet")
		}
		return nil
	}, func(err error, _ time.Duration) { told = append(told, err) })
	if err != nil || calls != 4 || len(told) != 3 {
		t.Fatalf("Do = %v after %d calls, %d failures told; want nil after 4 calls, 3 told", err, calls, len(told))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	boom := errors.New("down")
	if err := Do(ctx, time.Millisecond, 5*time.Millisecond, func(context.Context) error { return boom }, nil); !errors.Is(err, boom) {
		t.Fatalf("Do after its context ended = %v, want the last error %v", err, boom)
	}
}
