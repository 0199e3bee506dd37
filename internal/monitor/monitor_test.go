package monitor

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordersaga/ordersaga/internal/outbox"
	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// fakeOrders answers with fixed figures and counts the calls.
type fakeOrders struct {
	ended     []outbox.Ended
	latency   []outbox.Latency
	published []outbox.Published
	err       error
	calls     atomic.Int64
}

func (f *fakeOrders) Outcomes(ctx context.Context, from, to time.Time, step time.Duration) ([]outbox.Ended, []outbox.Latency, error) {
	f.calls.Add(1)
	return f.ended, f.latency, f.err
}

func (f *fakeOrders) Published(ctx context.Context, from, to time.Time, step time.Duration) ([]outbox.Published, error) {
	return f.published, f.err
}

type fakeDatabase struct {
	sessions postgres.Sessions
	size     int64
	slow     []postgres.Statement
	slowErr  error
	err      error
}

func (f *fakeDatabase) Sessions(context.Context) (postgres.Sessions, error) { return f.sessions, f.err }
func (f *fakeDatabase) Size(context.Context) (int64, error)                 { return f.size, f.err }
func (f *fakeDatabase) SlowStatements(context.Context, int) ([]postgres.Statement, error) {
	return f.slow, f.slowErr
}

// t0 is the start of a step.
var t0 = time.Unix(1_800_000_000, 0).UTC()

// series returns the values of a chart's series in r.
func series(t *testing.T, r *Report, chart, name string) []*float64 {
	t.Helper()
	for _, c := range r.Charts {
		if c.ID != chart {
			continue
		}
		for _, s := range c.Series {
			if s.Name == name {
				return s.Values
			}
		}
		t.Fatalf("chart %s has no series %q", chart, name)
	}
	t.Fatalf("no chart %s", chart)
	return nil
}

// last is the last value of a series, -1 for null.
func last(vs []*float64) float64 {
	if v := vs[len(vs)-1]; v != nil {
		return *v
	}
	return -1
}

func hasNote(r *Report, prefix string) bool {
	return slices.ContainsFunc(r.Notes, func(n string) bool { return strings.HasPrefix(n, prefix) })
}

func TestSampledFigures(t *testing.T) {
	reg := prometheus.NewRegistry()
	http := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: httpMetric, Buckets: []float64{.01, .1, 1}}, []string{"method", "route", "status"})
	reg.MustRegister(http)
	clk := &clock{t: t0.Add(2 * time.Second)}
	hubDown := errors.New("connection refused")
	m := New(Sources{
		Gatherer:   reg,
		Database:   &fakeDatabase{sessions: postgres.Sessions{Open: 7, Active: 2}, size: 12_345_678},
		HubLag:     func(context.Context) (int64, error) { return 0, hubDown },
		Orders:     &fakeOrders{},
		TaskQueues: []string{"orders", "payment"},
		Backlog: func(_ context.Context, q string) (Backlog, error) {
			if q == "payment" {
				return Backlog{}, errors.New("unavailable")
			}
			return Backlog{Tasks: 3, OldestAge: 1500 * time.Millisecond}, nil
		},
	}, Options{Now: clk.Now})

	// Just started: nothing sampled, every sampled series null, a note.
	r := m.Report(context.Background())
	if len(r.Timestamps) != 180 || r.StepSeconds != 5 || r.Timestamps[179] != t0.Unix() || r.Timestamps[0] != t0.Unix()-179*5 {
		t.Fatalf("timestamps: %d from %d to %d, step %d", len(r.Timestamps), r.Timestamps[0], r.Timestamps[len(r.Timestamps)-1], r.StepSeconds)
	}
	for _, c := range r.Charts {
		for _, s := range c.Series {
			if len(s.Values) != 180 {
				t.Errorf("%s/%s has %d values, want 180", c.ID, s.Name, len(s.Values))
			}
		}
	}
	if last(series(t, r, chartConnections, seriesOpen)) != -1 || !hasNote(r, "sampled charts") {
		t.Errorf("before any sample: connections %v, notes %q", last(series(t, r, chartConnections, seriesOpen)), r.Notes)
	}

	// The first round: gauges are in, rates need a second reading.
	http.WithLabelValues("GET", "/a", "200").Observe(0.005)
	m.sample(context.Background(), t0.Add(5*time.Second))
	for range 8 {
		http.WithLabelValues("GET", "/a", "200").Observe(0.005)
	}
	http.WithLabelValues("GET", "/a", "503").Observe(0.5)
	http.WithLabelValues("POST", "/b", "404").Observe(0.05)
	m.sample(context.Background(), t0.Add(10*time.Second))
	clk.Set(t0.Add(11 * time.Second))
	r = m.Report(context.Background())

	if r.Timestamps[179] != t0.Add(10*time.Second).Unix() {
		t.Fatalf("last timestamp %d, want the latest round %d", r.Timestamps[179], t0.Add(10*time.Second).Unix())
	}
	checks := []struct {
		chart, series string
		at            int // index from the end
		want          float64
	}{
		{chartRequests, seriesRequests, 0, 10.0 / 5},
		{chartRequests, seriesServerErrors, 0, 1.0 / 5},
		{chartRequests, seriesClientErrors, 0, 1.0 / 5},
		{chartRequests, seriesRequests, 1, -1}, // the first round has no rate
		{chartLatency, seriesP50, 0, 0.00625},  // 8 of 10 in (0, 0.01]: rank 5 → 0.01*5/8
		{chartLatency, seriesP99, 0, 0.91},     // rank 9.9 of 10: in (0.1, 1], which holds the 10th
		{chartConnections, seriesOpen, 0, 7},
		{chartConnections, seriesActive, 0, 2},
		{chartConnections, seriesOpen, 1, 7},
		{chartConnections, seriesOpen, 2, -1}, // before the first round
		{chartSize, seriesSize, 0, 12_345_700},
		{chartLag, seriesHub, 0, -1},
		{chartBacklog, "orders", 0, 3},
		{chartBacklog, "payment", 0, -1},
		{chartScheduleStart, "activity p50", 0, -1},
		// The server's view stands in where this process runs no worker.
		{chartScheduleStart, "orders: oldest waiting task", 0, 1.5},
		{chartScheduleStart, "payment: oldest waiting task", 0, -1},
	}
	for _, c := range checks {
		vs := series(t, r, c.chart, c.series)
		got := -1.0 // null
		if v := vs[len(vs)-1-c.at]; v != nil {
			got = *v
		}
		if math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s/%s at -%d = %v, want %v (-1 is null)", c.chart, c.series, c.at, got, c.want)
		}
	}
	for _, n := range []string{"kafka_lag: the ws hub's status did not answer", "temporal_backlog: Temporal did not answer", "temporal_schedule_to_start: this process runs no Temporal worker", "sampled charts"} {
		if !hasNote(r, n) {
			t.Errorf("no note %q in %q", n, r.Notes)
		}
	}

	// The hub answers again: its note goes, its series has a value.
	m.src.HubLag = func(context.Context) (int64, error) { return 42, nil }
	m.sample(context.Background(), t0.Add(15*time.Second))
	clk.Set(t0.Add(15 * time.Second))
	r = m.Report(context.Background())
	if last(series(t, r, chartLag, seriesHub)) != 42 || hasNote(r, "kafka_lag") {
		t.Errorf("hub back: lag %v, notes %q", last(series(t, r, chartLag, seriesHub)), r.Notes)
	}
	if got := series(t, r, chartLatency, seriesP50); got[len(got)-1] != nil {
		t.Errorf("a step without requests has latency %v, want null", *got[len(got)-1])
	}
}

func TestOrdersFromEvents(t *testing.T) {
	end := t0
	orders := &fakeOrders{
		ended: []outbox.Ended{
			{Bucket: end.Add(-5 * time.Second), Status: order.Confirmed, Orders: 10},
			{Bucket: end.Add(-5 * time.Second), Status: order.Rejected, Reason: order.ReasonPaymentDeclined, Orders: 2},
			{Bucket: end.Add(-5 * time.Second), Status: order.Cancelled, Reason: order.ReasonCustomer, Orders: 1},
			{Bucket: end.Add(-5 * time.Second), Status: order.Cancelled, Reason: order.ReasonAdmin, Orders: 2},
			{Bucket: end.Add(-10 * time.Second), Status: order.Rejected, Reason: order.ReasonStepFailed, Orders: 1},
			{Bucket: end.Add(-time.Hour), Status: order.Confirmed, Orders: 99}, // outside the window
		},
		latency: []outbox.Latency{
			{Bucket: end.Add(-5 * time.Second), Orders: 15, P50: 1500 * time.Millisecond, P99: 4 * time.Second},
		},
		published: []outbox.Published{{Bucket: end.Add(-10 * time.Second), Events: 20, Bytes: 5000}},
	}
	clk := &clock{t: end.Add(time.Second)}
	m := New(Sources{Orders: orders}, Options{Now: clk.Now})
	r := m.Report(context.Background())

	checks := []struct {
		chart, series string
		at            int
		want          float64
	}{
		{"orders", "confirmed", 0, 2},
		{"orders", "confirmed", 1, 0},
		{"orders", "rejected:payment_declined", 0, 0.4},
		{"orders", "rejected:out_of_stock", 0, 0},
		{"orders", "cancelled", 0, 0.6},
		{"orders", "failed", 0, 0},
		{"orders", "rejected:step_failed", 1, 0.2},
		{"order_latency", "p50", 0, 1.5},
		{"order_latency", "p99", 0, 4},
		{"order_latency", "p50", 1, -1},
		{"kafka_events", "published", 1, 4},
		{"kafka_bytes", "published", 1, 1000},
		{"kafka_events", "published", 0, 0},
	}
	for _, c := range checks {
		vs := series(t, r, c.chart, c.series)
		got := -1.0
		if v := vs[len(vs)-1-c.at]; v != nil {
			got = *v
		}
		if got != c.want {
			t.Errorf("%s/%s at -%d = %v, want %v", c.chart, c.series, c.at, got, c.want)
		}
	}
	var names []string
	for _, s := range r.Charts[0].Series {
		names = append(names, s.Name)
	}
	want := "confirmed rejected:out_of_stock rejected:payment_declined rejected:insufficient_funds rejected:capture_failed rejected:timeout cancelled failed rejected:step_failed"
	if strings.Join(names, " ") != want {
		t.Errorf("orders series: %s\nwant %s", strings.Join(names, " "), want)
	}
	var ids []string
	for _, c := range r.Charts {
		ids = append(ids, c.ID)
	}
	if got := strings.Join(ids, " "); got != "orders order_latency gateway_requests gateway_latency postgres_connections postgres_size kafka_events kafka_bytes kafka_lag temporal_backlog temporal_schedule_to_start" {
		t.Errorf("charts: %s", got)
	}
	if !hasNote(r, "slow_statements: not configured") {
		t.Errorf("notes %q", r.Notes)
	}
}

func TestReportOncePerStep(t *testing.T) {
	orders := &fakeOrders{}
	clk := &clock{t: t0.Add(time.Second)}
	m := New(Sources{Orders: orders}, Options{Now: clk.Now})
	a := m.Report(context.Background())
	clk.Set(t0.Add(4 * time.Second))
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if b := m.Report(context.Background()); b != a {
				t.Error("a report of the same step was built again")
			}
		})
	}
	wg.Wait()
	if n := orders.calls.Load(); n != 1 {
		t.Errorf("%d computations in one step, want 1", n)
	}
	// The next step: computed again, once.
	clk.Set(t0.Add(5 * time.Second))
	if b := m.Report(context.Background()); b == a || b.Timestamps[179] != t0.Add(5*time.Second).Unix() {
		t.Error("the next step reused the last report")
	}
	// While the sampler keeps up, a report waits for the round of its step:
	// just after a boundary it is still the previous round's.
	m.sample(context.Background(), t0.Add(10*time.Second))
	clk.Set(t0.Add(15*time.Second + 10*time.Millisecond))
	if b := m.Report(context.Background()); b.Timestamps[179] != t0.Add(10*time.Second).Unix() {
		t.Errorf("report ends at %d before the round of its step, want %d", b.Timestamps[179], t0.Add(10*time.Second).Unix())
	}
	if n := orders.calls.Load(); n != 3 {
		t.Errorf("%d computations, want 3", n)
	}
}

func TestReportAfterTheFirstRound(t *testing.T) {
	clk := &clock{t: t0.Add(time.Second)}
	m := New(Sources{Database: &fakeDatabase{size: 10}}, Options{Now: clk.Now})
	if r := m.Report(context.Background()); last(series(t, r, chartSize, seriesSize)) != -1 {
		t.Fatal("a size before any sample")
	}
	// The first round lands in the step of that report: it is built again.
	m.sample(context.Background(), t0)
	if r := m.Report(context.Background()); last(series(t, r, chartSize, seriesSize)) != 10 {
		t.Errorf("size %v after the first round, want 10", last(series(t, r, chartSize, seriesSize)))
	}
}

func TestSourcesDown(t *testing.T) {
	down := errors.New("connection refused")
	clk := &clock{t: t0}
	m := New(Sources{
		Orders:   &fakeOrders{err: down},
		Database: &fakeDatabase{err: down, slowErr: down},
	}, Options{Now: clk.Now})
	m.sample(context.Background(), t0)
	r := m.Report(context.Background())
	for _, id := range []string{"orders", "order_latency", "kafka_events", "kafka_bytes", chartConnections, chartSize} {
		for _, c := range r.Charts {
			if c.ID != id {
				continue
			}
			for _, s := range c.Series {
				if slices.ContainsFunc(s.Values, func(v *float64) bool { return v != nil }) {
					t.Errorf("%s/%s has values while its source is down", id, s.Name)
				}
			}
		}
		if !hasNote(r, id+": ") {
			t.Errorf("no note for %s in %q", id, r.Notes)
		}
	}
	if !hasNote(r, "slow_statements: the orders database did not answer") {
		t.Errorf("notes %q", r.Notes)
	}
	if len(r.SlowStatements) != 0 {
		t.Errorf("slow statements %v", r.SlowStatements)
	}

	m.src.Database = &fakeDatabase{slowErr: postgres.ErrNoStatementStats}
	clk.Set(t0.Add(time.Minute))
	if r := m.Report(context.Background()); !hasNote(r, "slow_statements: pg_stat_statements is not available") {
		t.Errorf("notes %q", r.Notes)
	}
}

func TestScheduleToStartFromSDKMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	wft := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "temporal_workflow_task_schedule_to_start_latency_seconds", Buckets: []float64{.01, .1, 1}},
		[]string{"task_queue", "namespace"})
	reg.MustRegister(wft)
	clk := &clock{t: t0}
	m := New(Sources{Gatherer: reg}, Options{Now: clk.Now})
	wft.WithLabelValues("orders", "default").Observe(0.05)
	m.sample(context.Background(), t0)
	for range 4 {
		wft.WithLabelValues("orders", "default").Observe(0.05)
	}
	m.sample(context.Background(), t0.Add(5*time.Second))
	clk.Set(t0.Add(5 * time.Second))
	r := m.Report(context.Background())
	if got := last(series(t, r, chartScheduleStart, "workflow task p50")); math.Abs(got-0.055) > 1e-9 {
		t.Errorf("workflow task p50 = %v, want 0.055", got)
	}
	if got := last(series(t, r, chartScheduleStart, "activity p50")); got != -1 {
		t.Errorf("activity p50 = %v, want null (no activity histogram)", got)
	}
	if hasNote(r, chartScheduleStart) {
		t.Errorf("notes %q", r.Notes)
	}
}

func TestRunSamplesOnStepBoundaries(t *testing.T) {
	var at []time.Time
	var mu sync.Mutex
	m := New(Sources{Database: &fakeDatabase{size: 1}}, Options{Step: time.Second})
	m.src.HubLag = func(context.Context) (int64, error) {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	_ = m.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(at) < 2 {
		t.Fatalf("%d rounds in 2.5 s with a step of 1 s", len(at))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last.Nanosecond() != 0 || m.first.Nanosecond() != 0 {
		t.Errorf("rounds stored at %v and %v, want whole seconds", m.first, m.last)
	}
}
