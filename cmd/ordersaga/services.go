package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/gateway"
	"github.com/ordersaga/ordersaga/internal/accounts"
	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/kafkaclient"
	"github.com/ordersaga/ordersaga/internal/localstack"
	"github.com/ordersaga/ordersaga/internal/metrics"
	"github.com/ordersaga/ordersaga/internal/outbox"
	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/internal/serve"
	"github.com/ordersaga/ordersaga/internal/temporalclient"
	"github.com/ordersaga/ordersaga/workers"
	"github.com/ordersaga/ordersaga/ws"
)

// This file is where ordersaga's services meet the outside world: each
// run* function opens what its service needs from the configuration
// (pools, clients, listeners), hands it to the service's one constructor,
// runs it, and closes what it opened. `ordersaga <service>` calls one of
// them; `ordersaga dev` calls them all in one process. Tests build the same
// services with the same constructors on servers of their own
// (internal/testkit).

// services lists what `dev` runs in its one process, sharing reg, and
// sharing the one handler through which their Temporal clients report the
// SDK's metrics into reg (one per registry: see metrics.TemporalSDK).
func services(cfg config.Config, log *zap.Logger, reg *prometheus.Registry) []localstack.Service {
	sdkMetrics := metrics.TemporalSDK(reg)
	out := []localstack.Service{{
		Name: "gateway",
		Run:  func(ctx context.Context) error { return runGateway(ctx, cfg, log, reg, sdkMetrics) },
		Links: [][2]string{{"Shop page", "http://" + cfg.GatewayAddr + "/"}, {"Admin dashboard", "http://" + cfg.GatewayAddr + "/admin"},
			{"System page", "http://" + cfg.GatewayAddr + "/admin/system"}, {"REST API", "http://" + cfg.GatewayAddr + "/api/v1"}},
	}, {
		Name:  "ws hub",
		Run:   func(ctx context.Context) error { return runHub(ctx, cfg, log, reg) },
		Links: [][2]string{{"WebSocket hub", cfg.WSURL()}, {"Hub status", cfg.HubStatusURL()}},
	}}
	for _, which := range []string{"order", "product", "payment"} {
		out = append(out, localstack.Service{Name: which + " worker", Run: func(ctx context.Context) error {
			return runWorker(ctx, cfg, log, reg, sdkMetrics, which, false) // dev serves /metrics once for all
		}})
	}
	return out
}

// listen opens addr for a service, naming the variable that sets it.
func listen(addr, variable string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (set %s): %w", addr, variable, err)
	}
	return ln, nil
}

// runGateway is `ordersaga gateway`. Its Temporal client reports the SDK's
// metrics through sdkMetrics, as the workers' do.
func runGateway(ctx context.Context, cfg config.Config, log *zap.Logger, reg *prometheus.Registry, sdkMetrics client.MetricsHandler) error {
	if err := cfg.Require("AUTH_DATABASE_URL", "CATALOG_DATABASE_URL", "ORDERS_DATABASE_URL", "TEMPORAL_ADDRESS", "JWT_SECRET"); err != nil {
		return err
	}
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
	topts, payloadCodec, err := temporalclient.Options(cfg, log, sdkMetrics)
	if err != nil {
		return err
	}
	// Lazy: the gateway starts, and keeps accepting orders, while Temporal is down.
	tc, err := temporalclient.Lazy(topts)
	if err != nil {
		return err
	}
	defer tc.Close()
	ln, err := listen(cfg.GatewayAddr, "GATEWAY_ADDR")
	if err != nil {
		return err
	}
	return gateway.New(gateway.Deps{
		Accounts: accounts.NewStore(authDB), Catalog: inventory.NewCatalog(catalogDB), Orders: orders.NewStore(ordersDB), Outbox: outbox.NewLog(ordersDB),
		OrdersStats: postgres.NewStats(ordersDB, log), Temporal: tc, Tokens: authn.New(cfg.JWTSecret, cfg.JWTTTL, time.Now), Log: log, Registry: reg, Now: time.Now,
		Codec: payloadCodec, Listener: ln,
	}, gateway.SettingsFrom(cfg)).Run(ctx)
}

// runHub is `ordersaga ws`: websockets on WS_ADDR, /metrics and /status on
// WS_OPS_ADDR.
func runHub(ctx context.Context, cfg config.Config, log *zap.Logger, reg *prometheus.Registry) error {
	if err := cfg.Require("ORDERS_DATABASE_URL", "KAFKA_BROKERS", "JWT_SECRET"); err != nil {
		return err
	}
	pool, err := postgres.Open(ctx, cfg.OrdersDatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	kafka, err := ws.Consumer(cfg.KafkaBrokers, cfg.KafkaTopic, time.Now(), log)
	if err != nil {
		return fmt.Errorf("kafka consumer: %w", err)
	}
	defer kafka.Close()
	ln, err := listen(cfg.WSAddr, "WS_ADDR")
	if err != nil {
		return err
	}
	opsLn, err := listen(cfg.WSOpsAddr, "WS_OPS_ADDR")
	if err != nil {
		ln.Close()
		return err
	}
	return ws.New(ws.Deps{
		Events: outbox.NewLog(pool), Tokens: authn.New(cfg.JWTSecret, cfg.JWTTTL, time.Now), Kafka: kafka,
		Listener: ln, OpsListener: opsLn, Registry: reg, Log: log,
	}, ws.Settings{Topic: cfg.KafkaTopic, Partitions: cfg.KafkaPartitions, SendBuffer: cfg.WSSendBuffer, AllowedOrigins: cfg.WSAllowedOrigins, Profiling: cfg.DebugPprof}).Run(ctx)
}

// runWorker is `ordersaga worker <which>`: one Temporal worker, and with
// the order worker the outbox relay, which shares its database. With ops,
// it serves the process's /metrics and probes on METRICS_ADDR. Its Temporal
// client reports the SDK's metrics (schedule-to-start latency, pollers,
// slots) through sdkMetrics, into reg.
func runWorker(ctx context.Context, cfg config.Config, log *zap.Logger, reg *prometheus.Registry, sdkMetrics client.MetricsHandler, which string, ops bool) error {
	var dsnVar, dsn string
	switch which {
	case "order":
		dsnVar, dsn = "ORDERS_DATABASE_URL", cfg.OrdersDatabaseURL
	case "product":
		dsnVar, dsn = "CATALOG_DATABASE_URL", cfg.CatalogDatabaseURL
	case "payment":
		dsnVar, dsn = "PAYMENTS_DATABASE_URL", cfg.PaymentsDatabaseURL
	default:
		return usageError{fmt.Sprintf("unknown worker %q: want order, product or payment", which)}
	}
	required := []string{dsnVar, "TEMPORAL_ADDRESS"}
	if which == "order" {
		required = append(required, "KAFKA_BROKERS") // the outbox relay
	}
	if err := cfg.Require(required...); err != nil {
		return err
	}
	// The probes answer from the start, while the pool and the client wait
	// for their servers: an outage at startup makes the worker unready, not
	// restarted in a loop by its liveness probe.
	g, gctx := errgroup.WithContext(ctx)
	var opened atomic.Pointer[workerDeps]
	if ops {
		ln, err := listen(cfg.MetricsAddr, "METRICS_ADDR")
		if err != nil {
			return err
		}
		g.Go(func() error {
			return runOps(gctx, ln, reg, cfg.DebugPprof,
				serve.Check{Name: "postgres", Ping: func(ctx context.Context) error {
					if d := opened.Load(); d != nil {
						return d.pool.Ping(ctx)
					}
					return errors.New("connecting")
				}},
				serve.Check{Name: "temporal", Ping: func(ctx context.Context) error {
					if d := opened.Load(); d != nil {
						_, err := d.temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
						return err
					}
					return errors.New("connecting")
				}})
		})
	}
	g.Go(func() error { return runWorkerOn(gctx, cfg, log, reg, sdkMetrics, which, dsn, &opened) })
	return g.Wait()
}

// workerDeps are what a worker process opened, for its probes.
type workerDeps struct {
	pool     *pgxpool.Pool
	temporal client.Client
}

// runWorkerOn opens the worker's pool and Temporal client, and runs the
// worker (and the order worker's relay) on them until ctx ends.
func runWorkerOn(ctx context.Context, cfg config.Config, log *zap.Logger, reg *prometheus.Registry, sdkMetrics client.MetricsHandler, which, dsn string, opened *atomic.Pointer[workerDeps]) error {
	pool, err := postgres.Open(ctx, dsn, cfg.DatabaseMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	c, err := dialTemporal(ctx, cfg, log, sdkMetrics)
	if err != nil {
		return err
	}
	defer c.Close()
	opened.Store(&workerDeps{pool: pool, temporal: c})
	g, ctx := errgroup.WithContext(ctx)
	opts := workers.Options(cfg.Worker)
	switch which {
	case "order":
		w := workers.NewOrder(workers.OrderDeps{Temporal: c, Orders: orders.NewStore(pool), Registry: reg, Log: log},
			workers.OrderSettings{Worker: opts, Starter: &orders.StarterSettings{Interval: cfg.StarterInterval, Grace: cfg.StarterGrace, Timeouts: cfg.OrderTimeouts()}})
		relay, closeRelay, err := openRelay(cfg, pool, reg, log)
		if err != nil {
			return err
		}
		defer closeRelay()
		g.Go(func() error { return relay.Run(ctx) })
		g.Go(func() error { return w.Run(ctx) })
	case "product":
		g.Go(func() error { return workers.NewProduct(c, pool, opts, log).Run(ctx) })
	case "payment":
		g.Go(func() error { return workers.NewPayment(c, pool, payment.NewProvider(pool), opts, log).Run(ctx) })
	}
	return g.Wait()
}

// openRelay builds the outbox relay on the orders pool with a producer of
// its own; the returned func closes the producer.
func openRelay(cfg config.Config, orders *pgxpool.Pool, reg prometheus.Registerer, log *zap.Logger) (*outbox.Relay, func(), error) {
	producer, err := kafkaclient.Producer(cfg.KafkaBrokers, cfg.KafkaTopic, 30*time.Second, log)
	if err != nil {
		return nil, nil, err
	}
	relay := outbox.New(orders, producer, outbox.Options{Topic: cfg.KafkaTopic, Partitions: cfg.KafkaPartitions, BatchSize: cfg.OutboxBatchSize}, reg, log)
	return relay, producer.Close, nil
}

// dialTemporal dials cfg's Temporal with the codec, waiting for it; the
// client reports the SDK's metrics through sdkMetrics (nil: none).
func dialTemporal(ctx context.Context, cfg config.Config, log *zap.Logger, sdkMetrics client.MetricsHandler) (client.Client, error) {
	opts, _, err := temporalclient.Options(cfg, log, sdkMetrics)
	if err != nil {
		return nil, err
	}
	return temporalclient.Connect(ctx, opts, log)
}

// runOps serves a worker process's /metrics, /healthz and /readyz on
// METRICS_ADDR: ready while its database and Temporal answer.
func runOps(ctx context.Context, ln net.Listener, reg *prometheus.Registry, pprof bool, checks ...serve.Check) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(reg))
	serve.Probes(mux, checks...)
	if pprof {
		serve.Profiling(mux)
	}
	return serve.Run(ctx, serve.NewServer(mux), ln)
}
