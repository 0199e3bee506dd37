package workers_test

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/ordersaga/ordersaga/internal/testkit"
	sys "github.com/ordersaga/ordersaga/internal/testkit/system"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// TestWorkersExportTheSDKMetrics: once an order has gone through, the
// system's registry holds the Temporal SDK's schedule-to-start histograms
// of the task queues the order used, and the poller gauges, in the
// Prometheus names the dashboards query; and /metrics serves them.
func TestWorkersExportTheSDKMetrics(t *testing.T) {
	s := sys.Start(t, sys.Options{})
	s.Product("METRIC-1", 900, 5)
	token, _ := s.Customer()
	id := s.PlaceOrder(token, "METRIC-1", 1, "tok_ok")
	s.WaitStatus(token, id, 30*time.Second, "CONFIRMED")

	// The gateway exports the task-queue backlogs it last read, and its
	// monitoring reads them every 5 s: gather once that has happened.
	byName := map[string]*dto.MetricFamily{}
	testkit.WaitFor(t, "the gateway to have read the task-queue backlogs", 20*time.Second, func() bool {
		families, err := s.Registry.Gather()
		if err != nil {
			t.Fatalf("gather: %v", err)
		}
		clear(byName)
		for _, f := range families {
			byName[f.GetName()] = f
		}
		return byName["ordersaga_temporal_task_queue_backlog"] != nil
	})
	// observed is how many observations the histogram holds for the queue.
	observed := func(name, queue string) uint64 {
		f := byName[name]
		if f == nil {
			return 0
		}
		if f.GetType() != dto.MetricType_HISTOGRAM {
			t.Errorf("%s is a %s, want a histogram", name, f.GetType())
			return 0
		}
		var n uint64
		for _, m := range f.GetMetric() {
			if label(m, "task_queue") == queue && label(m, "namespace") == s.Namespace {
				n += m.GetHistogram().GetSampleCount()
			}
		}
		return n
	}
	for _, want := range []struct{ name, queue string }{
		{"temporal_activity_schedule_to_start_latency_seconds", order.TaskQueueProduct},
		{"temporal_activity_schedule_to_start_latency_seconds", order.TaskQueuePayment},
		{"temporal_workflow_task_schedule_to_start_latency_seconds", order.TaskQueueOrders},
	} {
		if n := observed(want.name, want.queue); n == 0 {
			t.Errorf("%s{task_queue=%q}: no observations after an order went through", want.name, want.queue)
		}
	}
	// The buckets are in seconds, fine enough to tell milliseconds apart.
	if f := byName["temporal_activity_schedule_to_start_latency_seconds"]; f != nil {
		b := f.GetMetric()[0].GetHistogram().GetBucket()
		if len(b) == 0 || b[0].GetUpperBound() != 0.001 {
			t.Errorf("buckets %v, want the first at 1 ms", b)
		}
	}
	pollers := map[string]bool{}
	if f := byName["temporal_num_pollers"]; f != nil {
		for _, m := range f.GetMetric() {
			if m.GetGauge().GetValue() > 0 {
				pollers[label(m, "task_queue")] = true
			}
		}
	}
	for _, q := range []string{order.TaskQueueOrders, order.TaskQueueProduct, order.TaskQueuePayment} {
		if !pollers[q] {
			t.Errorf("temporal_num_pollers{task_queue=%q}: none, want the worker's pollers", q)
		}
	}
	if f := byName["temporal_workflow_task_queue_poll_succeed_total"]; f == nil || f.GetType() != dto.MetricType_COUNTER {
		t.Errorf("temporal_workflow_task_queue_poll_succeed_total: %v, want a counter", f)
	}

	// Every Temporal series the Grafana dashboard queries is one the system
	// exports, in these names.
	dashboard, err := os.ReadFile("../deploy/grafana/dashboards/ordersaga.json")
	if err != nil {
		t.Fatal(err)
	}
	// Empty polls are counted when a long poll ends without a task, a
	// minute after it began: later than this test runs.
	later := map[string]bool{"temporal_workflow_task_queue_poll_empty_total": true, "temporal_activity_poll_no_task_total": true}
	queried := regexp.MustCompile(`\b(?:ordersaga_)?temporal_[a-z_]+`).FindAllString(string(dashboard), -1)
	if len(queried) < 5 {
		t.Errorf("the dashboard queries %v, want the Temporal panels", queried)
	}
	for _, name := range queried {
		name = strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count")
		if byName[name] == nil && !later[name] {
			t.Errorf("the dashboard queries %s, which the system does not export", name)
		}
	}

	// The gateway's /metrics serves the registry: one exporter, no series twice.
	resp, err := http.Get(s.GatewayURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `temporal_activity_schedule_to_start_latency_seconds_bucket{`) {
		t.Errorf("/metrics: %d, without the schedule-to-start buckets", resp.StatusCode)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
