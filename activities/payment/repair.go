package payment

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// CaptureState tells `ordersaga repair` what it must know before it voids
// an order's payment: whether the payment was captured (it then needs a
// refund, not a void), and, while a capture call may still take effect at
// the provider, until when (zero otherwise). It changes nothing.
func (a *Activities) CaptureState(ctx context.Context, orderID uuid.UUID) (captured bool, inFlightUntil time.Time, err error) {
	rec, err := a.Lookup(ctx, orderID)
	if err != nil {
		return false, time.Time{}, err
	}
	return rec.Status == "CAPTURED", rec.CaptureInFlightUntil, nil
}
