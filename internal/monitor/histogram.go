package monitor

import (
	"math"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// histogram is a cumulative Prometheus histogram: counts[i] observations
// were at most bounds[i]. Bounds ascend; the last is +Inf, so its count
// is the total.
type histogram struct {
	bounds []float64
	counts []float64
}

// empty reports whether h holds no bucket at all (not even +Inf).
func (h histogram) empty() bool { return len(h.bounds) == 0 }

// total is how many observations h counted.
func (h histogram) total() float64 {
	if h.empty() {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// merger sums cumulative buckets by upper bound, over the label sets of a
// family (which share their bounds).
type merger map[float64]float64

func (m merger) add(bound, count float64) { m[bound] += count }

// addHistogram adds a client_golang histogram, whose sample count is the
// +Inf bucket.
func (m merger) addHistogram(h *dto.Histogram) {
	for _, b := range h.GetBucket() {
		if !math.IsInf(b.GetUpperBound(), 1) {
			m.add(b.GetUpperBound(), float64(b.GetCumulativeCount()))
		}
	}
	m.add(math.Inf(1), float64(h.GetSampleCount()))
}

// histogram returns the merged buckets, scaled by scale (to seconds).
func (m merger) histogram(scale float64) histogram {
	if len(m) == 0 {
		return histogram{}
	}
	bounds := make([]float64, 0, len(m))
	for b := range m {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	h := histogram{bounds: make([]float64, len(bounds)), counts: make([]float64, len(bounds))}
	for i, b := range bounds {
		h.bounds[i], h.counts[i] = b*scale, m[b]
	}
	if !math.IsInf(bounds[len(bounds)-1], 1) {
		// A histogram read from _bucket samples without le="+Inf": the
		// highest bound counts everything seen.
		h.bounds = append(h.bounds, math.Inf(1))
		h.counts = append(h.counts, h.counts[len(h.counts)-1])
	}
	return h
}

// since returns the observations of h that came after prev, an earlier
// reading of the same histogram; false if they cannot be told apart (the
// buckets changed, or a count went down: the histogram was reset).
func (h histogram) since(prev histogram) (histogram, bool) {
	if !h.empty() && prev.empty() {
		// The histogram appeared since the last reading (a metric is
		// exported from its first observation): everything in it is new.
		prev = histogram{bounds: h.bounds, counts: make([]float64, len(h.counts))}
	}
	if h.empty() || !slices.Equal(h.bounds, prev.bounds) {
		return histogram{}, false
	}
	d := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts))}
	for i := range h.counts {
		d.counts[i] = h.counts[i] - prev.counts[i]
		if d.counts[i] < 0 {
			return histogram{}, false
		}
	}
	return d, true
}

// quantile estimates the q-quantile (0 ≤ q ≤ 1) of the observations in h
// as Prometheus's histogram_quantile does: linearly within the bucket
// where it falls, taking 0 as the lower bound of the first bucket (or its
// upper bound if that is not positive), and the highest finite bound when
// it falls in the +Inf bucket. False when h counted nothing.
func (h histogram) quantile(q float64) (float64, bool) {
	total := h.total()
	if total <= 0 || math.IsNaN(q) {
		return 0, false
	}
	q = min(max(q, 0), 1)
	rank := q * total
	i := 0
	for h.counts[i] < rank {
		i++ // stops at +Inf at the latest, whose count is the total
	}
	if math.IsInf(h.bounds[i], 1) {
		if i == 0 {
			return 0, false // only a +Inf bucket: nothing to say
		}
		return h.bounds[i-1], true
	}
	upper := h.bounds[i]
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = h.bounds[i-1], h.counts[i-1]
	} else if upper <= 0 {
		return upper, true
	}
	inBucket := h.counts[i] - below
	if inBucket <= 0 {
		return upper, true
	}
	return lower + (upper-lower)*(rank-below)/inBucket, true
}

// unitScale returns the factor that turns a metric's values into seconds,
// from its name's unit suffix: OpenTelemetry's exporter names a histogram
// of unit "s" …_seconds and one of unit "ms" …_milliseconds.
func unitScale(name string) float64 {
	name = strings.TrimSuffix(name, "_bucket")
	if strings.HasSuffix(name, "_milliseconds") || strings.HasSuffix(name, "_ms") {
		return 1e-3
	}
	return 1
}

// findHistogram sums the histograms of every family whose name contains
// stem, over all their label sets. It reads both spellings a registry may
// hold: a histogram family (…_seconds), and an untyped family of bucket
// samples with an le label (…_seconds_bucket). False if none matched.
func findHistogram(families []*dto.MetricFamily, stem string) (histogram, bool) {
	m := merger{}
	scale := 1.0
	found := false
	for _, f := range families {
		name := f.GetName()
		if !strings.Contains(name, stem) {
			continue
		}
		switch {
		case f.GetType() == dto.MetricType_HISTOGRAM:
			for _, metric := range f.GetMetric() {
				m.addHistogram(metric.GetHistogram())
			}
		case strings.HasSuffix(name, "_bucket"):
			for _, metric := range f.GetMetric() {
				le, ok := label(metric, "le")
				if !ok {
					continue
				}
				bound, err := strconv.ParseFloat(le, 64)
				if err != nil {
					continue
				}
				m.add(bound, sampleValue(metric))
			}
		default:
			continue // the _sum and _count of the bucket spelling
		}
		found, scale = true, unitScale(name)
	}
	if !found || len(m) == 0 {
		return histogram{}, false
	}
	return m.histogram(scale), true
}

func label(m *dto.Metric, name string) (string, bool) {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue(), true
		}
	}
	return "", false
}

// sampleValue is the value of a counter, gauge or untyped sample.
func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	default:
		return m.GetUntyped().GetValue()
	}
}
