package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
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
	return s, nil
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
