package workers_test

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	sys "github.com/ordersaga/ordersaga/internal/testkit/system"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// A cancel that reaches a workflow in its first workflow task used to call
// a nil function: the task panicked and was retried for tens of seconds
// while the capture went ahead, and the shopper who cancelled was charged.
// Both ways a cancel can land in the first task are tried here on the real
// server: with the start itself (update-with-start), and queued while no
// order worker runs, which is what a cancel sent right after the 202 meets
// when the order worker is busy or restarting.
func TestCancelInTheFirstWorkflowTask(t *testing.T) {
	s := startSystem(t)
	s.StockProduct("FIRST-1", 1000, map[string]int{"east": 10})
	line := order.Line{SKU: "FIRST-1", Name: "First", Quantity: 1, UnitPriceCents: 1000}

	t.Run("update with start", func(t *testing.T) {
		n := sys.NewOrder("tok_ok", line)
		s.Record(n, false)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		in := n.Input(order.Timeouts{Step: time.Minute})
		start := s.client.NewWithStartWorkflowOperation(order.StartOptions(in), order.WorkflowName, in)
		h, err := s.client.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
			StartWorkflowOperation: start,
			UpdateOptions: client.UpdateWorkflowOptions{
				UpdateName: order.UpdateCancel, Args: []any{order.CancelRequest{Reason: order.ReasonCustomer}},
				WaitForStage: client.WorkflowUpdateStageCompleted,
			},
		})
		if err != nil {
			t.Fatalf("update with start: %v", err)
		}
		var v order.View
		if err := h.Get(ctx, &v); err != nil {
			t.Fatalf("cancel: %v", err)
		}
		if v.Status != order.Cancelled || v.Reason != order.ReasonCustomer {
			t.Errorf("cancel answered %+v, want CANCELLED(customer)", v)
		}
		s.waitAllTerminal(t, 30*time.Second)
		if got := s.Outcome(n.ID); got != "CANCELLED(customer)" {
			t.Errorf("order ended %s", got)
		}
		s.checkInvariants(t)
	})

	t.Run("queued while no order worker runs", func(t *testing.T) {
		// A namespace whose order worker starts only after the cancel is
		// queued; the product and payment workers of s run on the other.
		q := startSystemWithoutOrderWorker(t)
		q.StockProduct("FIRST-2", 1000, map[string]int{"east": 10})
		n := sys.NewOrder("tok_ok", order.Line{SKU: "FIRST-2", Name: "First", Quantity: 1, UnitPriceCents: 1000})
		q.Record(n, true)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		type answer struct {
			v   order.View
			err error
		}
		done := make(chan answer, 1)
		go func() {
			h, err := q.client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
				WorkflowID: order.WorkflowID(n.ID.String()), UpdateName: order.UpdateCancel,
				Args:         []any{order.CancelRequest{Reason: order.ReasonCustomer}},
				WaitForStage: client.WorkflowUpdateStageCompleted,
			})
			if err != nil {
				done <- answer{err: err}
				return
			}
			var v order.View
			err = h.Get(ctx, &v)
			done <- answer{v, err}
		}()
		// Let the update reach the server before any worker polls, so the
		// first workflow task carries both the start and the cancel.
		time.Sleep(time.Second)
		began := time.Now()
		q.startOrderWorker(t)
		a := <-done
		if a.err != nil {
			t.Fatalf("cancel: %v", a.err)
		}
		if a.v.Status != order.Cancelled {
			t.Errorf("cancel answered %+v, want CANCELLED", a.v)
		}
		// A panicking first task is retried after a 10 s task timeout at
		// best; a working one answers at once.
		if took := time.Since(began); took > 8*time.Second {
			t.Errorf("the cancel took %s once the worker ran: its first task was retried", took)
		}
		q.waitAllTerminal(t, 30*time.Second)
		if got := q.Outcome(n.ID); got != "CANCELLED(customer)" {
			t.Errorf("order ended %s", got)
		}
		q.checkInvariants(t)
	})
}
