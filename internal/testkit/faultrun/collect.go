package faultrun

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// CollectDatabase reads the final state of every schema: orders and their
// events, stock and its ledger, reservations, payments, the provider's
// ledger and the idempotency keys.
func CollectDatabase(ctx context.Context, db *pgxpool.Pool) (State, error) {
	st := State{
		Orders: map[string]Order{}, Events: map[string][]Event{}, Reservations: map[string]string{},
		Payments: map[string]Payment{}, Holds: map[string]Hold{}, MoneyMoves: map[string]int{},
	}
	err := query(ctx, db, `SELECT id::text, customer_id::text, status, reason, total_cents, last_seq FROM orders.orders`, func(r pgx.Rows) error {
		var o Order
		o.Lines = map[string]int{}
		err := r.Scan(&o.ID, &o.CustomerID, &o.Status, &o.Reason, &o.TotalCents, &o.LastSeq)
		st.Orders[o.ID] = o
		return err
	})
	if err == nil {
		err = query(ctx, db, `SELECT order_id::text, sku, quantity FROM orders.order_lines`, func(r pgx.Rows) error {
			var id, sku string
			var q int
			if err := r.Scan(&id, &sku, &q); err != nil {
				return err
			}
			if o, ok := st.Orders[id]; ok {
				o.Lines[sku] += q
			}
			return nil
		})
	}
	if err == nil {
		err = query(ctx, db, `SELECT order_id::text, seq, status, reason FROM orders.order_events ORDER BY order_id, seq`, func(r pgx.Rows) error {
			var e Event
			if err := r.Scan(&e.OrderID, &e.Seq, &e.Status, &e.Reason); err != nil {
				return err
			}
			e.EventID = fmt.Sprintf("%s:%d", e.OrderID, e.Seq)
			st.Events[e.OrderID] = append(st.Events[e.OrderID], e)
			return nil
		})
	}
	if err == nil {
		err = query(ctx, db, `SELECT sku, warehouse, on_hand, reserved FROM catalog.stock`, func(r pgx.Rows) error {
			var s StockRow
			err := r.Scan(&s.SKU, &s.Warehouse, &s.OnHand, &s.Reserved)
			st.Stock = append(st.Stock, s)
			return err
		})
	}
	if err == nil {
		err = query(ctx, db, `SELECT id, sku, warehouse, on_hand_delta, reserved_delta, kind, coalesce(order_id::text, '')
			FROM catalog.stock_movements ORDER BY id`, func(r pgx.Rows) error {
			var m Movement
			err := r.Scan(&m.ID, &m.SKU, &m.Warehouse, &m.OnHandDelta, &m.ReservedDelta, &m.Kind, &m.OrderID)
			st.Movements = append(st.Movements, m)
			return err
		})
	}
	if err == nil {
		err = query(ctx, db, `SELECT order_id::text, status FROM catalog.reservations`, func(r pgx.Rows) error {
			var id, s string
			err := r.Scan(&id, &s)
			st.Reservations[id] = s
			return err
		})
	}
	if err == nil {
		err = query(ctx, db, `SELECT order_id::text, status, amount_cents FROM payments.payments`, func(r pgx.Rows) error {
			var id string
			var p Payment
			err := r.Scan(&id, &p.Status, &p.AmountCents)
			st.Payments[id] = p
			return err
		})
	}
	if err == nil {
		err = query(ctx, db, `SELECT customer_id::text, key, order_id::text FROM orders.idempotency_keys`, func(r pgx.Rows) error {
			var k KeyRow
			err := r.Scan(&k.CustomerID, &k.Key, &k.OrderID)
			st.IdempotencyKeys = append(st.IdempotencyKeys, k)
			return err
		})
	}
	if err != nil {
		return State{}, err
	}
	if err := collectProvider(ctx, db, &st); err != nil {
		return State{}, err
	}
	return st, nil
}

// collectProvider reads the payment simulator's own ledger. A ledger that
// does not exist is recorded as unreadable, for the check to report.
func collectProvider(ctx context.Context, db *pgxpool.Pool, st *State) error {
	err := query(ctx, db, `SELECT idempotency_key, state, amount_cents, captured_cents, captures FROM paysim.holds`, func(r pgx.Rows) error {
		var key string
		var h Hold
		err := r.Scan(&key, &h.State, &h.AmountCents, &h.CapturedCents, &h.Captures)
		st.Holds[key] = h
		return err
	})
	if err == nil {
		err = query(ctx, db, `SELECT idempotency_key, count(*) FROM paysim.operations WHERE op = 'capture' AND amount_cents > 0 GROUP BY 1`,
			func(r pgx.Rows) error {
				var key string
				var n int
				err := r.Scan(&key, &n)
				st.MoneyMoves[key] = n
				return err
			})
	}
	var pgErr *pgconn.PgError
	// 42P01 undefined_table, 3F000 invalid_schema_name, 42703 undefined_column.
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000" || pgErr.Code == "42703") {
		st.HoldsUnreadable = pgErr.Message
		st.Holds = nil
		return nil
	}
	return err
}

func query(ctx context.Context, db *pgxpool.Pool, sql string, each func(pgx.Rows) error) error {
	rows, err := db.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("read state (%s): %w", firstWords(sql), err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return fmt.Errorf("read state (%s): %w", firstWords(sql), err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read state (%s): %w", firstWords(sql), err)
	}
	return nil
}

func firstWords(sql string) string {
	f := strings.Fields(sql)
	for i, w := range f {
		if strings.EqualFold(w, "FROM") && i+1 < len(f) {
			return "from " + f[i+1]
		}
	}
	return sql
}

// CollectWorkflows asks Temporal for every order workflow. Visibility is
// eventually consistent (and the server was killed during the run), so an
// execution that the list shows as anything but Completed, or does not
// show, is described directly, and a failed one has its failure read from
// its history.
func CollectWorkflows(ctx context.Context, c client.Client, namespace string, orderIDs []string) (map[string]Workflow, error) {
	out := map[string]Workflow{}
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: namespace, PageSize: 1000, NextPageToken: token,
			Query: "WorkflowType = 'OrderWorkflow'",
		})
		if err != nil {
			return nil, fmt.Errorf("list order workflows: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			id, ok := strings.CutPrefix(e.GetExecution().GetWorkflowId(), "order-")
			if !ok {
				continue
			}
			w := out[id]
			w.Runs++
			// Several runs: keep the latest one's status.
			if w.Runs == 1 || e.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
				w.Status = e.GetStatus().String()
			}
			out[id] = w
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			break
		}
	}
	for _, id := range orderIDs {
		w, listed := out[id]
		if listed {
			failures, err := taskFailures(ctx, c, "order-"+id)
			if err != nil {
				return nil, err
			}
			w.TaskFailures = failures
			out[id] = w
		}
		if listed && w.Status == "Completed" {
			continue
		}
		d, err := c.DescribeWorkflowExecution(ctx, "order-"+id, "")
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			continue // no workflow at all: the check reports it
		case err != nil:
			return nil, fmt.Errorf("describe workflow order-%s: %w", id, err)
		}
		w.Status = d.GetWorkflowExecutionInfo().GetStatus().String()
		if w.Runs == 0 {
			w.Runs = 1
		}
		if w.Status == "Failed" {
			w.Failure = failureOf(ctx, c, "order-"+id)
		}
		out[id] = w
	}
	return out, nil
}

// failureOf reads the failure message from a failed workflow's close event.
func failureOf(ctx context.Context, c client.Client, workflowID string) string {
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return ""
		}
		if a := ev.GetWorkflowExecutionFailedEventAttributes(); a != nil {
			return a.GetFailure().GetMessage()
		}
	}
	return ""
}

// taskFailures reads a workflow's history for workflow tasks that failed
// in the workflow's own code: a panic (such as a handler that ran before
// what it uses was set) or nondeterminism. Other causes (a worker that
// reset its sticky cache, an update racing a task) are the SDK's routine.
func taskFailures(ctx context.Context, c client.Client, workflowID string) ([]string, error) {
	var out []string
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("read the history of %s: %w", workflowID, err)
		}
		a := ev.GetWorkflowTaskFailedEventAttributes()
		if a == nil {
			continue
		}
		switch a.GetCause() {
		case enums.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE, enums.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR:
			out = append(out, a.GetCause().String()+": "+firstLine(a.GetFailure().GetMessage()))
		}
	}
	return out, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
