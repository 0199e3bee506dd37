package monitor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/outbox"
	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// Report is the body of GET /api/v1/system/metrics (MetricsReport in
// gateway/openapi.json). Every series has one value per timestamp, null
// where nothing is known. A report is shared by every request of its
// step: do not change it.
type Report struct {
	// StepSeconds is the time between two timestamps.
	StepSeconds int64 `json:"step_seconds"`
	// Timestamps are the ends of the steps, in Unix seconds, oldest
	// first: a rate at t is over [t - step, t), a sampled value was read
	// at t.
	Timestamps     []int64     `json:"timestamps"`
	Charts         []Chart     `json:"charts"`
	SlowStatements []Statement `json:"slow_statements"`
	// Notes say what is missing and why.
	Notes []string `json:"notes"`
}

// Chart is one figure: the series a dashboard draws together.
type Chart struct {
	ID     string   `json:"id"`
	Title  string   `json:"title"`
	Unit   string   `json:"unit"`
	Series []Series `json:"series"`
}

// Series is one line of a chart: a value (or null) per timestamp.
type Series struct {
	Name   string     `json:"name"`
	Values []*float64 `json:"values"`
}

// Statement is one of the slowest statements on the orders database.
type Statement struct {
	Query   string  `json:"query"`
	Calls   int64   `json:"calls"`
	MeanMS  float64 `json:"mean_ms"`
	TotalMS float64 `json:"total_ms"`
}

// The charts counted from the orders' events.
const (
	chartOrders       = "orders"
	chartOrderLatency = "order_latency"
	chartEvents       = "kafka_events"
	chartBytes        = "kafka_bytes"
	seriesPublished   = "published"
)

// slowStatements is how many statements a report lists.
const slowStatements = 10

// rejectionReasons are the reasons API.md gives for REJECTED: each has a
// series of its own in the orders chart even at zero, so that the chart
// keeps its shape; another reason that shows up gets a series too.
var rejectionReasons = []order.Reason{
	order.ReasonOutOfStock, order.ReasonPaymentDeclined, order.ReasonInsufficientFunds, order.ReasonCaptureFailed, order.ReasonTimeout,
}

// Report returns the report of the latest step. It is built once per
// step, whoever asks and however many: later callers of the step get the
// same one (built again only if a sampling round lands after it, as just
// after the start). It never fails: what a source could not give is null,
// with a note.
func (m *Monitor) Report(ctx context.Context) *Report {
	end, round := m.reportEnd()
	m.reportMu.Lock()
	defer m.reportMu.Unlock()
	if m.cached != nil && m.cachedEnd.Equal(end) && m.cachedRound.Equal(round) {
		return m.cached
	}
	// The report is shared: a caller that goes away must not cut it short.
	m.cached, m.cachedEnd, m.cachedRound = m.build(context.WithoutCancel(ctx), end), end, round
	return m.cached
}

// reportEnd returns the last timestamp of a report asked for now, and the
// latest sampling round. The end is that round while the sampler keeps up,
// so that a report is not built before the round of its step is in; else
// the start of the current step (before the first round, or if sampling
// stopped). A report is built again only when either changes.
func (m *Monitor) reportEnd() (end, round time.Time) {
	now := m.align(m.now())
	m.mu.Lock()
	last := m.last
	m.mu.Unlock()
	if !last.IsZero() && !last.After(now) && now.Sub(last) <= m.step {
		return last, last
	}
	return now, last
}

// build computes the report whose last timestamp is end.
func (m *Monitor) build(ctx context.Context, end time.Time) *Report {
	secs := int64(m.step / time.Second)
	first := end.Add(-time.Duration(m.points-1) * m.step)
	r := &Report{StepSeconds: secs, Timestamps: make([]int64, m.points), SlowStatements: []Statement{}, Notes: []string{}}
	for i := range r.Timestamps {
		r.Timestamps[i] = first.Unix() + int64(i)*secs
	}
	// slot returns the index of the timestamp that ends the bucket
	// starting at b, or false if it is outside the report.
	slot := func(b time.Time) (int, bool) {
		i := (b.Unix() + secs - first.Unix()) / secs
		return int(i), i >= 0 && i < int64(m.points)
	}

	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	from := first.Add(-m.step) // the start of the first bucket
	var (
		wg                      sync.WaitGroup
		ended                   []outbox.Ended
		latency                 []outbox.Latency
		published               []outbox.Published
		statements              []postgres.Statement
		outcomesErr, publishErr error
		statementsErr           error
	)
	if o := m.src.Orders; o != nil {
		wg.Go(func() { ended, latency, outcomesErr = o.Outcomes(ctx, from, end, m.step) })
		wg.Go(func() { published, publishErr = o.Published(ctx, from, end, m.step) })
	} else {
		outcomesErr, publishErr = errNoSource, errNoSource
	}
	if db := m.src.Database; db != nil {
		wg.Go(func() { statements, statementsErr = db.SlowStatements(ctx, slowStatements) })
	} else {
		statementsErr = errNoSource
	}
	wg.Wait()

	// orders and order_latency, from the orders' events.
	ordersChart := Chart{ID: chartOrders, Title: "Orders ended, by outcome", Unit: "orders/s"}
	latencyChart := Chart{ID: chartOrderLatency, Title: "Placement to terminal status", Unit: "s",
		Series: []Series{m.nulls(seriesP50), m.nulls(seriesP99)}}
	if outcomesErr != nil {
		why := m.sourceFailure("the orders database did not answer", outcomesErr)
		r.note(chartOrders, why)
		r.note(chartOrderLatency, why)
		for _, name := range outcomeNames(nil) {
			ordersChart.Series = append(ordersChart.Series, m.nulls(name))
		}
	} else {
		names := outcomeNames(ended)
		byName := map[string]int{}
		for i, name := range names {
			byName[name] = i
			ordersChart.Series = append(ordersChart.Series, m.zeros(name))
		}
		for _, e := range ended {
			if i, ok := slot(e.Bucket); ok {
				// Cancelled and failed orders of every reason share a series.
				v := ordersChart.Series[byName[outcomeName(e.Status, e.Reason)]].Values
				v[i] = num(*v[i] + float64(e.Orders)/float64(secs))
			}
		}
		for _, l := range latency {
			if i, ok := slot(l.Bucket); ok {
				latencyChart.Series[0].Values[i] = num(l.P50.Seconds())
				latencyChart.Series[1].Values[i] = num(l.P99.Seconds())
			}
		}
	}
	r.Charts = append(r.Charts, ordersChart, latencyChart)

	// kafka_events and kafka_bytes, from the relay's marks.
	eventsChart := Chart{ID: chartEvents, Title: "Events published to Kafka", Unit: "events/s"}
	bytesChart := Chart{ID: chartBytes, Title: "Bytes published to Kafka (keys and values)", Unit: "bytes/s"}
	if publishErr != nil {
		why := m.sourceFailure("the orders database did not answer", publishErr)
		r.note(chartEvents, why)
		r.note(chartBytes, why)
		eventsChart.Series = []Series{m.nulls(seriesPublished)}
		bytesChart.Series = []Series{m.nulls(seriesPublished)}
	} else {
		eventsChart.Series = []Series{m.zeros(seriesPublished)}
		bytesChart.Series = []Series{m.zeros(seriesPublished)}
		for _, p := range published {
			if i, ok := slot(p.Bucket); ok {
				eventsChart.Series[0].Values[i] = num(float64(p.Events) / float64(secs))
				bytesChart.Series[0].Values[i] = num(float64(p.Bytes) / float64(secs))
			}
		}
	}

	// The sampled charts, from the ring.
	m.mu.Lock()
	sampled := func(id, title, unit string, series ...string) Chart {
		c := Chart{ID: id, Title: title, Unit: unit}
		for _, name := range series {
			s := m.nulls(name)
			for i, t := range r.Timestamps {
				if v, ok := m.ring.get(t, key{id, name}); ok {
					s.Values[i] = num(v)
				}
			}
			c.Series = append(c.Series, s)
		}
		if why, ok := m.failing[id]; ok {
			r.note(id, why)
		}
		return c
	}
	var schedule []string
	for _, s := range scheduleSeries {
		schedule = append(schedule, s.p50, s.p99)
	}
	for _, q := range m.src.TaskQueues {
		schedule = append(schedule, q+oldestWaiting)
	}
	r.Charts = append(r.Charts,
		sampled(chartRequests, "Gateway requests", "requests/s", seriesRequests, seriesServerErrors, seriesClientErrors),
		sampled(chartLatency, "Gateway latency", "s", seriesP50, seriesP99),
		sampled(chartConnections, "PostgreSQL sessions on the orders database", "connections", seriesOpen, seriesActive),
		sampled(chartSize, "PostgreSQL orders database size", "bytes", seriesSize),
		eventsChart, bytesChart,
		sampled(chartLag, "Kafka consumer lag of the ws hub", "records", seriesHub),
		sampled(chartBacklog, "Temporal task-queue backlog", "tasks", m.src.TaskQueues...),
		sampled(chartScheduleStart, "Temporal schedule-to-start latency", "s", schedule...),
	)
	switch {
	case m.first.IsZero():
		r.Notes = append(r.Notes, fmt.Sprintf("sampled charts (%s): nothing sampled yet; the first sample is taken within %s of the start", sampledIDs, m.step))
	case m.first.Unix() > first.Unix():
		r.Notes = append(r.Notes, fmt.Sprintf("sampled charts (%s): sampled in memory since %s, null before", sampledIDs, m.first.Format(time.RFC3339)))
	}
	m.mu.Unlock()

	switch {
	case statementsErr == nil:
		for _, s := range statements {
			r.SlowStatements = append(r.SlowStatements, Statement{Query: s.Query, Calls: s.Calls, MeanMS: round(s.MeanMS), TotalMS: round(s.TotalMS)})
		}
	case errors.Is(statementsErr, postgres.ErrNoStatementStats):
		r.note("slow_statements", "pg_stat_statements is not available on the orders database: it needs shared_preload_libraries = 'pg_stat_statements' and CREATE EXTENSION pg_stat_statements")
	default:
		r.note("slow_statements", m.sourceFailure("the orders database did not answer", statementsErr))
	}
	return r
}

// sampledIDs names the charts sampled in memory, for notes.
var sampledIDs = strings.Join([]string{chartRequests, chartLatency, chartConnections, chartSize, chartLag, chartBacklog, chartScheduleStart}, ", ")

// errNoSource stands for a source the monitor was not given.
var errNoSource = errors.New("not configured")

// sourceFailure returns why, or "not configured" for a missing source; it
// logs a real failure.
func (m *Monitor) sourceFailure(why string, err error) string {
	if errors.Is(err, errNoSource) {
		return "not configured"
	}
	m.log.Warn("monitoring query failed; its charts are null in this report", zap.String("why", why), zap.Error(err))
	return why
}

func (r *Report) note(chart, why string) { r.Notes = append(r.Notes, chart+": "+why) }

// outcomeName is the series of an outcome: the status in lower case, and
// for a rejection its reason ("rejected:out_of_stock").
func outcomeName(s order.Status, reason order.Reason) string {
	name := strings.ToLower(string(s))
	if s == order.Rejected && reason != order.ReasonNone {
		name += ":" + string(reason)
	}
	return name
}

// outcomeNames are the series of the orders chart: every terminal status
// and rejection reason API.md names, then any other outcome in ended.
func outcomeNames(ended []outbox.Ended) []string {
	var names []string
	for _, s := range order.TerminalStatuses() {
		if s == order.Rejected {
			for _, r := range rejectionReasons {
				names = append(names, outcomeName(s, r))
			}
			continue
		}
		names = append(names, outcomeName(s, order.ReasonNone))
	}
	var extra []string
	for _, e := range ended {
		if n := outcomeName(e.Status, e.Reason); !slices.Contains(names, n) && !slices.Contains(extra, n) {
			extra = append(extra, n)
		}
	}
	slices.Sort(extra)
	return append(names, extra...)
}

func (m *Monitor) nulls(name string) Series {
	return Series{Name: name, Values: make([]*float64, m.points)}
}

func (m *Monitor) zeros(name string) Series {
	s := m.nulls(name)
	for i := range s.Values {
		s.Values[i] = num(0)
	}
	return s
}

// num returns v rounded to 6 significant digits, enough for a chart and
// short in JSON; null for a value that is not a number.
func num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	v = round(v)
	return &v
}

func round(v float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 6, 64), 64)
	return r
}
