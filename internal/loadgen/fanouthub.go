package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// HubSample is what the hub's /metrics said at one moment.
type HubSample struct {
	At time.Time
	// RSS is process_resident_memory_bytes; Heap and Stacks are
	// go_memstats_heap_inuse_bytes and go_memstats_stack_inuse_bytes.
	RSS, Heap, Stacks float64
	// CPU is process_cpu_seconds_total.
	CPU        float64
	Goroutines float64
	// Collected says the hub collected its garbage just before (its
	// /debug/pprof/heap?gc=1 does), so that Heap is live memory only.
	Collected bool
	// Queued and Writes are the hub's counts of events queued to clients
	// and of the socket writes that sent them (ordersaga_ws_events_delivered_total,
	// ordersaga_ws_socket_writes_total); zero if it exports none.
	Queued, Writes float64
	// Dispatch is the hub's histogram of the delay from produce to its
	// dispatch (ordersaga_ws_kafka_to_hub_seconds): the Kafka part of
	// the delay the clients see. Nil if the hub exports none.
	Dispatch *dto.Histogram
}

// HubFigures are the hub's samples: before the clients connected, once
// they were all subscribed, and after the events were delivered.
type HubFigures struct {
	Before, Connected, After HubSample
}

// PerConnection is the hub's memory per connection, from before the
// clients connected to once they were subscribed: resident memory, and
// the Go heap and goroutine stacks in use.
func (h HubFigures) PerConnection(clients int) (rss, heapAndStacks float64) {
	n := float64(max(clients, 1))
	return (h.Connected.RSS - h.Before.RSS) / n, (h.Connected.Heap + h.Connected.Stacks - h.Before.Heap - h.Before.Stacks) / n
}

// hubReader reads the hub's figures from its ops address.
type hubReader struct {
	http *http.Client
	base string
}

// sample collects the hub's garbage (if its ops address serves pprof)
// and reads its /metrics.
func (h *hubReader) sample(ctx context.Context) (HubSample, error) {
	var s HubSample
	// A heap profile with gc=1 runs a collection first: the heap in use
	// that follows is what the connections hold, not what their setup
	// left behind. Its body is not needed.
	if resp, err := h.get(ctx, "/debug/pprof/heap?gc=1"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		s.Collected = resp.StatusCode == http.StatusOK
	}
	resp, err := h.get(ctx, "/metrics")
	if err != nil {
		return s, fmt.Errorf("read the hub's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("read the hub's metrics: %s answered %s", h.base+"/metrics", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return s, fmt.Errorf("read the hub's metrics: %w", err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return s, fmt.Errorf("parse the hub's metrics: %w", err)
	}
	s.At = time.Now()
	for name, into := range map[string]*float64{
		"process_resident_memory_bytes": &s.RSS, "go_memstats_heap_inuse_bytes": &s.Heap, "go_memstats_stack_inuse_bytes": &s.Stacks,
		"process_cpu_seconds_total": &s.CPU, "go_goroutines": &s.Goroutines,
	} {
		v, ok := value(families[name])
		if !ok {
			return s, fmt.Errorf("the hub's metrics have no %s: is its registry built with metrics.NewRegistry?", name)
		}
		*into = v
	}
	s.Queued, _ = value(families["ordersaga_ws_events_delivered_total"])
	s.Writes, _ = value(families["ordersaga_ws_socket_writes_total"])
	if mf := families["ordersaga_ws_kafka_to_hub_seconds"]; mf != nil && len(mf.GetMetric()) == 1 {
		s.Dispatch = mf.GetMetric()[0].GetHistogram()
	}
	return s, nil
}

// FramesPerWrite is how many frames the hub sent per socket write during
// the run: above one when its writers find several queued, which is when
// it runs short of time to write each as it comes. Zero if unknown.
func (h HubFigures) FramesPerWrite() float64 {
	if w := h.After.Writes - h.Connected.Writes; w > 0 {
		return (h.After.Queued - h.Connected.Queued) / w
	}
	return 0
}

// DispatchDelay is the mean and the 99th percentile (the upper bound of
// its bucket) of the delay from produce to the hub's dispatch, between
// the clients' subscription and the end of the run; ok is false if the
// hub exports no such histogram or dispatched nothing.
func (h HubFigures) DispatchDelay() (mean, p99 time.Duration, ok bool) {
	a, b := h.Connected.Dispatch, h.After.Dispatch
	if a == nil || b == nil || b.GetSampleCount() <= a.GetSampleCount() {
		return 0, 0, false
	}
	n := b.GetSampleCount() - a.GetSampleCount()
	seconds := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	mean = seconds((b.GetSampleSum() - a.GetSampleSum()) / float64(n))
	p99 = time.Duration(math.MaxInt64)
	for i, bk := range b.GetBucket() {
		if i < len(a.GetBucket()) && float64(bk.GetCumulativeCount()-a.GetBucket()[i].GetCumulativeCount()) >= 0.99*float64(n) {
			p99 = seconds(bk.GetUpperBound())
			break
		}
	}
	return mean, p99, true
}

func (h *hubReader) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+path, nil)
	if err != nil {
		return nil, err
	}
	// The text format: the one the parser reads.
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	return h.http.Do(req)
}

// value is the value of a family's single, unlabelled series.
func value(mf *dto.MetricFamily) (float64, bool) {
	if mf == nil || len(mf.GetMetric()) != 1 {
		return 0, false
	}
	m := mf.GetMetric()[0]
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), true
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	case m.Untyped != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}
