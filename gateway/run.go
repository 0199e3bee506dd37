package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/internal/accounts"
	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/catalog"
	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/outbox"
	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/internal/temporalclient"
)

// Run serves the gateway on cfg.GatewayAddr until ctx ends, then drains
// in-flight requests. It is `ordersaga gateway`. ready, if set, is called
// with the bound address.
func Run(ctx context.Context, cfg config.Config, log *zap.Logger, reg *prometheus.Registry, ready func(addr string)) error {
	if err := cfg.Require("AUTH_DATABASE_URL", "CATALOG_DATABASE_URL", "ORDERS_DATABASE_URL", "TEMPORAL_ADDRESS", "JWT_SECRET"); err != nil {
		return err
	}
	log = log.With(zap.String("service", "gateway"))
	pools := postgres.NewPools(cfg.DatabaseMaxConns)
	defer pools.Close()
	authDB, err := pools.Open(ctx, cfg.AuthDatabaseURL)
	if err != nil {
		return err
	}
	catalogDB, err := pools.Open(ctx, cfg.CatalogDatabaseURL)
	if err != nil {
		return err
	}
	ordersDB, err := pools.Open(ctx, cfg.OrdersDatabaseURL)
	if err != nil {
		return err
	}
	// Lazy: the gateway starts, and keeps accepting orders, while Temporal is down.
	tc, payloadCodec, err := temporalclient.Lazy(cfg, log)
	if err != nil {
		return err
	}
	defer tc.Close()

	srv := New(Deps{
		Accounts: accounts.NewStore(authDB), Catalog: catalog.New(catalogDB), Orders: orders.NewStore(ordersDB), Outbox: outbox.NewLog(ordersDB),
		Temporal: tc, Tokens: authn.New(cfg.JWTSecret, cfg.JWTTTL, time.Now), Log: log, Registry: reg, Now: time.Now,
		Codec: payloadCodec,
	}, Settings{
		Timeouts: cfg.OrderTimeouts(), CursorKey: CursorKey(cfg.JWTSecret), WSURL: cfg.WSURL(), HubStatusURL: cfg.HubStatusURL(),
		TemporalUIURL: cfg.TemporalUIURL, Namespace: cfg.TemporalNamespace,
		TrustedProxies: cfg.TrustedProxies, CORSOrigins: cfg.CORSAllowedOrigins,
	})
	ln, err := net.Listen("tcp", cfg.GatewayAddr)
	if err != nil {
		return fmt.Errorf("gateway listen on %s (set GATEWAY_ADDR): %w", cfg.GatewayAddr, err)
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	log.Info("gateway listening", zap.String("addr", ln.Addr().String()))
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
