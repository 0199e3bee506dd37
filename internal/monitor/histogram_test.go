package monitor

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var inf = math.Inf(1)

func TestQuantile(t *testing.T) {
	tests := []struct {
		name   string
		bounds []float64
		counts []float64
		q      float64
		want   float64
		ok     bool
	}{
		{"nothing counted", []float64{1, inf}, []float64{0, 0}, 0.5, 0, false},
		{"no bucket at all", nil, nil, 0.5, 0, false},
		{"only +Inf", []float64{inf}, []float64{4}, 0.5, 0, false},
		{"first bucket interpolates from zero", []float64{1, 2, inf}, []float64{4, 4, 4}, 0.5, 0.5, true},
		{"within a middle bucket", []float64{1, 2, 4, inf}, []float64{2, 6, 10, 10}, 0.5, 1.75, true},
		{"p99 in the last finite bucket", []float64{.1, .5, 1, inf}, []float64{90, 99, 100, 100}, 0.99, 0.5, true},
		{"p99 between buckets", []float64{.1, .5, 1, inf}, []float64{90, 95, 100, 100}, 0.99, 0.9, true},
		{"in +Inf: the highest finite bound", []float64{1, 2, inf}, []float64{1, 2, 10}, 0.5, 2, true},
		{"empty buckets before the rank are skipped", []float64{1, 2, 3, inf}, []float64{0, 0, 4, 4}, 0.5, 2.5, true},
		{"non-positive first bound", []float64{-1, 0, inf}, []float64{3, 4, 4}, 0.5, -1, true},
		{"q above 1 is 1", []float64{1, 2, inf}, []float64{1, 2, 2}, 7, 2, true},
		{"q 0", []float64{1, 2, inf}, []float64{1, 2, 2}, 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := histogram{bounds: tc.bounds, counts: tc.counts}.quantile(tc.q)
			if ok != tc.ok || math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("quantile(%v) = %v, %v; want %v, %v", tc.q, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSince(t *testing.T) {
	h := func(counts ...float64) histogram { return histogram{bounds: []float64{1, 2, inf}, counts: counts} }
	tests := []struct {
		name      string
		cur, prev histogram
		want      []float64
		ok        bool
	}{
		{"observations in between", h(3, 5, 9), h(1, 2, 4), []float64{2, 3, 5}, true},
		{"none in between", h(1, 2, 4), h(1, 2, 4), []float64{0, 0, 0}, true},
		{"reset", h(0, 1, 1), h(1, 2, 4), nil, false},
		// A histogram is exported from its first observation: one that the
		// earlier reading did not have was observed only since.
		{"appeared since the earlier reading", h(1, 2, 4), histogram{}, []float64{1, 2, 4}, true},
		{"nothing now", histogram{}, h(1, 2, 4), nil, false},
		{"other buckets", h(1, 2, 4), histogram{bounds: []float64{1, inf}, counts: []float64{1, 1}}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := tc.cur.since(tc.prev)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			for i, w := range tc.want {
				if d.counts[i] != w {
					t.Errorf("counts = %v, want %v", d.counts, tc.want)
					break
				}
			}
		})
	}
}

// gather returns the families of a registry holding what register adds.
func gather(t *testing.T, register func(reg *prometheus.Registry)) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewRegistry()
	register(reg)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func TestFindHistogram(t *testing.T) {
	untyped := func(name string, le string, v float64) prometheus.Collector {
		g := prometheus.NewUntypedFunc(prometheus.UntypedOpts{Name: name, ConstLabels: prometheus.Labels{"le": le}}, func() float64 { return v })
		return g
	}
	tests := []struct {
		name     string
		register func(reg *prometheus.Registry)
		found    bool
		p50      float64
	}{
		{"none", func(reg *prometheus.Registry) {}, false, 0},
		{"a histogram family in seconds, summed over label sets", func(reg *prometheus.Registry) {
			h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "temporal_activity_schedule_to_start_latency_seconds", Buckets: []float64{1, 2, 4}},
				[]string{"task_queue"})
			reg.MustRegister(h)
			h.WithLabelValues("product").Observe(1.5)
			h.WithLabelValues("payment").Observe(1.5)
		}, true, 1.5},
		{"a histogram in milliseconds", func(reg *prometheus.Registry) {
			h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "temporal_activity_schedule_to_start_latency_milliseconds", Buckets: []float64{1000, 2000, 4000}})
			reg.MustRegister(h)
			h.Observe(1500)
			h.Observe(1500)
		}, true, 1.5},
		{"bucket samples with le", func(reg *prometheus.Registry) {
			reg.MustRegister(untyped("temporal_activity_schedule_to_start_latency_seconds_bucket", "1", 0),
				untyped("temporal_activity_schedule_to_start_latency_seconds_bucket", "2", 2),
				untyped("temporal_activity_schedule_to_start_latency_seconds_bucket", "+Inf", 2))
		}, true, 1.5},
		{"another metric", func(reg *prometheus.Registry) {
			h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "temporal_workflow_task_schedule_to_start_latency_seconds"})
			reg.MustRegister(h)
			h.Observe(1)
		}, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, found := findHistogram(gather(t, tc.register), activityStem)
			if found != tc.found {
				t.Fatalf("found = %v, want %v", found, tc.found)
			}
			if !found {
				return
			}
			if got, _ := h.quantile(0.5); math.Abs(got-tc.p50) > 1e-9 {
				t.Errorf("p50 = %v, want %v (buckets %v %v)", got, tc.p50, h.bounds, h.counts)
			}
		})
	}
}

func TestRing(t *testing.T) {
	r := newRing(5e9, 3) // three slots of 5 s
	k := key{"c", "s"}
	r.put(100, k, 1)
	r.put(105, k, 2)
	if v, ok := r.get(100, k); !ok || v != 1 {
		t.Errorf("get(100) = %v, %v; want 1", v, ok)
	}
	if _, ok := r.get(110, k); ok {
		t.Error("get(110) found a value never put")
	}
	if _, ok := r.get(100, key{"c", "other"}); ok {
		t.Error("found a series never put")
	}
	r.put(115, k, 4) // the slot of 100, three steps later
	if _, ok := r.get(100, k); ok {
		t.Error("the value of 100 outlived the window")
	}
	if v, ok := r.get(115, k); !ok || v != 4 {
		t.Errorf("get(115) = %v, %v; want 4", v, ok)
	}
	if v, ok := r.get(105, k); !ok || v != 2 {
		t.Errorf("get(105) = %v, %v; want 2", v, ok)
	}
}
