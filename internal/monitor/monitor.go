// Package monitor holds the monitoring figures of GET
// /api/v1/system/metrics: time series over the last 15 minutes, one point
// per step, ready for a dashboard to draw.
//
// Two kinds of figures make it up. What the orders and the relay did is
// the system-wide truth, so it is counted from the orders' events in
// PostgreSQL when a report is asked for (Orders). What exists only at a
// moment, or only in this process, is sampled every step into a ring in
// memory: this process's Prometheus metrics (the gateway's requests and
// latency, the Temporal SDK's schedule-to-start latency where it runs
// workers), the database's sessions and size, the hub's consumer lag, the
// task queues' backlogs. A process that has just started has sampled
// nothing yet, and a source that does not answer leaves its series null
// for that step: either way the report says so in a note and is never an
// error.
package monitor

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/outbox"
	"github.com/ordersaga/ordersaga/internal/postgres"
)

// Orders reads what the orders and the relay did, by interval
// (outbox.Log).
type Orders interface {
	Outcomes(ctx context.Context, from, to time.Time, step time.Duration) ([]outbox.Ended, []outbox.Latency, error)
	Published(ctx context.Context, from, to time.Time, step time.Duration) ([]outbox.Published, error)
}

// Database reads the orders database's own statistics (postgres.Stats).
type Database interface {
	Sessions(ctx context.Context) (postgres.Sessions, error)
	Size(ctx context.Context) (int64, error)
	SlowStatements(ctx context.Context, n int) ([]postgres.Statement, error)
}

// Sources are where the figures come from. A nil source leaves its charts
// null, with a note.
type Sources struct {
	Orders   Orders
	Database Database
	// Gatherer is this process's Prometheus registry: the gateway's
	// request metrics and, in a process that runs workers, the Temporal
	// SDK's.
	Gatherer prometheus.Gatherer
	// HubLag reads the websocket hub's Kafka consumer lag.
	HubLag func(ctx context.Context) (int64, error)
	// TaskQueues are the Temporal task queues whose backlog Backlog reads.
	TaskQueues []string
	Backlog    func(ctx context.Context, queue string) (Backlog, error)
}

// Options tune a Monitor. Zero values take the defaults.
type Options struct {
	// Step is the time between two points (default 5 s; whole seconds).
	Step time.Duration
	// Window is how far back a report goes (default 15 min).
	Window time.Duration
	// Timeout bounds each call to a source (default 3 s, at most Step).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *zap.Logger
}

// Monitor samples its sources every step and builds reports. Build it with
// New; Run samples until its context ends.
type Monitor struct {
	src     Sources
	step    time.Duration
	points  int
	timeout time.Duration
	now     func() time.Time
	log     *zap.Logger

	mu   sync.Mutex // guards what sample writes and reports read
	ring *ring
	// prev is the last reading of the cumulative metrics, which the next
	// turns into rates and quantiles.
	prev *reading
	// first and last are the times of the first and the latest sampling
	// rounds; zero before the first.
	first, last time.Time
	// failing says, by chart id, why the latest sample has no value.
	failing map[string]string

	// reportMu serialises the building of reports, so that the requests
	// of one step share one.
	reportMu               sync.Mutex
	cached                 *Report
	cachedEnd, cachedRound time.Time
}

// New returns a monitor over src.
func New(src Sources, opts Options) *Monitor {
	if opts.Step < time.Second {
		opts.Step = 5 * time.Second
	}
	opts.Step = opts.Step.Truncate(time.Second)
	if opts.Window < opts.Step {
		opts.Window = 15 * time.Minute
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Second
	}
	opts.Timeout = min(opts.Timeout, opts.Step)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	points := int(opts.Window / opts.Step)
	return &Monitor{
		src: src, step: opts.Step, points: points, timeout: opts.Timeout, now: opts.Now,
		log: opts.Log.With(zap.String("component", "monitor")), ring: newRing(opts.Step, points), failing: map[string]string{},
	}
}

// align returns the start of the step that t falls in.
func (m *Monitor) align(t time.Time) time.Time {
	secs := int64(m.step / time.Second)
	u := t.Unix()
	u -= ((u % secs) + secs) % secs
	return time.Unix(u, 0).UTC()
}

// Run samples the sources at the start of every step until ctx ends.
func (m *Monitor) Run(ctx context.Context) error {
	// A baseline reading of the registry now, so that the first step's
	// rates count what happens from the start, not from the first step.
	if base := m.read(m.now()); base != nil {
		m.mu.Lock()
		if m.prev == nil {
			m.prev = base
		}
		m.mu.Unlock()
	}
	for {
		next := m.align(m.now()).Add(m.step)
		wait := time.NewTimer(next.Sub(m.now()))
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil
		case <-wait.C:
		}
		m.sample(ctx, next)
	}
}

// Chart ids and series names of what is sampled.
const (
	chartRequests      = "gateway_requests"
	chartLatency       = "gateway_latency"
	chartConnections   = "postgres_connections"
	chartSize          = "postgres_size"
	chartLag           = "kafka_lag"
	chartBacklog       = "temporal_backlog"
	chartScheduleStart = "temporal_schedule_to_start"

	seriesRequests     = "requests"
	seriesServerErrors = "errors (5xx)"
	seriesClientErrors = "client errors (4xx)"
	seriesOpen         = "open"
	seriesActive       = "active"
	seriesSize         = "size"
	seriesHub          = "ws hub"
	seriesP50          = "p50"
	seriesP99          = "p99"
)

// httpMetric is the gateway's request histogram (gateway/middleware.go).
const httpMetric = "ordersaga_http_request_duration_seconds"

// The Temporal SDK's schedule-to-start histograms, found by stem so that
// a namespace prefix or a unit suffix (…_seconds, …_bucket) does not
// matter.
const (
	workflowTaskStem = "temporal_workflow_task_schedule_to_start_latency"
	activityStem     = "temporal_activity_schedule_to_start_latency"
)

// scheduleSeries are the series of temporal_schedule_to_start, by stem.
var scheduleSeries = []struct{ stem, p50, p99 string }{
	{workflowTaskStem, "workflow task p50", "workflow task p99"},
	{activityStem, "activity p50", "activity p99"},
}

// oldestWaiting ends the name of a schedule-to-start series that is the
// age of a queue's oldest waiting task, as the Temporal server counts it.
const oldestWaiting = ": oldest waiting task"

// Backlog is what the Temporal server says of one task queue: how many
// tasks wait, and how long the oldest of them has.
type Backlog struct {
	Tasks     int64
	OldestAge time.Duration
}

// reading is one reading of the cumulative metrics of the registry.
type reading struct {
	at                                   time.Time
	requests, serverErrors, clientErrors float64
	latency                              histogram
	schedule                             map[string]histogram // by stem
}

// sample takes one round of samples and stores it at at, the start of a
// step. The registry is read first, so that its rates cover the step up
// to at; the other sources are asked at once, each within the timeout.
func (m *Monitor) sample(ctx context.Context, at time.Time) {
	ts := at.Unix()
	values := map[key]float64{}
	failed := map[string]string{} // chart id → why
	ok := map[string]bool{}       // chart ids sampled
	var mu sync.Mutex
	put := func(chart, series string, v float64) {
		mu.Lock()
		defer mu.Unlock()
		values[key{chart, series}] = v
		ok[chart] = true
	}
	fail := func(chart, why string, err error) {
		mu.Lock()
		defer mu.Unlock()
		failed[chart] = why
		if err != nil {
			m.logFailure(chart, why, err)
		}
	}

	cur := m.read(at)
	m.mu.Lock()
	prev := m.prev
	m.prev = cur
	m.mu.Unlock()
	m.rates(cur, prev, put, fail)
	if cur != nil && len(cur.schedule) > 0 {
		// The histograms are there: a step in which no task started has
		// no quantiles, and that is not a failure to note.
		mu.Lock()
		ok[chartScheduleStart] = true
		mu.Unlock()
	}

	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	var wg sync.WaitGroup
	if db := m.src.Database; db != nil {
		wg.Go(func() {
			s, err := db.Sessions(ctx)
			if err != nil {
				fail(chartConnections, "the orders database did not answer", err)
				return
			}
			put(chartConnections, seriesOpen, float64(s.Open))
			put(chartConnections, seriesActive, float64(s.Active))
		})
		wg.Go(func() {
			n, err := db.Size(ctx)
			if err != nil {
				fail(chartSize, "the orders database did not answer", err)
				return
			}
			put(chartSize, seriesSize, float64(n))
		})
	} else {
		fail(chartConnections, "no database to read", nil)
		fail(chartSize, "no database to read", nil)
	}
	if hub := m.src.HubLag; hub != nil {
		wg.Go(func() {
			n, err := hub(ctx)
			if err != nil {
				fail(chartLag, "the ws hub's status did not answer", err)
				return
			}
			put(chartLag, seriesHub, float64(n))
		})
	} else {
		fail(chartLag, "no ws hub status is configured (WS_OPS_URL)", nil)
	}
	if backlog := m.src.Backlog; backlog != nil {
		for _, q := range m.src.TaskQueues {
			wg.Go(func() {
				n, err := backlog(ctx, q)
				if err != nil {
					fail(chartBacklog, "Temporal did not answer for task queue "+q, err)
					return
				}
				put(chartBacklog, q, float64(n.Tasks))
				// The server's own view of how long tasks wait: the only
				// schedule-to-start figure where this process runs no
				// worker (the SDK's histograms are the workers').
				put(chartScheduleStart, q+oldestWaiting, n.OldestAge.Seconds())
			})
		}
	} else {
		fail(chartBacklog, "no Temporal client", nil)
	}
	wg.Wait()

	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range values {
		m.ring.put(ts, k, v)
	}
	for chart := range ok {
		if _, bad := failed[chart]; !bad {
			if _, was := m.failing[chart]; was {
				m.log.Info("monitoring source answers again", zap.String("chart", chart))
			}
			delete(m.failing, chart)
		}
	}
	for chart, why := range failed {
		m.failing[chart] = why
	}
	if m.first.IsZero() {
		m.first = at
	}
	m.last = at
}

// logFailure logs a source's failure once, when it starts failing.
func (m *Monitor) logFailure(chart, why string, err error) {
	m.mu.Lock()
	_, was := m.failing[chart]
	m.mu.Unlock()
	if !was {
		m.log.Warn("monitoring source failed; its chart is null until it answers", zap.String("chart", chart), zap.String("why", why), zap.Error(err))
	}
}

// read takes a reading of the registry's cumulative metrics; nil without
// a registry or when it cannot be gathered at all.
func (m *Monitor) read(at time.Time) *reading {
	if m.src.Gatherer == nil {
		return nil
	}
	// Gather may return what it could with an error: use what it returned.
	families, err := m.src.Gatherer.Gather()
	if err != nil && len(families) == 0 {
		return nil
	}
	r := &reading{at: at, schedule: map[string]histogram{}}
	lat := merger{}
	for _, f := range families {
		if f.GetName() != httpMetric || f.GetType() != dto.MetricType_HISTOGRAM {
			continue
		}
		for _, metric := range f.GetMetric() {
			h := metric.GetHistogram()
			n := float64(h.GetSampleCount())
			r.requests += n
			switch status, _ := label(metric, "status"); {
			case len(status) == 3 && status[0] == '5':
				r.serverErrors += n
			case len(status) == 3 && status[0] == '4':
				r.clientErrors += n
			}
			lat.addHistogram(h)
		}
	}
	r.latency = lat.histogram(1)
	for _, s := range scheduleSeries {
		if h, ok := findHistogram(families, s.stem); ok {
			r.schedule[s.stem] = h
		}
	}
	return r
}

// rates turns two readings into the rates and quantiles of the step
// between them.
func (m *Monitor) rates(cur, prev *reading, put func(chart, series string, v float64), fail func(chart, why string, err error)) {
	if cur == nil {
		fail(chartRequests, "this process has no metrics registry", nil)
		fail(chartLatency, "this process has no metrics registry", nil)
		fail(chartScheduleStart, "this process has no metrics registry", nil)
		return
	}
	if len(cur.schedule) == 0 {
		fail(chartScheduleStart, "this process runs no Temporal worker, so its registry has no schedule-to-start histograms (each worker exports them on its /metrics)", nil)
	}
	if prev == nil || !cur.at.After(prev.at) {
		// A rate needs two readings: the first round has none before it.
		return
	}
	dt := cur.at.Sub(prev.at).Seconds()
	if d := cur.requests - prev.requests; d >= 0 {
		put(chartRequests, seriesRequests, d/dt)
		put(chartRequests, seriesServerErrors, max(cur.serverErrors-prev.serverErrors, 0)/dt)
		put(chartRequests, seriesClientErrors, max(cur.clientErrors-prev.clientErrors, 0)/dt)
	}
	// A step without requests has no latency: its points stay null.
	if d, ok := cur.latency.since(prev.latency); ok {
		quantiles(d, chartLatency, seriesP50, seriesP99, put)
	}
	for _, s := range scheduleSeries {
		h, ok := cur.schedule[s.stem]
		if !ok {
			continue
		}
		if d, ok := h.since(prev.schedule[s.stem]); ok {
			quantiles(d, chartScheduleStart, s.p50, s.p99, put)
		}
	}
}

// quantiles puts the p50 and p99 of d, if it counted anything.
func quantiles(d histogram, chart, p50, p99 string, put func(chart, series string, v float64)) {
	if v, ok := d.quantile(0.5); ok {
		put(chart, p50, v)
	}
	if v, ok := d.quantile(0.99); ok {
		put(chart, p99, v)
	}
}
