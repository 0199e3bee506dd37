package workers_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"

	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/internal/logging"
	"github.com/ordersaga/ordersaga/internal/replay"
	"github.com/ordersaga/ordersaga/internal/testkit"
	sys "github.com/ordersaga/ordersaga/internal/testkit/system"
	"github.com/ordersaga/ordersaga/workflows/order"
	"github.com/ordersaga/ordersaga/workflows/order/saga"
)

var updateHistories = flag.Bool("update-histories", false, "write the recorded histories to workflows/order/testdata/histories (make histories)")

const historiesDir = "../workflows/order/testdata/histories"

// gatedProvider holds one order's authorization until released.
type gatedProvider struct {
	payment.Provider
	mu    sync.Mutex
	gates map[string]*gate
}

type gate struct{ started, release chan struct{} }

func (g *gatedProvider) hold(orderID string) *gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	gt := &gate{started: make(chan struct{}), release: make(chan struct{})}
	g.gates[orderID] = gt
	return gt
}

func (g *gatedProvider) Authorize(ctx context.Context, req payment.AuthorizeRequest) (string, error) {
	g.mu.Lock()
	gt := g.gates[req.IdempotencyKey]
	delete(g.gates, req.IdempotencyKey)
	g.mu.Unlock()
	if gt != nil {
		close(gt.started)
		<-gt.release
	}
	return g.Provider.Authorize(ctx, req)
}

// TestGoldenHistories runs every path of the saga on the real Temporal
// server with the real workers, checks each outcome, and checks that each
// fresh history replays against the current code. With -update-histories
// it also writes them to workflows/order/testdata/histories, where the
// replay tests and `ordersaga replay` read them.
func TestGoldenHistories(t *testing.T) {
	var provider *gatedProvider
	// In clear: the golden histories replay without keys, in
	// `ordersaga replay` and in the tests.
	s := newSystem(t, sys.Options{PlainPayloads: true, NoOrderWorker: true, Provider: func(sim *payment.Simulator) payment.Provider {
		provider = &gatedProvider{Provider: sim, gates: map[string]*gate{}}
		return provider
	}})
	c, store, log := s.client, s.store, testkit.Logger()
	// The order worker is started here, so that a path can stop it and
	// start another.
	stopOrderWorker := s.StartWorker("order")
	s.StockProduct("WATCH-42", 12900, map[string]int{"east": 50, "west": 20})

	paths := []struct {
		name, token string
		qty         int
		stepTimeout time.Duration
		cancel      func(t *testing.T, id uuid.UUID)
		want        string
	}{
		{name: "confirmed", token: payment.TokenOK, qty: 2, want: "CONFIRMED"},
		{name: "out_of_stock", token: payment.TokenOK, qty: 500, want: "REJECTED(out_of_stock)"},
		{name: "declined", token: payment.TokenDeclined, qty: 1, want: "REJECTED(payment_declined)"},
		{name: "transient_errors_then_success", token: payment.TokenTransientError, qty: 1, want: "CONFIRMED"},
		{name: "capture_fails", token: payment.TokenCaptureFails, qty: 1, want: "REJECTED(capture_failed)"},
		{name: "cancel_while_authorizing", token: payment.TokenSlow, qty: 1, want: "CANCELLED(customer)",
			cancel: func(t *testing.T, id uuid.UUID) { s.cancelWhen(t, id, order.Reserved) }},
		{name: "cancel_after_authorization", token: payment.TokenOK, qty: 1, want: "CANCELLED(customer)",
			// The cancel reaches the server after the authorization completed
			// and before the order worker has seen that: the order worker is
			// stopped while the authorization finishes, and a new one
			// receives the completion and the cancel together.
			cancel: func(t *testing.T, id uuid.UUID) {
				gt := provider.hold(id.String())
				<-gt.started
				stopOrderWorker()
				close(gt.release)
				waitPayment(t, s, id, "AUTHORIZED")
				time.Sleep(300 * time.Millisecond)
				done := make(chan struct{})
				go func() { defer close(done); cancelNow(t, c, id) }()
				time.Sleep(300 * time.Millisecond)
				stopOrderWorker = s.StartWorker("order")
				<-done
			}},
		{name: "timeout", token: payment.TokenSlow, qty: 1, stepTimeout: 2 * time.Second, want: "REJECTED(timeout)"},
	}
	replayer := replay.New(saga.OrderWorkflow, logging.Temporal(log))
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			n := sys.NewOrder(p.token, order.Line{SKU: "WATCH-42", Name: "Watch", Quantity: p.qty, UnitPriceCents: 12900})
			if err := store.CreatePending(context.Background(), n); err != nil {
				t.Fatal(err)
			}
			in := n.Input(order.Timeouts{Step: time.Minute})
			if p.stepTimeout > 0 {
				in.StepTimeout = p.stepTimeout
			}
			var cancelled chan struct{}
			if p.cancel != nil {
				cancelled = make(chan struct{})
				go func() { defer close(cancelled); p.cancel(t, n.ID) }()
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			run, err := c.ExecuteWorkflow(ctx, order.StartOptions(in), order.WorkflowName, in)
			if err != nil {
				t.Fatal(err)
			}
			var res order.Result
			if err := run.Get(ctx, &res); err != nil {
				t.Fatal(err)
			}
			if cancelled != nil {
				<-cancelled
			}
			got := string(res.Status)
			if res.Reason != "" {
				got += "(" + string(res.Reason) + ")"
			}
			if got != p.want {
				t.Fatalf("ended %s, want %s", got, p.want)
			}
			h := fetchHistory(t, c, run)
			if err := replayer.Replay(replay.History{WorkflowID: run.GetID(), History: h}); err != nil {
				t.Fatalf("a fresh history does not replay: %v", err)
			}
			if *updateHistories {
				data, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(historiesDir, p.name+".json"), append(data, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestReplayByVisibilityQuery(t *testing.T) {
	s := startSystem(t)
	s.StockProduct("SKU-1", 100, map[string]int{"east": 3})
	for _, token := range []string{payment.TokenOK, payment.TokenDeclined, payment.TokenCaptureFails} {
		s.Record(sys.NewOrder(token, order.Line{SKU: "SKU-1", Name: "x", Quantity: 1, UnitPriceCents: 100}), true)
	}
	s.waitAllTerminal(t, time.Minute)
	var histories []replay.History
	deadline := time.Now().Add(30 * time.Second)
	for len(histories) != 2 && time.Now().Before(deadline) {
		var err error
		if histories, err = replay.Fetch(context.Background(), s.client, `OrderStatus = "REJECTED"`, 100); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(histories) != 2 {
		t.Fatalf(`OrderStatus = "REJECTED" found %d workflows, want 2`, len(histories))
	}
	var out strings.Builder
	if err := replay.New(saga.OrderWorkflow, logging.Temporal(testkit.Logger()), replay.WithDataConverter(testkit.Codec().DataConverter())).Report(histories, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, h := range histories {
		if h.Source != "server" || !strings.HasPrefix(h.WorkflowID, "order-") {
			t.Errorf("fetched %+v", h)
		}
	}
}

func fetchHistory(t *testing.T, c client.Client, run client.WorkflowRun) *historypb.History {
	t.Helper()
	h, err := replay.Fetch(context.Background(), c, `WorkflowId = "`+run.GetID()+`"`, 1)
	if err == nil && len(h) == 1 && len(h[0].History.GetEvents()) > 0 {
		return h[0].History
	}
	it := c.GetWorkflowHistory(context.Background(), run.GetID(), run.GetRunID(), false, 0)
	out := &historypb.History{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		out.Events = append(out.Events, e)
	}
	return out
}

func cancelNow(t *testing.T, c client.Client, id uuid.UUID) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: order.WorkflowID(id.String()), UpdateName: order.UpdateCancel,
		Args: []any{order.CancelRequest{Reason: order.ReasonCustomer}}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		var v order.View
		err = h.Get(ctx, &v)
	}
	if err != nil {
		t.Errorf("cancel after authorization: %v", err)
	}
}

func waitPayment(t *testing.T, s *system, id uuid.UUID, status string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var got string
		_ = s.pool.QueryRow(context.Background(), `SELECT status FROM payments.payments WHERE order_id = $1`, id).Scan(&got)
		if got == status {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("payment of %s never became %s", id, status)
}
