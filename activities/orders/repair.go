package orders

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// ErrCaptureMayBeInFlight is Repair's refusal while a capture of the
// order's payment may still take effect at the provider: voiding then
// could leave the shopper charged for an order recorded as undone, or a
// capture that lands after the void. The error says until when; run the
// repair again after that.
var ErrCaptureMayBeInFlight = errors.New("a capture of the payment may still be in flight")

// captureGrace is added to the moment a capture attempt's own timeout ends
// it: the clocks of Temporal, the workers and this process may differ, and
// a provider may still act on a request its caller gave up on.
const captureGrace = time.Minute

// RepairReport says what Repair found and did.
type RepairReport struct {
	OrderID      uuid.UUID
	Status       order.Status
	Workflow     string
	Released     bool
	Voided       bool
	MarkedFailed bool
}

// PaymentService is what Repair needs of the payment service, which alone
// reads and writes payments: *payment.Activities has it.
type PaymentService interface {
	// CaptureState says whether the order's payment was captured, and,
	// while a capture call may still take effect at the provider, until
	// when (zero otherwise).
	CaptureState(ctx context.Context, orderID uuid.UUID) (captured bool, inFlightUntil time.Time, err error)
	// VoidPayment lets go of the order's authorization, if any; it is
	// idempotent.
	VoidPayment(ctx context.Context, req order.PaymentRequest) error
}

// StockService is what Repair needs of the product service, which alone
// writes stock: *inventory.Activities has it.
type StockService interface {
	// ReleaseStock releases what the order holds, if anything; it is
	// idempotent.
	ReleaseStock(ctx context.Context, req order.StockRequest) error
}

// Repair finishes the compensation of an order that ended FAILED, or whose
// workflow was terminated, once the cause is fixed: it voids the order's
// authorization through the payment service and releases its stock
// through the product service (both idempotent, keyed by the order id, and
// no-ops when there is nothing to undo). Give it the payment service on
// the configured provider (as the payment worker has it), so that the void
// reaches the provider that holds the money. A captured payment is left
// alone, and so is the stock: that needs a refund. If the workflow is no
// longer running and the read model is not terminal, it records
// FAILED(operator_repair), so the order does not stay open forever.
//
// It refuses orders whose workflow still runs (the saga owns those), and
// orders whose capture may still be in flight: the workflow's history
// shows a CapturePayment that never completed and whose attempt may still
// run, or the payment service says a capture call may still take effect
// (ErrCaptureMayBeInFlight).
func Repair(ctx context.Context, id uuid.UUID, store *Store, payments PaymentService, stock StockService, tc client.Client, log *zap.Logger) (RepairReport, error) {
	log = log.With(zap.String("order_id", id.String()))
	rep := RepairReport{OrderID: id}
	o, err := store.Get(ctx, id)
	if err != nil {
		return rep, fmt.Errorf("read the order: %w", err)
	}
	rep.Status = o.Status
	wfID := order.WorkflowID(id.String())
	desc, err := tc.DescribeWorkflowExecution(ctx, wfID, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		// Never started, or gone past Temporal's retention: the payment
		// record below is all there is to go on.
		rep.Workflow = "none"
	case err != nil:
		return rep, fmt.Errorf("describe workflow: %w", err)
	default:
		info := desc.GetWorkflowExecutionInfo()
		rep.Workflow = info.GetStatus().String()
		if info.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return rep, errors.New("the workflow is still running: cancel the order instead, or wait for it")
		}
		until, scheduled, err := captureInFlightUntil(ctx, tc, wfID, info.GetExecution().GetRunId(), info.GetCloseTime().AsTime())
		if err != nil {
			return rep, err
		}
		if now := time.Now(); now.Before(until) {
			log.Warn("repair refused: a capture may still be in flight", zap.Time("until", until))
			return rep, fmt.Errorf("%w: the workflow scheduled CapturePayment at %s and it never completed; an attempt may still take effect until %s: run the repair again after that",
				ErrCaptureMayBeInFlight, scheduled.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
		}
	}
	if o.Status == order.Confirmed {
		return rep, errors.New("the order is CONFIRMED: nothing to undo (a refund is another process)")
	}
	if rep.Workflow == "none" && o.Status == order.Pending {
		// The order worker's starter runs exactly these orders; a repair
		// racing it would write the same seq as the saga.
		return rep, errors.New("the order is PENDING and its workflow was never started: the order worker's starter will run it; to stop it, cancel it through the API")
	}
	captured, inFlightUntil, err := payments.CaptureState(ctx, id)
	if err != nil {
		return rep, err
	}
	if captured {
		return rep, errors.New("the payment was captured: it needs a refund, not a void; the stock is left as is")
	}
	if !inFlightUntil.IsZero() {
		log.Warn("repair refused: the payment record says a capture is in flight", zap.Time("until", inFlightUntil))
		return rep, fmt.Errorf("%w: the payment record says a capture call may take effect until %s: run the repair again after that",
			ErrCaptureMayBeInFlight, inFlightUntil.UTC().Format(time.RFC3339))
	}
	// Void before release, as the saga's undos run: if the provider says
	// the money was taken after all, the sold units must stay held.
	if err := payments.VoidPayment(ctx, order.PaymentRequest{OrderID: id.String(), AmountCents: o.TotalCents, Currency: o.Currency}); err != nil {
		return rep, fmt.Errorf("void payment: %w", err)
	}
	rep.Voided = true
	if err := stock.ReleaseStock(ctx, order.StockRequest{OrderID: id.String()}); err != nil {
		return rep, fmt.Errorf("release stock: %w", err)
	}
	rep.Released = true
	if !o.Status.Terminal() {
		seq, err := store.lastSeq(ctx, id)
		if err != nil {
			return rep, err
		}
		rec := order.StatusRecord{OrderID: id.String(), CustomerID: o.CustomerID.String(), Seq: seq + 1,
			Status: order.Failed, Reason: order.ReasonOperatorRepair, TotalCents: o.TotalCents, OccurredAt: time.Now().UTC()}
		if err := store.RecordStatus(ctx, rec); err != nil {
			return rep, fmt.Errorf("record FAILED: %w", err)
		}
		rep.MarkedFailed = true
	}
	log.Info("order repaired", zap.Bool("marked_failed", rep.MarkedFailed), zap.String("workflow", rep.Workflow))
	return rep, nil
}

// captureInFlightUntil reads a closed workflow's history for CapturePayment
// activities that were scheduled and never completed, failed, timed out or
// were cancelled. Once the workflow closed, Temporal starts no new attempt
// of them, but one that had started runs on in its worker until its own
// timeout. It returns the latest moment such an attempt may still take
// effect (zero if there is none) and when that capture was scheduled.
func captureInFlightUntil(ctx context.Context, tc client.Client, wfID, runID string, closed time.Time) (until, scheduled time.Time, err error) {
	type capture struct {
		scheduled                     time.Time
		startToClose, scheduleToClose time.Duration
	}
	open := map[int64]capture{}
	it := tc.GetWorkflowHistory(ctx, wfID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("read the workflow's history: %w", err)
		}
		switch ev.GetEventType() {
		case enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := ev.GetActivityTaskScheduledEventAttributes()
			if a.GetActivityType().GetName() == order.CapturePayment.Name {
				open[ev.GetEventId()] = capture{ev.GetEventTime().AsTime(), a.GetStartToCloseTimeout().AsDuration(), a.GetScheduleToCloseTimeout().AsDuration()}
			}
		case enums.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			delete(open, ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId())
		case enums.EVENT_TYPE_ACTIVITY_TASK_FAILED:
			delete(open, ev.GetActivityTaskFailedEventAttributes().GetScheduledEventId())
		case enums.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			delete(open, ev.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId())
		case enums.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
			delete(open, ev.GetActivityTaskCanceledEventAttributes().GetScheduledEventId())
		}
	}
	for _, c := range open {
		// An attempt started before the workflow closed; its context ends
		// start-to-close after it started, or schedule-to-close after the
		// activity was scheduled, whichever comes first.
		var end time.Time
		if c.startToClose > 0 {
			end = closed.Add(c.startToClose)
		}
		if c.scheduleToClose > 0 {
			if byBound := c.scheduled.Add(c.scheduleToClose); end.IsZero() || byBound.Before(end) {
				end = byBound
			}
		}
		if end.IsZero() {
			// Temporal always records a bound; without one, wait a day.
			end = closed.Add(24 * time.Hour)
		}
		if end = end.Add(captureGrace); end.After(until) {
			until, scheduled = end, c.scheduled
		}
	}
	return until, scheduled, nil
}
