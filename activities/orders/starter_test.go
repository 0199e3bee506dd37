package orders

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/ordersaga/ordersaga/internal/localstack/ports"
	"github.com/ordersaga/ordersaga/internal/localstack/temporalserver"
	"github.com/ordersaga/ordersaga/internal/temporalsetup"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// starterFixture is a starter on the test's own database and Temporal
// namespace, with no workers: a started order's workflow waits, which is
// all these tests look at.
type starterFixture struct {
	pool    *pgxpool.Pool
	store   *Store
	client  client.Client
	reg     *prometheus.Registry
	starter *Starter
}

func newStarterFixture(t *testing.T, c client.Client) *starterFixture {
	t.Helper()
	pool := testkit.NewPool(t)
	f := &starterFixture{pool: pool, store: NewStore(pool), client: c, reg: prometheus.NewRegistry()}
	f.starter = NewStarter(f.store, c, StarterSettings{Interval: 200 * time.Millisecond}, testkit.Logger(), f.reg)
	return f
}

// place records an order as the gateway does when it cannot start its
// workflow: PENDING, seq 1, no workflow.
func (f *starterFixture) place(t *testing.T, lines int, name string) NewOrder {
	t.Helper()
	n := NewOrder{ID: uuid.New(), CustomerID: uuid.New(), PaymentMethod: "tok_ok", Currency: "USD"}
	for i := range lines {
		n.Lines = append(n.Lines, order.Line{SKU: fmt.Sprintf("SKU-%02d", i), Name: name, Quantity: 1, UnitPriceCents: 100})
	}
	if err := f.store.CreatePending(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	return n
}

// started reports whether the order is marked started and its workflow exists.
func (f *starterFixture) started(t *testing.T, id uuid.UUID) bool {
	t.Helper()
	var marked bool
	if err := f.pool.QueryRow(context.Background(), `SELECT workflow_started_at IS NOT NULL FROM orders.orders WHERE id = $1`, id).Scan(&marked); err != nil {
		t.Fatal(err)
	}
	_, err := f.client.DescribeWorkflowExecution(context.Background(), order.WorkflowID(id.String()), "")
	var notFound *serviceerror.NotFound
	if err != nil && !errors.As(err, &notFound) {
		t.Fatal(err)
	}
	return marked && err == nil
}

func (f *starterFixture) refusals(t *testing.T) int {
	t.Helper()
	n, err := testutil.GatherAndCount(f.reg, "ordersaga_starter_refused_total")
	if err != nil || n != 1 {
		t.Fatalf("the refusal counter is not registered: %d, %v", n, err)
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "ordersaga_starter_refused_total" {
			return int(mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	return -1
}

// TestStarterSkipsARefusedOrder: the oldest orphaned order is one that
// Temporal refuses to start (its input is over the server's 2 MB blob
// limit). The orders behind it are started all the same, among them one
// whose UI details would have been 40 KB uncapped; the refused one is
// counted, and not tried again until its backoff has passed.
func TestStarterSkipsARefusedOrder(t *testing.T) {
	addr, ns := testkit.NewNamespace(t)
	f := newStarterFixture(t, testkit.TemporalClient(t, addr, ns))
	ctx := context.Background()

	refused := f.place(t, 50, strings.Repeat("n", 45_000)) // 2.25 MB of input
	time.Sleep(5 * time.Millisecond)                       // strictly older than the rest
	longNames := f.place(t, 50, strings.Repeat("𝄞", 200))
	var normal []NewOrder
	for range 5 {
		normal = append(normal, f.place(t, 1, "Watch"))
	}

	n, err := f.starter.Once(ctx)
	if err != nil || n != 6 {
		t.Fatalf("first pass started %d orders (%v), want the 6 behind the refused one", n, err)
	}
	for _, o := range append(normal, longNames) {
		if !f.started(t, o.ID) {
			t.Errorf("order %s was not started", o.ID)
		}
	}
	if f.started(t, refused.ID) {
		t.Error("the oversized order was started")
	}
	if got := f.refusals(t); got != 1 {
		t.Errorf("refusals counted: %d, want 1", got)
	}

	// What operators see of the order with 50 long names: capped details.
	d, err := f.client.DescribeWorkflow(ctx, order.WorkflowID(longNames.ID.String()), "")
	if err != nil {
		t.Fatal(err)
	}
	details, err := d.GetStaticDetails()
	if err != nil {
		t.Fatal(err)
	}
	p, err := converter.GetDefaultDataConverter().ToPayload(details)
	if err != nil {
		t.Fatal(err)
	}
	if size := len(p.GetData()); size > order.DetailsLimit+2 || !strings.Contains(details, "more line(s)") {
		t.Errorf("details of %d bytes:\n%.300s", size, details)
	}

	// No hot loop: the refused order waits for its backoff.
	if n, err := f.starter.Once(ctx); err != nil || n != 0 {
		t.Errorf("second pass: %d, %v", n, err)
	}
	if got := f.refusals(t); got != 1 {
		t.Errorf("the refused order was tried again at once: %d refusals", got)
	}
	// Past its backoff it is tried again (and refused again).
	f.starter.now = func() time.Time { return time.Now().Add(refusedFirstDelay + time.Second) }
	if n, err := f.starter.Once(ctx); err != nil || n != 0 {
		t.Errorf("pass after the backoff: %d, %v", n, err)
	}
	if got := f.refusals(t); got != 2 {
		t.Errorf("after its backoff the refused order was tried %d times in all, want 2", got)
	}
	var status string
	var seq int
	if err := f.pool.QueryRow(ctx, `SELECT status, last_seq FROM orders.orders WHERE id = $1`, refused.ID).Scan(&status, &seq); err != nil || status != "PENDING" || seq != 1 {
		t.Errorf("the refused order is %s/%d (%v), want PENDING/1", status, seq, err)
	}
}

// TestStarterOnlyStartsOrdersThatNeverRan: an order past PENDING has had a
// workflow, even if its start was never marked; once Temporal has
// forgotten that workflow, the starter must not run the order again.
func TestStarterOnlyStartsOrdersThatNeverRan(t *testing.T) {
	addr, ns := testkit.NewNamespace(t)
	f := newStarterFixture(t, testkit.TemporalClient(t, addr, ns))
	ctx := context.Background()
	ran := f.place(t, 1, "Watch")
	if _, err := f.pool.Exec(ctx, `UPDATE orders.orders SET status = 'CONFIRMED', last_seq = 4 WHERE id = $1`, ran.ID); err != nil {
		t.Fatal(err)
	}
	fresh := f.place(t, 1, "Watch")
	if n, err := f.starter.Once(ctx); err != nil || n != 1 {
		t.Fatalf("started %d (%v), want 1", n, err)
	}
	if !f.started(t, fresh.ID) {
		t.Error("the pending order was not started")
	}
	if _, err := f.client.DescribeWorkflowExecution(ctx, order.WorkflowID(ran.ID.String()), ""); err == nil {
		t.Error("the order that already ran was started again")
	}
}

// TestStarterWaitsOutATemporalOutage: with Temporal down, a pass stops at
// the first order and counts nothing as refused; when Temporal is back,
// every order is started at once, with no backoff to wait out.
func TestStarterWaitsOutATemporalOutage(t *testing.T) {
	testkit.TemporalAddress(t) // the shared server proves the CLI is built
	port, err := ports.Free()
	if err != nil {
		t.Fatal(err)
	}
	dbFile := filepath.Join(t.TempDir(), "temporal.db")
	startServer := func() *temporalserver.Server {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		ts, err := temporalserver.Start(ctx, temporalserver.Options{DBFile: dbFile, Port: port})
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	ts := startServer()
	t.Cleanup(func() { ts.Stop() })
	c := testkit.TemporalClient(t, ts.Addr(), "default")
	if err := temporalsetup.EnsureSearchAttributes(context.Background(), c, "default"); err != nil {
		t.Fatal(err)
	}
	f := newStarterFixture(t, c)
	f.starter.startTimeout = time.Second
	var orders []NewOrder
	for range 3 {
		orders = append(orders, f.place(t, 1, "Watch"))
	}

	ts.Stop()
	ctx := context.Background()
	n, err := f.starter.Once(ctx)
	if err == nil || n != 0 || !temporalDown(err) {
		t.Fatalf("pass with Temporal down: started %d, %v", n, err)
	}
	if got := f.refusals(t); got != 0 {
		t.Errorf("an outage was counted as %d refusals", got)
	}

	ts = startServer()
	deadline := time.Now().Add(time.Minute)
	total := 0
	for total < len(orders) {
		n, err := f.starter.Once(ctx)
		total += n
		if err != nil && !temporalDown(err) {
			t.Fatalf("pass after the outage: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d orders started a minute after Temporal came back: %v", total, len(orders), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, o := range orders {
		if !f.started(t, o.ID) {
			t.Errorf("order %s was not started", o.ID)
		}
	}
	if got := f.refusals(t); got != 0 {
		t.Errorf("%d refusals", got)
	}
}

// An incident of the server stops a pass; only a refusal of the order's
// own request skips it.
func TestTemporalDownClassifiesStartErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		down bool
	}{
		{serviceerror.NewUnavailable("connection refused"), true},
		{serviceerror.NewInternal("persistence failure"), true},
		{serviceerror.NewNamespaceNotFound("orders"), true},
		{&serviceerror.ResourceExhausted{Cause: enumspb.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT, Message: "slow down"}, true},
		{fmt.Errorf("start: %w", context.DeadlineExceeded), true},
		{serviceerror.NewInvalidArgument("Blob data size exceeds limit."), false},
		{serviceerror.NewFailedPrecondition("bad"), false},
		{&serviceerror.ResourceExhausted{Message: "grpc: received message larger than max"}, false},
		{errors.New("payload encoding failed"), false},
	} {
		if got := temporalDown(fmt.Errorf("start workflow: %w", tc.err)); got != tc.down {
			t.Errorf("temporalDown(%v) = %v, want %v", tc.err, got, tc.down)
		}
	}
}
