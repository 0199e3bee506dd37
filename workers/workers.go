// Package workers wires ordersaga's three Temporal workers, and nothing
// else: each constructor takes open dependencies (a Temporal client, the
// service's pool, a logger, a metrics registry) and returns a Worker whose
// Run polls its task queue until the context ends. `ordersaga worker`,
// `ordersaga dev` and the test harness all build workers here.
//
//   - the order worker runs OrderWorkflow, its RecordStatus local activity
//     and the starter of orders whose workflow was never started;
//   - the product worker runs the inventory activities;
//   - the payment worker runs the payment activities.
package workers

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/internal/config"
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

// Worker is one Temporal worker and what runs beside it in its process.
type Worker struct {
	name string
	w    worker.Worker
	// beside runs alongside the worker (the order worker's starter).
	beside func(ctx context.Context) error
	log    *zap.Logger
}

// Run polls the worker's task queue until ctx ends, then stops it,
// letting running activities finish within the worker's stop timeout. A
// fatal error of the worker (its namespace gone, say) ends Run with that
// error, so that the process stops instead of running while polling
// nothing.
func (w *Worker) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if w.beside != nil {
		g.Go(func() error { return w.beside(gctx) })
	}
	g.Go(func() error {
		stop := make(chan any)
		go func() { <-gctx.Done(); close(stop) }()
		w.log.Info("worker starting")
		if err := w.w.Run(stop); err != nil {
			return fmt.Errorf("%s worker: %w", w.name, err)
		}
		w.log.Info("worker stopped")
		return nil
	})
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// OrderDeps are what the order worker runs on.
type OrderDeps struct {
	Temporal client.Client
	// Orders is the orders schema.
	Orders   *orders.Store
	Registry prometheus.Registerer
	Log      *zap.Logger
}

// OrderSettings tune the order worker.
type OrderSettings struct {
	Worker worker.Options
	// Starter tunes the starter of orders whose workflow was never
	// started, which runs beside the worker. Production always runs one;
	// nil runs none, for tests that drive a starter themselves.
	Starter *orders.StarterSettings
}

// NewOrder returns the order worker: the workflow, its local activity and
// the starter.
func NewOrder(d OrderDeps, s OrderSettings) *Worker {
	log := orNop(d.Log).With(zap.String("worker", "order"))
	w := newWorker(d.Temporal, orderActivities(d.Orders, log), s.Worker)
	w.RegisterWorkflowWithOptions(saga.OrderWorkflow, workflow.RegisterOptions{Name: order.WorkflowName})
	out := &Worker{name: "order", w: w, log: log}
	if s.Starter != nil {
		out.beside = orders.NewStarter(d.Orders, d.Temporal, *s.Starter, log, d.Registry).Run
	}
	return out
}

// NewProduct returns the product worker with the inventory activities over
// the catalog schema.
func NewProduct(c client.Client, catalog *pgxpool.Pool, opts worker.Options, log *zap.Logger) *Worker {
	log = orNop(log).With(zap.String("worker", "product"))
	return &Worker{name: "product", w: newWorker(c, productActivities(catalog, log), opts), log: log}
}

// NewPayment returns the payment worker with the payment activities over
// the payments schema and provider.
func NewPayment(c client.Client, payments *pgxpool.Pool, provider payment.Provider, opts worker.Options, log *zap.Logger) *Worker {
	log = orNop(log).With(zap.String("worker", "payment"))
	return &Worker{name: "payment", w: newWorker(c, paymentActivities(payments, provider, log), opts), log: log}
}

// orNop is log, or a logger that drops everything when there is none.
func orNop(log *zap.Logger) *zap.Logger {
	if log == nil {
		return zap.NewNop()
	}
	return log
}
