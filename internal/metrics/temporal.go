package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
)

// LatencyBuckets are the bucket bounds, in seconds, of the Temporal SDK's
// timers (schedule-to-start, execution and request latencies): from a
// millisecond, which a worker that keeps up shows, to five minutes, which a
// queue nobody polls shows. OpenTelemetry's default bounds (0 to 10 000)
// suit milliseconds and would put every latency in seconds in the first
// bucket.
var LatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// TemporalSDK returns the metrics handler through which Temporal clients
// report the SDK's own metrics into reg, in Prometheus names: for example
// temporal_workflow_task_schedule_to_start_latency_seconds and
// temporal_activity_schedule_to_start_latency_seconds (histograms by
// namespace, task_queue, worker_type, …), temporal_num_pollers,
// temporal_worker_task_slots_used and the poll counters
// temporal_workflow_task_queue_poll_succeed_total,
// temporal_workflow_task_queue_poll_empty_total and
// temporal_activity_poll_no_task_total. A nil reg reports nothing.
//
// Build one per registry, in the process's composition root, and give it
// to every Temporal client of the process: the exporter is an unchecked
// Prometheus collector, so a second one in the same registry would report
// the same series twice and make every scrape fail. It panics on an error,
// which with these options only a programming error can cause (as Register
// does).
func TemporalSDK(reg prometheus.Registerer) client.MetricsHandler {
	if reg == nil {
		return client.MetricsNopHandler
	}
	exporter, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		// The process's own collectors describe it already; the
		// OpenTelemetry resource and scope would add a target_info series
		// and two labels on every series, saying "temporal-sdk-go" again.
		otelprom.WithoutTargetInfo(),
		otelprom.WithoutScopeInfo(),
	)
	if err != nil {
		panic(fmt.Sprintf("metrics: temporal SDK exporter: %v", err))
	}
	provider := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(exporter),
		sdkmetric.WithView(sdkmetric.NewView(
			sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: LatencyBuckets}},
		)),
	)
	return temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter: provider.Meter("temporal-sdk-go"),
		// The SDK's counters only go up: as OpenTelemetry counters they
		// are Prometheus counters (with _total), which rate() is for.
		UseMonotonicCounters: true,
		// A meter that refuses an instrument costs that one metric, not
		// the worker (the default panics); OpenTelemetry's error handler
		// logs it.
		OnError: otel.Handle,
	})
}
