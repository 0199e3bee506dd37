package gateway

import (
	"context"
	"errors"
	"sync"

	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/serve"
)

// Run serves the gateway on its listener until ctx ends, then lets the
// requests in flight finish. The monitoring samples its figures (see
// internal/monitor), and the catalogue's change feed keeps the product
// cache fresh (products.go), for as long as the gateway serves.
func (s *Server) Run(ctx context.Context) error {
	if s.listener == nil {
		return errors.New("gateway: no listener to serve on (Deps.Listener)")
	}
	ctx, cancel := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	defer sampling.Wait()
	defer cancel()
	sampling.Go(func() { _ = s.monitor.Run(ctx) })
	sampling.Go(func() { _ = s.changes.Run(ctx, s.products) })
	s.log.Info("gateway listening", zap.String("addr", s.listener.Addr().String()))
	return serve.Run(ctx, serve.NewServer(s.Handler()), s.listener)
}
