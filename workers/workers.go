// Package workers wires ordersaga's three Temporal workers: the order
// worker (OrderWorkflow, its RecordStatus local activity and the starter),
// the product worker (inventory activities) and the payment worker
// (payment activities and the simulator).
package workers

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/kafkaclient"
	"github.com/ordersaga/ordersaga/internal/outbox"
	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/internal/temporalclient"
	"github.com/ordersaga/ordersaga/workflows/order"
	"github.com/ordersaga/ordersaga/workflows/order/saga"
)

// Options turns the configured tuning into worker options. Zero values
// leave the SDK's defaults.
func Options(w config.Worker) worker.Options {
	return worker.Options{
		MaxConcurrentActivityExecutionSize:      w.MaxConcurrentActivities,
		MaxConcurrentLocalActivityExecutionSize: w.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize:  w.MaxConcurrentWorkflowTasks,
		MaxConcurrentActivityTaskPollers:        w.ActivityPollers,
		MaxConcurrentWorkflowTaskPollers:        w.WorkflowPollers,
		// On shutdown, running activities get this long to finish.
		WorkerStopTimeout: w.ShutdownTimeout,
	}
}

// NewOrder returns the order worker: the workflow and its local activity.
func NewOrder(c client.Client, rec orders.Recorder, opts worker.Options, log *zap.Logger) worker.Worker {
	w := worker.New(c, order.TaskQueueOrders, opts)
	w.RegisterWorkflowWithOptions(saga.OrderWorkflow, workflow.RegisterOptions{Name: order.WorkflowName})
	acts := orders.NewActivities(rec, log)
	w.RegisterActivityWithOptions(acts.RecordStatus, activity.RegisterOptions{Name: order.ActivityRecordStatus})
	return w
}

// NewProduct returns the product worker with the inventory activities.
func NewProduct(c client.Client, catalog *pgxpool.Pool, opts worker.Options, log *zap.Logger) worker.Worker {
	w := worker.New(c, order.TaskQueueProduct, opts)
	acts := inventory.New(catalog, log)
	w.RegisterActivityWithOptions(acts.ReserveStock, activity.RegisterOptions{Name: order.ActivityReserveStock})
	w.RegisterActivityWithOptions(acts.CommitStock, activity.RegisterOptions{Name: order.ActivityCommitStock})
	w.RegisterActivityWithOptions(acts.ReleaseStock, activity.RegisterOptions{Name: order.ActivityReleaseStock})
	return w
}

// NewPayment returns the payment worker with the payment activities.
func NewPayment(c client.Client, payments *pgxpool.Pool, provider payment.Provider, opts worker.Options, log *zap.Logger) worker.Worker {
	w := worker.New(c, order.TaskQueuePayment, opts)
	acts := payment.New(payments, provider, log)
	w.RegisterActivityWithOptions(acts.AuthorizePayment, activity.RegisterOptions{Name: order.ActivityAuthorizePayment})
	w.RegisterActivityWithOptions(acts.CapturePayment, activity.RegisterOptions{Name: order.ActivityCapturePayment})
	w.RegisterActivityWithOptions(acts.VoidPayment, activity.RegisterOptions{Name: order.ActivityVoidPayment})
	return w
}

// Run runs the worker named which ("order", "product" or "payment") until
// ctx ends, then stops it gracefully. It is `ordersaga worker <which>`.
func Run(ctx context.Context, cfg config.Config, log *zap.Logger, reg prometheus.Registerer, which string) error {
	var dsnVar, dsn string
	switch which {
	case "order":
		dsnVar, dsn = "ORDERS_DATABASE_URL", cfg.OrdersDatabaseURL
	case "product":
		dsnVar, dsn = "CATALOG_DATABASE_URL", cfg.CatalogDatabaseURL
	case "payment":
		dsnVar, dsn = "PAYMENTS_DATABASE_URL", cfg.PaymentsDatabaseURL
	default:
		return fmt.Errorf("unknown worker %q: want order, product or payment", which)
	}
	required := []string{dsnVar, "TEMPORAL_ADDRESS"}
	if which == "order" {
		required = append(required, "KAFKA_BROKERS") // the outbox relay
	}
	if err := cfg.Require(required...); err != nil {
		return err
	}
	log = log.With(zap.String("worker", which))
	pool, err := postgres.Open(ctx, dsn, cfg.DatabaseMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	c, err := temporalclient.Connect(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer c.Close()

	opts := Options(cfg.Worker)
	var w worker.Worker
	var background func(ctx context.Context) error
	switch which {
	case "order":
		store := orders.NewStore(pool)
		w = NewOrder(c, store, opts, log)
		producer, err := kafkaclient.Producer(cfg.KafkaBrokers, cfg.KafkaTopic, 30*time.Second, log)
		if err != nil {
			return err
		}
		defer producer.Close()
		relay := outbox.New(pool, producer, outbox.Options{Topic: cfg.KafkaTopic, Partitions: cfg.KafkaPartitions, BatchSize: cfg.OutboxBatchSize}, reg, log)
		starter := orders.NewStarter(store, c, cfg, log, reg)
		background = func(ctx context.Context) error {
			g, gctx := errgroup.WithContext(ctx)
			g.Go(func() error { return starter.Run(gctx) })
			g.Go(func() error { return relay.Run(gctx) })
			return g.Wait()
		}
	case "product":
		w = NewProduct(c, pool, opts, log)
	case "payment":
		w = NewPayment(c, pool, payment.NewProvider(pool), opts, log)
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("start %s worker: %w", which, err)
	}
	log.Info("worker started")
	var bgErr error
	if background != nil {
		bgErr = background(ctx)
	} else {
		<-ctx.Done()
	}
	log.Info("worker stopping; running activities may finish", zap.Duration("timeout", cfg.Worker.ShutdownTimeout))
	w.Stop()
	if bgErr != nil && ctx.Err() == nil {
		return bgErr
	}
	return nil
}
