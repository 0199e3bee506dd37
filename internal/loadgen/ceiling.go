package loadgen

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/internal/retry"
	"github.com/ordersaga/ordersaga/internal/temporalsetup"
	"github.com/ordersaga/ordersaga/workflows/order"
	"github.com/ordersaga/ordersaga/workflows/order/saga"
)

// CeilingNamespace is where the ceiling runs: a namespace of its own on the
// stack's Temporal server, so that its workers, on the order's task queue
// names, never take a task of the real ones.
const CeilingNamespace = "ordersaga-ceiling"

// ceilingOrderTimeout bounds each no-op order, as --timeout's default
// bounds a real one.
const ceilingOrderTimeout = 2 * time.Minute

// CeilingResult is what the no-op run of the order's workflow achieved.
type CeilingResult struct {
	Orders    int
	Elapsed   time.Duration
	PerSecond float64
	// P50 and P99 are from start to completion of a workflow.
	P50, P99 time.Duration
}

// NoopWorkers run OrderWorkflow as it is, with activities that do nothing:
// the same workflow shape and the same Temporal work per order as the real
// workers, and none of their own.
func NoopWorkers(c client.Client) []worker.Worker {
	ow := worker.New(c, order.TaskQueueOrders, worker.Options{})
	ow.RegisterWorkflowWithOptions(saga.OrderWorkflow, workflow.RegisterOptions{Name: order.WorkflowName})
	ow.RegisterActivityWithOptions(func(context.Context, order.StatusRecord) error { return nil }, activity.RegisterOptions{Name: order.RecordStatus.Name})
	pw := worker.New(c, order.TaskQueueProduct, worker.Options{})
	pw.RegisterActivityWithOptions(func(_ context.Context, r order.StockRequest) (order.Reservation, error) {
		return order.Reservation{OrderID: r.OrderID}, nil
	}, activity.RegisterOptions{Name: order.ReserveStock.Name})
	for _, name := range []string{order.CommitStock.Name, order.ReleaseStock.Name} {
		pw.RegisterActivityWithOptions(func(context.Context, order.StockRequest) error { return nil }, activity.RegisterOptions{Name: name})
	}
	payw := worker.New(c, order.TaskQueuePayment, worker.Options{})
	payw.RegisterActivityWithOptions(func(_ context.Context, r order.PaymentRequest) (order.Authorization, error) {
		return order.Authorization{OrderID: r.OrderID, AuthorizationID: "noop"}, nil
	}, activity.RegisterOptions{Name: order.AuthorizePayment.Name})
	for _, name := range []string{order.CapturePayment.Name, order.VoidPayment.Name} {
		payw.RegisterActivityWithOptions(func(context.Context, order.PaymentRequest) error { return nil }, activity.RegisterOptions{Name: name})
	}
	return []worker.Worker{ow, pw, payw}
}

// PrepareCeiling registers the ceiling's namespace on the server of c (a
// client of any namespace) and waits until it can be used.
func PrepareCeiling(ctx context.Context, c client.Client) error {
	if err := temporalsetup.EnsureNamespace(ctx, c, CeilingNamespace); err != nil {
		return err
	}
	// A new namespace reaches the frontend's cache within seconds.
	return retry.Do(ctx, 200*time.Millisecond, time.Second, func(ctx context.Context) error {
		return temporalsetup.EnsureSearchAttributes(ctx, c, CeilingNamespace)
	}, nil)
}

// Ceiling runs orders workflows of one line each through NoopWorkers on c,
// a client of CeilingNamespace, keeping concurrency in flight, and times
// each from start to completion.
func Ceiling(ctx context.Context, c client.Client, orders, concurrency int) (CeilingResult, error) {
	for _, w := range NoopWorkers(c) {
		if err := w.Start(); err != nil {
			return CeilingResult{}, fmt.Errorf("start a no-op worker: %w", err)
		}
		defer w.Stop()
	}
	var mu sync.Mutex
	var took []time.Duration
	var firstErr error
	next := make(chan struct{})
	var wg sync.WaitGroup
	began := time.Now()
	for range max(concurrency, 1) {
		wg.Go(func() {
			for range next {
				in := order.Input{OrderID: uuid.NewString(), CustomerID: uuid.NewString(), PaymentMethod: payment.TokenOK, Currency: "USD",
					TotalCents: 1000, Lines: []order.Line{{SKU: "CEILING-1", Name: "ceiling", Quantity: 1, UnitPriceCents: 1000}}}
				start := time.Now()
				// A stuck no-op worker must not hang the run: each order
				// gets as long as the load tool gives a real one.
				octx, cancel := context.WithTimeout(ctx, ceilingOrderTimeout)
				run, err := c.ExecuteWorkflow(octx, order.StartOptions(in), order.WorkflowName, in)
				if err == nil {
					var res order.Result
					err = run.Get(octx, &res)
				}
				cancel()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("ceiling workflow: %w", err)
				}
				if err == nil {
					took = append(took, time.Since(start))
				}
				mu.Unlock()
			}
		})
	}
	for range orders {
		select {
		case next <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(began)
	if firstErr != nil {
		return CeilingResult{}, firstErr
	}
	if len(took) == 0 {
		return CeilingResult{}, fmt.Errorf("ceiling: no workflow completed: %w", ctx.Err())
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	at := func(q float64) time.Duration { return took[min(len(took)-1, int(q*float64(len(took))))] }
	return CeilingResult{Orders: len(took), Elapsed: elapsed, PerSecond: float64(len(took)) / elapsed.Seconds(), P50: at(0.5), P99: at(0.99)}, nil
}
