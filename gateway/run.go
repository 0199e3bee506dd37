package gateway

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/serve"
)

// Run serves the gateway on its listener until ctx ends, then lets the
// requests in flight finish.
func (s *Server) Run(ctx context.Context) error {
	if s.listener == nil {
		return errors.New("gateway: no listener to serve on (Deps.Listener)")
	}
	s.log.Info("gateway listening", zap.String("addr", s.listener.Addr().String()))
	return serve.Run(ctx, serve.NewServer(s.Handler()), s.listener)
}
