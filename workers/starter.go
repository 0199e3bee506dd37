package workers

import (
	"context"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/orderstore"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// Starter runs the orders the gateway accepted but could not start a
// workflow for (Temporal was unreachable, or the gateway died between the
// two steps). Starting is idempotent by workflow id, so a starter racing
// the gateway, or two starters, start each order once.
type Starter struct {
	store    *orderstore.Store
	client   client.Client
	interval time.Duration
	grace    time.Duration
	timeouts order.Timeouts
	log      *zap.Logger
}

// NewStarter returns a starter configured by cfg.
func NewStarter(store *orderstore.Store, c client.Client, cfg config.Config, log *zap.Logger) *Starter {
	return &Starter{store: store, client: c, interval: cfg.StarterInterval, grace: cfg.StarterGrace, timeouts: cfg.OrderTimeouts(), log: log}
}

// Run starts orphaned orders every interval until ctx ends.
func (s *Starter) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if _, err := s.Once(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("starter pass failed; will retry", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Once starts every orphaned order it finds and returns how many it started.
func (s *Starter) Once(ctx context.Context) (int, error) {
	started := 0
	for {
		inputs, err := s.store.Unstarted(ctx, s.grace, 100, s.timeouts)
		if err != nil {
			return started, err
		}
		for _, in := range inputs {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := order.Start(sctx, s.client, in)
			cancel()
			if err != nil {
				return started, err
			}
			if err := s.store.MarkStarted(ctx, in.OrderID); err != nil {
				return started, err
			}
			s.log.Info("started the workflow of an orphaned order", zap.String("order_id", in.OrderID))
			started++
		}
		if len(inputs) < 100 {
			return started, nil
		}
	}
}
