// Package retry is ordersaga's one backoff: exponential, capped, with
// jitter, so that many processes that lost the same dependency at the same
// moment do not all come back to it at the same moment. It wraps
// github.com/cenkalti/backoff rather than growing delays by hand.
package retry

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Jitter is how far each delay may stray from its nominal value, either way
// (0.2: ±20%).
const Jitter = 0.2

// Backoff hands out growing delays: initial, then doubling up to max, each
// with Jitter. It is not safe for concurrent use; each loop has its own.
type Backoff struct {
	b *backoff.ExponentialBackOff
}

// NewBackoff returns a Backoff from initial up to max.
func NewBackoff(initial, max time.Duration) *Backoff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = initial
	b.MaxInterval = max
	b.Multiplier = 2
	b.RandomizationFactor = Jitter
	b.Reset()
	return &Backoff{b: b}
}

// Next returns the next delay.
func (b *Backoff) Next() time.Duration { return b.b.NextBackOff() }

// Reset starts again from the initial delay, after a success.
func (b *Backoff) Reset() { b.b.Reset() }

// Wait sleeps for the next delay, or until ctx ends, and returns ctx's error
// in that case.
func (b *Backoff) Wait(ctx context.Context) error {
	return Sleep(ctx, b.Next())
}

// Sleep waits d or until ctx ends, and returns ctx's error in that case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Do calls op until it returns nil or ctx ends, waiting with a Backoff from
// initial to max between tries. failed, if not nil, is told of each error
// and the delay before the next try, to log it. When ctx ends, Do returns
// the last error of op (or ctx's, if op never ran).
func Do(ctx context.Context, initial, max time.Duration, op func(ctx context.Context) error, failed func(err error, next time.Duration)) error {
	b := NewBackoff(initial, max)
	for {
		err := op(ctx)
		if err == nil {
			return nil
		}
		next := b.Next()
		if failed != nil {
			failed(err, next)
		}
		if werr := Sleep(ctx, next); werr != nil {
			return err
		}
	}
}
