package workers_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"

	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/internal/loadgen"
	"github.com/ordersaga/ordersaga/internal/testkit"
	sys "github.com/ordersaga/ordersaga/internal/testkit/system"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// inFlight is how many orders the benchmark keeps running at once.
const inFlight = 32

// BenchmarkSaga pushes b.N orders through OrderWorkflow on the harness's
// Temporal dev server and reports orders/s and the end-to-end latency
// (start to terminal) p50/p99:
//
//   - noop: the same workflow with activities that do nothing: the ceiling
//     that Temporal itself sets on this machine;
//   - real: the three real workers on PostgreSQL.
//
// Run: go test -run '^$' -bench Saga -benchtime 300x -count 3 ./workers/
func BenchmarkSaga(b *testing.B) {
	b.Run("noop", func(b *testing.B) {
		addr, ns := testkit.NewNamespace(b)
		c := testkit.TemporalClient(b, addr, ns)
		for _, w := range loadgen.NoopWorkers(c) {
			if err := w.Start(); err != nil {
				b.Fatal(err)
			}
			defer w.Stop()
		}
		load(b, c, func(int) order.Input {
			return order.Input{OrderID: uuid.NewString(), CustomerID: uuid.NewString(), PaymentMethod: payment.TokenOK, Currency: "USD",
				TotalCents: 1000, Lines: []order.Line{{SKU: "BENCH-1", Quantity: 1, UnitPriceCents: 1000}}}
		})
	})
	b.Run("real", func(b *testing.B) {
		s := startSystem(b)
		s.StockProduct("BENCH-1", 1000, map[string]int{"east": 1 << 30, "west": 1 << 30})
		s.StockProduct("BENCH-2", 500, map[string]int{"east": 1 << 30})
		inputs := make([]order.Input, b.N)
		for i := range inputs {
			n := sys.NewOrder(payment.TokenOK,
				order.Line{SKU: "BENCH-1", Name: "b1", Quantity: 1 + i%3, UnitPriceCents: 1000},
				order.Line{SKU: "BENCH-2", Name: "b2", Quantity: 1, UnitPriceCents: 500})
			s.Record(n, false) // recorded as the gateway does; started by load
			inputs[i] = n.Input(order.Timeouts{Step: time.Minute})
		}
		load(b, s.client, func(i int) order.Input { return inputs[i] })
		s.checkInvariants(b)
	})
}

func load(b *testing.B, c client.Client, input func(i int) order.Input) {
	ctx := context.Background()
	latencies := make([]time.Duration, b.N)
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			in := input(i)
			t0 := time.Now()
			run, err := c.ExecuteWorkflow(ctx, order.StartOptions(in), order.WorkflowName, in)
			var res order.Result
			if err == nil {
				err = run.Get(ctx, &res)
			}
			if err == nil && res.Status != order.Confirmed {
				err = &unexpected{res}
			}
			latencies[i] = time.Since(t0)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	slices.Sort(latencies)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "orders/s")
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(latencies[(len(latencies)*99)/100].Microseconds())/1000, "p99_ms")
	b.ReportMetric(0, "ns/op")
}

type unexpected struct{ res order.Result }

func (u *unexpected) Error() string {
	return "order ended " + string(u.res.Status) + " " + string(u.res.Reason)
}
