// Package saga is OrderWorkflow: one order as a saga over the inventory and
// payment activities, with compensation. It is workflow code, so it is
// deterministic: no I/O, no wall clock, no goroutines, no map iteration; it
// imports only the Temporal SDK and the order contract.
package saga

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// recordAttemptBudget bounds one run of the RecordStatus local activity
// (its retries included). The SDK would otherwise take the 10 s
// start-to-close as the whole budget, and a short database stall would end
// the workflow. Past this budget the saga sleeps, from recordPause doubling
// up to recordMaxPause, and runs it again: a transition is recorded however
// long the database takes. Each retry of the local activity past the
// workflow-task timeout costs a timer and a marker in the history, so a
// long outage is waited out mostly in the sleeps (a few events each): with
// these figures the history grows by some 100 events an hour, and holds
// weeks of outage within Temporal's 51,200-event limit.
const (
	recordAttemptBudget = 2 * time.Minute
	recordPause         = time.Minute
	recordMaxPause      = 15 * time.Minute
)

// versionRecordForever marks the change from "a transition that cannot be
// recorded fails the workflow" to "it is retried until it is recorded". Old
// histories that failed there replay the old way.
const versionRecordForever = "record-until-recorded"

// cancelWait is how long the cancel update waits for the compensation to
// finish before it answers with the status at that moment.
const cancelWait = 10 * time.Second

// OrderWorkflow runs one order from PENDING (recorded by the gateway) to a
// terminal status: reserve stock, authorize, capture and commit; on a
// decline, a cancellation or a timeout it undoes what was done.
//
// Once the input names an order, no error leaves it: every path ends in a
// recorded terminal status, FAILED with a reason when an undo could not be
// done. Only an input without an order id, which names nothing to record,
// is returned as an error.
func OrderWorkflow(ctx workflow.Context, in order.Input) (order.Result, error) {
	s, err := newSaga(ctx, in)
	if err != nil {
		return order.Result{}, err
	}
	if in.OrderID == "" || len(in.Lines) == 0 || in.PaymentMethod == "" {
		// A caller's defect, but the order exists: say so on every channel
		// instead of leaving it PENDING.
		s.log.Error("order input lacks lines or a payment method")
		return s.finish(ctx, order.Failed, order.ReasonStepFailed)
	}
	return s.run(ctx)
}

// undo is a compensation, registered before the step it undoes is called,
// since a step that timed out may still have taken effect.
type undo struct {
	name string
	// run calls the undo activity with ctx's activity options.
	run func(ctx workflow.Context) error
}

// undoBy returns the undo named name that calls act with arg.
func undoBy[In any](name string, act order.Activity[In, order.None], arg In) undo {
	return undo{name: name, run: func(ctx workflow.Context) error {
		_, err := act.Execute(ctx, arg)
		return err
	}}
}

type saga struct {
	in          order.Input
	stepTimeout time.Duration
	undoTimeout time.Duration
	log         log.Logger

	view            order.View
	cancelRequested bool
	cancelReason    order.Reason
	compensating    bool
	// stepCtx is the context of the cancellable steps; cancelSteps stops
	// them. Both exist before any handler is registered, because an update
	// can arrive in the very first workflow task.
	stepCtx     workflow.Context
	cancelSteps workflow.CancelFunc
	undos       []undo

	// beforeReserve, when set, runs first: the versioning tests use it to
	// change the command sequence the way a new release would.
	beforeReserve func(ctx workflow.Context) error
}

func newSaga(ctx workflow.Context, in order.Input) (*saga, error) {
	if in.OrderID == "" {
		return nil, temporal.NewNonRetryableApplicationError("order input needs an order id", order.ErrInvalidRequest, nil)
	}
	s := &saga{
		in:          in,
		stepTimeout: in.StepTimeout,
		undoTimeout: in.UndoTimeout,
		log:         log.With(workflow.GetLogger(ctx), "order_id", in.OrderID),
		view:        order.View{Status: order.Pending, Seq: 1},
	}
	if s.stepTimeout <= 0 {
		s.stepTimeout = order.DefaultStepTimeout
	}
	if s.undoTimeout <= 0 {
		s.undoTimeout = order.DefaultUndoTimeout
	}
	// Everything the handlers touch is ready before they are registered.
	s.stepCtx, s.cancelSteps = workflow.WithCancel(ctx)
	if err := workflow.SetQueryHandler(ctx, order.QueryStatus, func() (order.View, error) {
		return s.snapshot(), nil
	}); err != nil {
		return nil, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, order.UpdateCancel, s.cancel,
		workflow.UpdateHandlerOptions{Validator: s.validateCancel}); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *saga) run(ctx workflow.Context) (order.Result, error) {
	stepCtx := s.stepCtx
	defer s.cancelSteps()
	if s.beforeReserve != nil {
		if err := s.beforeReserve(ctx); err != nil {
			return order.Result{}, err
		}
	}

	// Reserve the stock.
	stock := order.StockRequest{OrderID: s.in.OrderID, Lines: stockLines(s.in.Lines)}
	s.register(undoBy("release stock", order.ReleaseStock, order.StockRequest{OrderID: s.in.OrderID}))
	if _, err := order.ReserveStock.Execute(s.stepOptions(stepCtx, "reserve stock"), stock); err != nil {
		return s.abort(ctx, err)
	}
	if err := s.transition(ctx, order.Reserved, order.ReasonNone); err != nil {
		return order.Result{}, err
	}
	if s.stopRequested(ctx) {
		return s.abort(ctx, nil)
	}

	// Authorize the payment.
	pay := order.PaymentRequest{OrderID: s.in.OrderID, PaymentMethod: s.in.PaymentMethod, AmountCents: s.in.TotalCents, Currency: s.in.Currency}
	s.register(undoBy("void payment", order.VoidPayment, order.PaymentRequest{OrderID: s.in.OrderID, AmountCents: s.in.TotalCents, Currency: s.in.Currency}))
	if _, err := order.AuthorizePayment.Execute(s.stepOptions(stepCtx, "authorize payment"), pay); err != nil {
		return s.abort(ctx, err)
	}
	if err := s.transition(ctx, order.Authorized, order.ReasonNone); err != nil {
		return order.Result{}, err
	}
	if s.stopRequested(ctx) {
		return s.abort(ctx, nil)
	}

	// Capture. From here the order completes: the cancel validator refuses,
	// capture and commit are retried until they get an answer, and they run
	// disconnected, so not even a cancellation of the workflow stops them.
	s.view.CaptureIssued = true
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	capture := order.PaymentRequest{OrderID: s.in.OrderID, AmountCents: s.in.TotalCents, Currency: s.in.Currency}
	if _, err := order.CapturePayment.Execute(finalStepOptions(ctx, "capture payment"), capture); err != nil {
		return s.abort(ctx, err)
	}
	s.undos = nil // captured: the stock is sold, nothing is undone from here.
	if _, err := order.CommitStock.Execute(finalStepOptions(ctx, "commit stock"), order.StockRequest{OrderID: s.in.OrderID}); err != nil {
		// Commit cannot fail for a business reason once units are held: this
		// is a defect or a manual change, and the payment is captured. An
		// operator has to look.
		s.log.Error("commit stock failed after capture", "error", err)
		return s.finish(ctx, order.Failed, order.ReasonStepFailed)
	}
	return s.finish(ctx, order.Confirmed, order.ReasonNone)
}

// validateCancel refuses a cancellation once the order is terminal, once
// the capture was issued, or while the order is being rejected.
func (s *saga) validateCancel(req order.CancelRequest) error {
	if req.Reason != order.ReasonCustomer && req.Reason != order.ReasonAdmin {
		return fmt.Errorf("cancel reason must be %q or %q", order.ReasonCustomer, order.ReasonAdmin)
	}
	switch {
	case s.view.Status.Terminal():
		return fmt.Errorf("order is already %s", s.view.Status)
	case s.view.CaptureIssued:
		return errors.New("payment capture already issued")
	case s.compensating && !s.cancelRequested:
		return errors.New("order is already being rejected")
	}
	return nil
}

// cancel asks the running step to stop; the main flow then compensates and
// records CANCELLED. It waits a little for that, so that callers usually
// see the final status.
func (s *saga) cancel(ctx workflow.Context, req order.CancelRequest) (order.View, error) {
	if !s.cancelRequested {
		s.cancelRequested = true
		s.cancelReason = req.Reason
		s.log.Info("cancellation accepted", "reason", string(req.Reason))
		s.cancelSteps()
	}
	if _, err := workflow.AwaitWithTimeout(ctx, cancelWait, func() bool { return s.view.Status.Terminal() }); err != nil {
		return order.View{}, err
	}
	return s.snapshot(), nil
}

// stopRequested reports a cancellation that arrived while no step was
// running: by the cancel update, or by cancelling the workflow itself.
func (s *saga) stopRequested(ctx workflow.Context) bool {
	return s.cancelRequested || ctx.Err() != nil
}

func (s *saga) register(u undo) { s.undos = append(s.undos, u) }

// abort compensates and records why the order stopped. stepErr is the
// failed step's error, or nil when a cancellation stopped the flow between
// steps.
func (s *saga) abort(ctx workflow.Context, stepErr error) (order.Result, error) {
	status, reason := s.classify(stepErr)
	s.log.Info("order stopping", "status", string(status), "reason", string(reason), "error", stepErr)
	s.compensating = true
	// Disconnected: a workflow cancellation must not skip the undos.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if !s.compensate(dctx) {
		status, reason = order.Failed, order.ReasonCompensationFailed
	}
	return s.finish(dctx, status, reason)
}

func (s *saga) classify(err error) (order.Status, order.Reason) {
	if s.cancelRequested {
		return order.Cancelled, s.cancelReason
	}
	if err == nil || temporal.IsCanceledError(err) {
		// The workflow itself was cancelled, e.g. by an operator in the UI.
		return order.Cancelled, order.ReasonAdmin
	}
	if temporal.IsTimeoutError(err) {
		return order.Rejected, order.ReasonTimeout
	}
	var actErr *temporal.ActivityError
	if errors.As(err, &actErr) && actErr.RetryState() == enums.RETRY_STATE_TIMEOUT {
		// Retries ran out of the step's schedule-to-close bound.
		return order.Rejected, order.ReasonTimeout
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		switch appErr.Type() {
		case order.ErrOutOfStock:
			return order.Rejected, order.ReasonOutOfStock
		case order.ErrPaymentDeclined:
			return order.Rejected, order.ReasonPaymentDeclined
		case order.ErrInsufficientFunds:
			return order.Rejected, order.ReasonInsufficientFunds
		case order.ErrCaptureDeclined:
			return order.Rejected, order.ReasonCaptureFailed
		}
		if !appErr.NonRetryable() {
			// Steps retry without an attempt limit, so a retryable error
			// surfaces only when the step's time bound ran out.
			return order.Rejected, order.ReasonTimeout
		}
	}
	return order.Failed, order.ReasonStepFailed
}

// compensate runs the registered undos last-in first-out. Each undo is
// idempotent and safe when its step never happened. It reports whether
// every undo succeeded; it tries all of them either way.
func (s *saga) compensate(ctx workflow.Context) bool {
	ok := true
	for i := len(s.undos) - 1; i >= 0; i-- {
		u := s.undos[i]
		// An undo retries transient errors for the undo bound (a day by
		// default), so an outage delays the compensation and fails nothing;
		// only a non-retryable error or that bound ends the order FAILED.
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			ScheduleToCloseTimeout: s.undoTimeout,
			StartToCloseTimeout:    30 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval:    time.Second,
				BackoffCoefficient: 2,
				MaximumInterval:    time.Minute,
			},
			Summary: u.name,
		})
		if err := u.run(actx); err != nil {
			s.log.Error("compensation failed", "undo", u.name, "error", err)
			ok = false
			continue
		}
		s.view.Compensations = append(s.view.Compensations, u.name)
	}
	s.undos = nil
	return ok
}

// stepOptions returns the activity options of a cancellable saga step, bounded by
// the step timeout. The activity's declaration names the task queue.
func (s *saga) stepOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		ScheduleToCloseTimeout: s.stepTimeout,
		StartToCloseTimeout:    min(30*time.Second, s.stepTimeout),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    500 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Second,
		},
		Summary: summary,
	})
}

// finalStepOptions returns the activity options of a step after the capture was
// issued: it is retried until it answers, since giving up could leave money
// taken for an unconfirmed order.
func finalStepOptions(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    500 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
		Summary: summary,
	})
}

// transition records a status change (read model and outbox, in one
// transaction, by a local activity) and then shows it to operators.
func (s *saga) transition(ctx workflow.Context, status order.Status, reason order.Reason) error {
	rec := order.StatusRecord{
		OrderID:    s.in.OrderID,
		CustomerID: s.in.CustomerID,
		Seq:        s.view.Seq + 1,
		Status:     status,
		Reason:     reason,
		TotalCents: s.in.TotalCents,
		OccurredAt: workflow.Now(ctx).UTC(),
	}
	// Disconnected: a recorded transition must not be cut short by a cancellation.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	lctx := workflow.WithLocalActivityOptions(dctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: recordAttemptBudget,
		StartToCloseTimeout:    10 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
	})
	pause := recordPause
	for {
		_, err := order.RecordStatus.Execute(lctx, rec)
		if err == nil {
			break
		}
		// Asked only on this path, so histories that never got here are unchanged.
		if workflow.GetVersion(dctx, versionRecordForever, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			return fmt.Errorf("record %s: %w", status, err)
		}
		// Until the database answers: a transition is never dropped, and
		// the workflow never fails for want of a database.
		s.log.Error("could not record the transition; will retry", "status", string(status), "seq", rec.Seq, "error", err, "retry_in", pause)
		// Operators see the wait in the UI's current details (served by
		// query: no history event).
		workflow.SetCurrentDetails(ctx, s.details()+fmt.Sprintf("\n\n**Waiting to record %s**: the orders database does not answer (%v); retrying every %s.", status, err, pause))
		_ = workflow.Sleep(dctx, pause)
		pause = min(2*pause, recordMaxPause)
	}
	s.view.Seq, s.view.Status, s.view.Reason = rec.Seq, status, reason
	if err := workflow.UpsertTypedSearchAttributes(ctx, order.SearchStatus.ValueSet(string(status))); err != nil {
		// Only an unregistered attribute fails here; the order's own
		// record is written, so the order goes on.
		s.log.Error("could not update the search attributes", "status", string(status), "error", err)
	}
	// Shown live in the UI's "Current Details"; served by query, it adds
	// no command to the history.
	workflow.SetCurrentDetails(ctx, s.details())
	s.log.Info("order status changed", "status", string(status), "reason", string(reason), "seq", rec.Seq)
	return nil
}

// details describes the order's state for operators (markdown).
func (s *saga) details() string {
	d := fmt.Sprintf("**%s**", s.view.Status)
	if s.view.Reason != "" {
		d += fmt.Sprintf(" (%s)", s.view.Reason)
	}
	d += fmt.Sprintf(", seq %d", s.view.Seq)
	if s.view.CaptureIssued {
		d += ", capture issued"
	}
	if len(s.view.Compensations) > 0 {
		d += "\n\nUndone: " + strings.Join(s.view.Compensations, ", ")
	}
	return d
}

// finish records the terminal status and waits for running update
// handlers, so a cancel call gets its answer before the workflow closes.
func (s *saga) finish(ctx workflow.Context, status order.Status, reason order.Reason) (order.Result, error) {
	if err := s.transition(ctx, status, reason); err != nil {
		return order.Result{}, err
	}
	// The order is recorded as finished; a cancellation of the workflow
	// while waiting must not turn that into a failure.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return workflow.AllHandlersFinished(dctx) })
	return order.Result{OrderID: s.in.OrderID, Status: status, Reason: reason, Seq: s.view.Seq}, nil
}

func (s *saga) snapshot() order.View {
	v := s.view
	v.Compensations = append([]string(nil), s.view.Compensations...)
	return v
}

func stockLines(lines []order.Line) []order.StockLine {
	out := make([]order.StockLine, len(lines))
	for i, l := range lines {
		out[i] = order.StockLine{SKU: l.SKU, Quantity: l.Quantity}
	}
	return out
}
