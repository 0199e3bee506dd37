package workers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/internal/orderstore"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// RepairReport says what Repair found and did.
type RepairReport struct {
	OrderID      uuid.UUID
	Status       string
	Workflow     string
	Released     bool
	Voided       bool
	MarkedFailed bool
}

// Repair finishes the compensation of an order that ended FAILED, or whose
// workflow was terminated, once the cause is fixed: it releases the
// order's stock and voids its authorization (both idempotent, keyed by the
// order id, and no-ops when there is nothing to undo). A captured payment
// is left alone: that needs a refund. If the workflow is no longer running
// and the read model is not terminal, it records FAILED(operator_repair),
// so the order does not stay open forever. It refuses orders whose
// workflow still runs: the saga owns those.
func Repair(ctx context.Context, id uuid.UUID, orders *orderstore.Store, catalog, payments *pgxpool.Pool, provider payment.Provider, tc client.Client, log *zap.Logger) (RepairReport, error) {
	log = log.With(zap.String("order_id", id.String()))
	rep := RepairReport{OrderID: id}
	o, err := orders.Get(ctx, id)
	if err != nil {
		return rep, err
	}
	rep.Status = o.Status
	desc, err := tc.DescribeWorkflowExecution(ctx, order.WorkflowID(id.String()), "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		rep.Workflow = "none"
	case err != nil:
		return rep, fmt.Errorf("describe workflow: %w", err)
	default:
		st := desc.GetWorkflowExecutionInfo().GetStatus()
		rep.Workflow = st.String()
		if st == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return rep, errors.New("the workflow is still running: cancel the order instead, or wait for it")
		}
	}
	if o.Status == string(order.Confirmed) {
		return rep, errors.New("the order is CONFIRMED: nothing to undo (a refund is another process)")
	}
	var pstatus string
	if err := payments.QueryRow(ctx, `SELECT status FROM payments.payments WHERE order_id = $1`, id).Scan(&pstatus); err == nil && pstatus == "CAPTURED" {
		return rep, errors.New("the payment was captured: it needs a refund, not a void; the stock is left as is")
	}
	req := order.StockRequest{OrderID: id.String()}
	if err := inventory.New(catalog, log).ReleaseStock(ctx, req); err != nil {
		return rep, fmt.Errorf("release stock: %w", err)
	}
	rep.Released = true
	if err := payment.New(payments, provider, log).VoidPayment(ctx, order.PaymentRequest{OrderID: id.String(), AmountCents: o.TotalCents, Currency: o.Currency}); err != nil {
		return rep, fmt.Errorf("void payment: %w", err)
	}
	rep.Voided = true
	if !order.Status(o.Status).Terminal() {
		events, err := orders.Events(ctx, id, 0)
		if err != nil {
			return rep, err
		}
		rec := order.StatusRecord{OrderID: id.String(), CustomerID: o.CustomerID.String(), Seq: len(events) + 1,
			Status: order.Failed, Reason: "operator_repair", TotalCents: o.TotalCents, OccurredAt: time.Now().UTC()}
		if err := orders.RecordStatus(ctx, rec); err != nil {
			return rep, err
		}
		rep.MarkedFailed = true
	}
	log.Info("order repaired", zap.Bool("marked_failed", rep.MarkedFailed), zap.String("workflow", rep.Workflow))
	return rep, nil
}
