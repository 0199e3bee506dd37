// Package temporalclient dials the Temporal frontend the way every
// ordersaga service does: with the project's logger, waiting for a server
// that is still starting.
package temporalclient

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/logging"
)

// Dial connects to addr and namespace, retrying with backoff until the
// server answers or ctx ends.
func Dial(ctx context.Context, addr, namespace string, log *zap.Logger) (client.Client, error) {
	delay := 200 * time.Millisecond
	for {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := client.DialContext(dctx, client.Options{HostPort: addr, Namespace: namespace, Logger: logging.Temporal(log)})
		cancel()
		if err == nil {
			return c, nil
		}
		log.Warn("temporal not reachable yet", zap.String("address", addr), zap.Error(err))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dial temporal %s: %w", addr, err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}
