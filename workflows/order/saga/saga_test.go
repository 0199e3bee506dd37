package saga

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/ordersaga/ordersaga/internal/logging"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// world is a fake of the three workers: activities that follow a script and
// remember every call, so that a test can check what ran and how often.
type world struct {
	mu      sync.Mutex
	calls   map[string]int
	records []order.StatusRecord

	reserve   func(ctx context.Context, attempt int32) error
	authorize func(ctx context.Context, attempt int32) error
	capture   func(ctx context.Context, attempt int32) error
	release   func(ctx context.Context, attempt int32) error
	void      func(ctx context.Context, attempt int32) error
	// onRecord runs as a transition is being recorded: the moment to send
	// an update that must land between two steps.
	onRecord func(rec order.StatusRecord)
	// record, when set, decides whether recording rec fails this time (the
	// database is down or stalled); n counts the tries of that record.
	record func(ctx context.Context, rec order.StatusRecord, n int) error
	tries  map[int]int
}

func newWorld() *world { return &world{calls: map[string]int{}, tries: map[int]int{}} }

func (w *world) count(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls[name]++
}

// succeeded counts calls of name that returned no error.
func (w *world) called(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls[name]
}

func run(f func(context.Context, int32) error, ctx context.Context) error {
	if f == nil {
		return nil
	}
	return f(ctx, activity.GetInfo(ctx).Attempt)
}

func (w *world) register(env *testsuite.TestWorkflowEnvironment) {
	reg := func(name string, fn any) {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	reg(order.ReserveStock.Name, func(ctx context.Context, req order.StockRequest) (order.Reservation, error) {
		if err := run(w.reserve, ctx); err != nil {
			return order.Reservation{}, err
		}
		w.count(order.ReserveStock.Name)
		return order.Reservation{OrderID: req.OrderID}, nil
	})
	reg(order.ReleaseStock.Name, func(ctx context.Context, req order.StockRequest) error {
		if err := run(w.release, ctx); err != nil {
			return err
		}
		w.count(order.ReleaseStock.Name)
		return nil
	})
	reg(order.CommitStock.Name, func(ctx context.Context, req order.StockRequest) error {
		w.count(order.CommitStock.Name)
		return nil
	})
	reg(order.AuthorizePayment.Name, func(ctx context.Context, req order.PaymentRequest) (order.Authorization, error) {
		if err := run(w.authorize, ctx); err != nil {
			return order.Authorization{}, err
		}
		w.count(order.AuthorizePayment.Name)
		return order.Authorization{OrderID: req.OrderID, AuthorizationID: "auth-1"}, nil
	})
	reg(order.CapturePayment.Name, func(ctx context.Context, req order.PaymentRequest) error {
		if err := run(w.capture, ctx); err != nil {
			return err
		}
		w.count(order.CapturePayment.Name)
		return nil
	})
	reg(order.VoidPayment.Name, func(ctx context.Context, req order.PaymentRequest) error {
		if err := run(w.void, ctx); err != nil {
			return err
		}
		w.count(order.VoidPayment.Name)
		return nil
	})
	reg(order.RecordStatus.Name, func(ctx context.Context, rec order.StatusRecord) error {
		if w.onRecord != nil {
			w.onRecord(rec)
		}
		if w.record != nil {
			w.mu.Lock()
			w.tries[rec.Seq]++
			n := w.tries[rec.Seq]
			w.mu.Unlock()
			if err := w.record(ctx, rec, n); err != nil {
				return err
			}
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.records = append(w.records, rec)
		return nil
	})
}

// statuses is the recorded sequence, checked to start at seq 2 with no gap.
func (w *world) statuses(t *testing.T) []string {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for i, r := range w.records {
		if r.Seq != i+2 {
			t.Errorf("record %d has seq %d, want %d (gateway's PENDING is seq 1)", i, r.Seq, i+2)
		}
		s := string(r.Status)
		if r.Reason != "" {
			s += "(" + string(r.Reason) + ")"
		}
		out = append(out, s)
	}
	return out
}

// newEnv returns a test environment that logs warnings and errors only.
func newEnv() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(logging.Temporal(testkit.Logger()))
	return s.NewTestWorkflowEnvironment()
}

func input() order.Input {
	return order.Input{
		OrderID:       "7f1c9a4e-0000-4000-8000-000000000001",
		CustomerID:    "c-1",
		Lines:         []order.Line{{SKU: "WATCH-42", Name: "Watch", Quantity: 2, UnitPriceCents: 1000}},
		PaymentMethod: "tok_ok",
		TotalCents:    2000,
		Currency:      "USD",
		StepTimeout:   time.Minute,
	}
}

func fail(typ string) func(context.Context, int32) error {
	return func(context.Context, int32) error {
		return temporal.NewNonRetryableApplicationError("scripted failure", typ, nil)
	}
}

// blockUntilCancelled is a slow step: it returns only when cancelled.
func blockUntilCancelled(ctx context.Context, _ int32) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
			activity.RecordHeartbeat(ctx)
		}
	}
}

type outcome struct {
	result order.Result
	err    error
}

func execute(t *testing.T, w *world, in order.Input, setup func(env *testsuite.TestWorkflowEnvironment)) outcome {
	t.Helper()
	env := newEnv()
	env.SetTestTimeout(30 * time.Second)
	w.register(env)
	if setup != nil {
		setup(env)
	}
	env.ExecuteWorkflow(OrderWorkflow, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var o outcome
	o.err = env.GetWorkflowError()
	if o.err == nil {
		if err := env.GetWorkflowResult(&o.result); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

func TestSagaPaths(t *testing.T) {
	for _, tc := range []struct {
		name     string
		script   func(w *world)
		want     order.Result
		statuses []string
		// ran says how often each activity ran to success.
		ran map[string]int
	}{
		{
			name:     "confirmed",
			want:     order.Result{Status: order.Confirmed, Seq: 4},
			statuses: []string{"RESERVED", "AUTHORIZED", "CONFIRMED"},
			ran:      map[string]int{order.ReserveStock.Name: 1, order.AuthorizePayment.Name: 1, order.CapturePayment.Name: 1, order.CommitStock.Name: 1},
		},
		{
			name:     "out of stock",
			script:   func(w *world) { w.reserve = fail(order.ErrOutOfStock) },
			want:     order.Result{Status: order.Rejected, Reason: order.ReasonOutOfStock, Seq: 2},
			statuses: []string{"REJECTED(out_of_stock)"},
			// Release is registered before reserve is called: it runs, and is a no-op.
			ran: map[string]int{order.ReleaseStock.Name: 1},
		},
		{
			name:     "declined",
			script:   func(w *world) { w.authorize = fail(order.ErrPaymentDeclined) },
			want:     order.Result{Status: order.Rejected, Reason: order.ReasonPaymentDeclined, Seq: 3},
			statuses: []string{"RESERVED", "REJECTED(payment_declined)"},
			ran:      map[string]int{order.ReserveStock.Name: 1, order.VoidPayment.Name: 1, order.ReleaseStock.Name: 1},
		},
		{
			name:     "insufficient funds",
			script:   func(w *world) { w.authorize = fail(order.ErrInsufficientFunds) },
			want:     order.Result{Status: order.Rejected, Reason: order.ReasonInsufficientFunds, Seq: 3},
			statuses: []string{"RESERVED", "REJECTED(insufficient_funds)"},
			ran:      map[string]int{order.ReserveStock.Name: 1, order.VoidPayment.Name: 1, order.ReleaseStock.Name: 1},
		},
		{
			name: "transient provider errors then success",
			script: func(w *world) {
				w.authorize = func(_ context.Context, attempt int32) error {
					if attempt <= 2 {
						return temporal.NewApplicationError("provider unavailable", "ProviderError")
					}
					return nil
				}
			},
			want:     order.Result{Status: order.Confirmed, Seq: 4},
			statuses: []string{"RESERVED", "AUTHORIZED", "CONFIRMED"},
			ran:      map[string]int{order.ReserveStock.Name: 1, order.AuthorizePayment.Name: 1, order.CapturePayment.Name: 1, order.CommitStock.Name: 1},
		},
		{
			name:     "capture fails: void and release",
			script:   func(w *world) { w.capture = fail(order.ErrCaptureDeclined) },
			want:     order.Result{Status: order.Rejected, Reason: order.ReasonCaptureFailed, Seq: 4},
			statuses: []string{"RESERVED", "AUTHORIZED", "REJECTED(capture_failed)"},
			ran:      map[string]int{order.ReserveStock.Name: 1, order.AuthorizePayment.Name: 1, order.VoidPayment.Name: 1, order.ReleaseStock.Name: 1},
		},
		{
			name:     "an undo that keeps failing ends FAILED",
			script:   func(w *world) { w.authorize = fail(order.ErrPaymentDeclined); w.release = fail("DatabaseDown") },
			want:     order.Result{Status: order.Failed, Reason: order.ReasonCompensationFailed, Seq: 3},
			statuses: []string{"RESERVED", "FAILED(compensation_failed)"},
			// The void still runs: one failing undo does not skip the others.
			ran: map[string]int{order.ReserveStock.Name: 1, order.VoidPayment.Name: 1},
		},
		{
			name: "an undo that fails a few times and then succeeds",
			script: func(w *world) {
				w.authorize = fail(order.ErrPaymentDeclined)
				w.release = func(_ context.Context, attempt int32) error {
					if attempt < 3 {
						return errors.New("connection reset")
					}
					return nil
				}
			},
			want:     order.Result{Status: order.Rejected, Reason: order.ReasonPaymentDeclined, Seq: 3},
			statuses: []string{"RESERVED", "REJECTED(payment_declined)"},
			ran:      map[string]int{order.ReserveStock.Name: 1, order.VoidPayment.Name: 1, order.ReleaseStock.Name: 1},
		},
		{
			name: "an undo that fails more than the 8 tries it used to get, then succeeds",
			script: func(w *world) {
				w.authorize = fail(order.ErrPaymentDeclined)
				// A database down for minutes: more than the 8 tries that
				// used to end the order FAILED. (The test environment's
				// mocked activity deadlines do not allow hours of retries;
				// the undo bound itself is checked in the next case.)
				w.release = func(_ context.Context, attempt int32) error {
					if attempt < 10 {
						return errors.New("connection refused")
					}
					return nil
				}
			},
			want:     order.Result{Status: order.Rejected, Reason: order.ReasonPaymentDeclined, Seq: 3},
			statuses: []string{"RESERVED", "REJECTED(payment_declined)"},
			ran:      map[string]int{order.ReserveStock.Name: 1, order.VoidPayment.Name: 1, order.ReleaseStock.Name: 1},
		},
		{
			name: "an undo that fails transiently past the undo bound ends FAILED",
			script: func(w *world) {
				w.authorize = fail(order.ErrPaymentDeclined)
				w.release = func(context.Context, int32) error { return errors.New("connection refused") }
			},
			want:     order.Result{Status: order.Failed, Reason: order.ReasonCompensationFailed, Seq: 3},
			statuses: []string{"RESERVED", "FAILED(compensation_failed)"},
			ran:      map[string]int{order.ReserveStock.Name: 1, order.VoidPayment.Name: 1},
		},
		{
			name: "a transition the database refuses for a while is recorded later",
			script: func(w *world) {
				// Even an error the activity calls final does not end the
				// workflow: the saga waits and records again.
				w.record = func(_ context.Context, rec order.StatusRecord, n int) error {
					if rec.Status == order.Authorized && n <= 2 {
						return temporal.NewNonRetryableApplicationError("database down", "DatabaseDown", nil)
					}
					return nil
				}
			},
			want:     order.Result{Status: order.Confirmed, Seq: 4},
			statuses: []string{"RESERVED", "AUTHORIZED", "CONFIRMED"},
			ran:      map[string]int{order.ReserveStock.Name: 1, order.AuthorizePayment.Name: 1, order.CapturePayment.Name: 1, order.CommitStock.Name: 1},
		},
		{
			name:     "a hung step past its bound is REJECTED(timeout)",
			script:   func(w *world) { w.reserve = blockUntilCancelled },
			want:     order.Result{Status: order.Rejected, Reason: order.ReasonTimeout, Seq: 2},
			statuses: []string{"REJECTED(timeout)"},
			ran:      map[string]int{order.ReleaseStock.Name: 1},
		},
		{
			name: "a failing step past its bound is REJECTED(timeout)",
			script: func(w *world) {
				w.authorize = func(context.Context, int32) error {
					return temporal.NewApplicationError("provider unavailable", "ProviderError")
				}
			},
			want:     order.Result{Status: order.Rejected, Reason: order.ReasonTimeout, Seq: 3},
			statuses: []string{"RESERVED", "REJECTED(timeout)"},
			ran:      map[string]int{order.ReserveStock.Name: 1, order.VoidPayment.Name: 1, order.ReleaseStock.Name: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			if tc.script != nil {
				tc.script(w)
			}
			in := input()
			if strings.Contains(tc.name, "bound") {
				in.StepTimeout = 3 * time.Second
				in.UndoTimeout = 10 * time.Minute
			}
			o := execute(t, w, in, nil)
			if o.err != nil {
				t.Fatalf("workflow error: %v", o.err)
			}
			tc.want.OrderID = in.OrderID
			if o.result != tc.want {
				t.Errorf("result %+v, want %+v", o.result, tc.want)
			}
			if got := w.statuses(t); !slices.Equal(got, tc.statuses) {
				t.Errorf("recorded %v, want %v", got, tc.statuses)
			}
			checkRan(t, w, tc.ran)
		})
	}
}

func checkRan(t *testing.T, w *world, want map[string]int) {
	t.Helper()
	for _, name := range []string{
		order.ReserveStock.Name, order.AuthorizePayment.Name, order.CapturePayment.Name,
		order.CommitStock.Name, order.ReleaseStock.Name, order.VoidPayment.Name,
	} {
		if got := w.called(name); got != want[name] {
			t.Errorf("%s succeeded %d times, want %d", name, got, want[name])
		}
	}
}

func cancelAt(env *testsuite.TestWorkflowEnvironment, after time.Duration, reason order.Reason, got *order.View, gotErr *error) {
	env.RegisterDelayedCallback(func() { sendCancel(env, reason, got, gotErr) }, after)
}

func sendCancel(env *testsuite.TestWorkflowEnvironment, reason order.Reason, got *order.View, gotErr *error) {
	env.UpdateWorkflow(order.UpdateCancel, "cancel-1", &testsuite.TestUpdateCallback{
		OnReject: func(err error) { *gotErr = err },
		OnAccept: func() {},
		OnComplete: func(v interface{}, err error) {
			if err != nil {
				*gotErr = err
				return
			}
			*got = v.(order.View)
		},
	}, order.CancelRequest{Reason: reason})
}

func TestCancel(t *testing.T) {
	for _, tc := range []struct {
		name     string
		script   func(w *world)
		at       time.Duration
		statuses []string
		ran      map[string]int
		undos    []string
	}{
		{
			name:     "while reserving",
			script:   func(w *world) { w.reserve = blockUntilCancelled },
			at:       time.Second,
			statuses: []string{"CANCELLED(customer)"},
			ran:      map[string]int{order.ReleaseStock.Name: 1},
			undos:    []string{"release stock"},
		},
		{
			name:     "while authorizing (tok_slow)",
			script:   func(w *world) { w.authorize = blockUntilCancelled },
			at:       time.Second,
			statuses: []string{"RESERVED", "CANCELLED(customer)"},
			ran:      map[string]int{order.ReserveStock.Name: 1, order.VoidPayment.Name: 1, order.ReleaseStock.Name: 1},
			undos:    []string{"void payment", "release stock"},
		},
		{
			name:     "after authorization",
			at:       0, // sent while AUTHORIZED is being recorded, before capture is issued
			statuses: []string{"RESERVED", "AUTHORIZED", "CANCELLED(customer)"},
			ran:      map[string]int{order.ReserveStock.Name: 1, order.AuthorizePayment.Name: 1, order.VoidPayment.Name: 1, order.ReleaseStock.Name: 1},
			undos:    []string{"void payment", "release stock"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			if tc.script != nil {
				tc.script(w)
			}
			var view order.View
			var updErr error
			o := execute(t, w, input(), func(env *testsuite.TestWorkflowEnvironment) {
				if tc.at > 0 {
					cancelAt(env, tc.at, order.ReasonCustomer, &view, &updErr)
					return
				}
				w.onRecord = func(rec order.StatusRecord) {
					if rec.Status == order.Authorized {
						sendCancel(env, order.ReasonCustomer, &view, &updErr)
					}
				}
			})
			if o.err != nil || updErr != nil {
				t.Fatalf("workflow error %v, update error %v", o.err, updErr)
			}
			if o.result.Status != order.Cancelled || o.result.Reason != order.ReasonCustomer {
				t.Errorf("result %+v, want CANCELLED(customer)", o.result)
			}
			if got := w.statuses(t); !slices.Equal(got, tc.statuses) {
				t.Errorf("recorded %v, want %v", got, tc.statuses)
			}
			if view.Status != order.Cancelled || !slices.Equal(view.Compensations, tc.undos) {
				t.Errorf("cancel answered %+v, want CANCELLED after %v", view, tc.undos)
			}
			checkRan(t, w, tc.ran)
		})
	}
}

func TestCancelOfConfirmedOrderIsRefused(t *testing.T) {
	w := newWorld()
	var view order.View
	var updErr error
	o := execute(t, w, input(), func(env *testsuite.TestWorkflowEnvironment) {
		w.onRecord = func(rec order.StatusRecord) {
			if rec.Status == order.Confirmed {
				sendCancel(env, order.ReasonCustomer, &view, &updErr)
			}
		}
	})
	if o.err != nil || o.result.Status != order.Confirmed {
		t.Fatalf("want CONFIRMED, got %+v, %v", o.result, o.err)
	}
	if updErr == nil {
		t.Error("cancel of a confirmed order was not refused")
	}
	if w.called(order.VoidPayment.Name) != 0 || w.called(order.ReleaseStock.Name) != 0 {
		t.Error("an undo ran for a confirmed order")
	}
}

func TestCancelRefusedOnceCaptureIssued(t *testing.T) {
	w := newWorld()
	var view order.View
	var updErr error
	o := execute(t, w, input(), func(env *testsuite.TestWorkflowEnvironment) {
		env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
			if info.ActivityType.Name == order.CommitStock.Name {
				sendCancel(env, order.ReasonCustomer, &view, &updErr)
			}
		})
	})
	if o.err != nil {
		t.Fatal(o.err)
	}
	if updErr == nil || !strings.Contains(updErr.Error(), "capture already issued") {
		t.Errorf("want the cancel refused because capture was issued, got %v", updErr)
	}
	if o.result.Status != order.Confirmed {
		t.Errorf("order should complete, got %+v", o.result)
	}
}

func TestCancelValidatorRefusesUnknownReason(t *testing.T) {
	s := &saga{view: order.View{Status: order.Reserved}}
	if err := s.validateCancel(order.CancelRequest{Reason: "because"}); err == nil {
		t.Error("an unknown reason was accepted")
	}
	for _, st := range []order.Status{order.Confirmed, order.Rejected, order.Cancelled, order.Failed} {
		s.view.Status = st
		if err := s.validateCancel(order.CancelRequest{Reason: order.ReasonAdmin}); err == nil {
			t.Errorf("cancel of a %s order was accepted", st)
		}
	}
}

func TestStatusQuery(t *testing.T) {
	w := newWorld()
	w.authorize = blockUntilCancelled
	env := newEnv()
	w.register(env)
	var view order.View
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(order.QueryStatus)
		if err != nil {
			t.Error(err)
			return
		}
		if err := v.Get(&view); err != nil {
			t.Error(err)
		}
		env.CancelWorkflow()
	}, time.Second)
	env.ExecuteWorkflow(OrderWorkflow, input())
	if view.Status != order.Reserved || view.Seq != 2 || view.CaptureIssued {
		t.Errorf("query while authorizing answered %+v", view)
	}
	// Cancelling the workflow itself (an operator in the UI) compensates too.
	var res order.Result
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Status != order.Cancelled || res.Reason != order.ReasonAdmin {
		t.Errorf("after workflow cancellation: %+v", res)
	}
	if w.called(order.VoidPayment.Name) != 1 || w.called(order.ReleaseStock.Name) != 1 {
		t.Errorf("undos after workflow cancellation: void %d, release %d", w.called(order.VoidPayment.Name), w.called(order.ReleaseStock.Name))
	}
}

func TestInputWithoutAnOrderIDFailsFast(t *testing.T) {
	w := newWorld()
	in := input()
	in.OrderID = ""
	o := execute(t, w, in, nil)
	var appErr *temporal.ApplicationError
	if !errors.As(o.err, &appErr) || appErr.Type() != order.ErrInvalidRequest {
		t.Errorf("want %s, got %v", order.ErrInvalidRequest, o.err)
	}
	if fmt.Sprint(w.records) != "[]" {
		t.Errorf("recorded %v for an input that names no order", w.records)
	}
}

// An order whose input is unusable still ends, visibly FAILED, instead of
// failing its workflow and staying PENDING.
func TestInvalidOrderInputEndsFailed(t *testing.T) {
	w := newWorld()
	in := input()
	in.Lines = nil
	o := execute(t, w, in, nil)
	if o.err != nil {
		t.Fatalf("workflow error: %v", o.err)
	}
	if o.result.Status != order.Failed {
		t.Errorf("result %+v, want FAILED", o.result)
	}
	if got := w.statuses(t); !slices.Equal(got, []string{"FAILED(step_failed)"}) {
		t.Errorf("recorded %v", got)
	}
	checkRan(t, w, nil)
}

// TestStalledDatabaseWhileRecording is the stall from issue 9: one try of
// a record hangs past the local activity's start-to-close (10 s). It used to
// be the whole budget, and the workflow failed with the order half done.
func TestStalledDatabaseWhileRecording(t *testing.T) {
	w := newWorld()
	w.record = func(ctx context.Context, rec order.StatusRecord, n int) error {
		if rec.Status == order.Confirmed && n == 1 {
			<-ctx.Done() // the database does not answer
			return ctx.Err()
		}
		return nil
	}
	o := execute(t, w, input(), nil)
	if o.err != nil {
		t.Fatalf("workflow error: %v", o.err)
	}
	if o.result.Status != order.Confirmed {
		t.Errorf("result %+v, want CONFIRMED", o.result)
	}
	if got := w.statuses(t); !slices.Equal(got, []string{"RESERVED", "AUTHORIZED", "CONFIRMED"}) {
		t.Errorf("recorded %v", got)
	}
}
