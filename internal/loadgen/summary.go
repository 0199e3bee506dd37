package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// Latencies are the percentiles of a set of durations.
type Latencies struct {
	Count              int64
	P50, P90, P99, Max time.Duration
}

// Summary is the figures of a run, as `ordersaga load` prints them.
type Summary struct {
	// Attempted counts POSTs; Placed, those the gateway accepted; Ended,
	// the placed orders whose terminal status came; TimedOut, the placed
	// orders whose did not within the timeout.
	Attempted, Placed, Ended, TimedOut int
	// PlacedPerSecond is Placed over the span from the first POST to the
	// last answer; EndedPerSecond, Ended over the span from the first
	// POST to the last terminal status.
	PlacedPerSecond, EndedPerSecond float64
	// ConfirmedPerSecond counts only the CONFIRMED orders, over the same
	// span as EndedPerSecond.
	ConfirmedPerSecond float64
	// Post is how long a POST took to answer; ToTerminal, how long from
	// sending the POST to the terminal status arriving over the websocket.
	Post, ToTerminal Latencies
	// ToConfirmed is ToTerminal of the CONFIRMED orders alone.
	ToConfirmed Latencies
	// Outcomes counts the ended orders by Outcome ("CONFIRMED",
	// "REJECTED(payment_declined)").
	Outcomes map[string]int
	// CancelsSent and CancelsAccepted count cancel requests and those
	// accepted (the rest came too late: 409).
	CancelsSent, CancelsAccepted int
	// Errors counts errors by kind: "place: HTTP 503 unavailable",
	// "cancel: network", "websocket: connection lost", "timeout: no
	// terminal status".
	Errors map[string]int
	// Dropped counts arrivals that found every slot busy (with a rate).
	Dropped int
	// Elapsed is the whole run, from the first POST to the last end.
	Elapsed time.Duration
}

// Outcome names a terminal status with its reason, if any:
// "REJECTED(payment_declined)".
func Outcome(s order.Status, r order.Reason) string {
	if r == order.ReasonNone {
		return string(s)
	}
	return fmt.Sprintf("%s(%s)", s, r)
}

// Summarize computes the figures of a run.
func Summarize(r *Result) Summary {
	s := Summary{Outcomes: map[string]int{}, Errors: map[string]int{}, Dropped: r.Dropped, Elapsed: r.End.Sub(r.Start)}
	post, toTerminal, toConfirmed := newHistogram(), newHistogram(), newHistogram()
	confirmed := 0
	var lastAnswer, lastEnd time.Time
	first := r.End
	for _, o := range r.Orders {
		s.Attempted++
		if o.Sent.Before(first) {
			first = o.Sent
		}
		if o.CancelSent {
			s.CancelsSent++
		}
		if o.CancelAccepted {
			s.CancelsAccepted++
		}
		if o.CancelError != "" {
			s.Errors["cancel: "+o.CancelError]++
		}
		if !o.Placed() {
			s.Errors["place: "+o.PlaceError]++
			continue
		}
		s.Placed++
		record(post, o.Answered.Sub(o.Sent))
		if o.Answered.After(lastAnswer) {
			lastAnswer = o.Answered
		}
		if o.Ended.IsZero() {
			s.TimedOut++
			s.Errors["timeout: no terminal status"]++
			continue
		}
		s.Ended++
		s.Outcomes[Outcome(o.Status, o.Reason)]++
		record(toTerminal, o.Ended.Sub(o.Sent))
		if o.Status == order.Confirmed {
			confirmed++
			record(toConfirmed, o.Ended.Sub(o.Sent))
		}
		if o.Ended.After(lastEnd) {
			lastEnd = o.Ended
		}
	}
	if r.WebsocketDrops > 0 {
		s.Errors["websocket: connection lost"] = r.WebsocketDrops
	}
	s.PlacedPerSecond = perSecond(s.Placed, lastAnswer.Sub(first))
	s.EndedPerSecond = perSecond(s.Ended, lastEnd.Sub(first))
	s.ConfirmedPerSecond = perSecond(confirmed, lastEnd.Sub(first))
	s.Post, s.ToTerminal, s.ToConfirmed = latencies(post), latencies(toTerminal), latencies(toConfirmed)
	return s
}

func perSecond(n int, d time.Duration) float64 {
	if n == 0 || d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// newHistogram holds durations in microseconds from 1 µs to 1 h with 3
// significant digits: a percentile is within 0.1% of the true one.
func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3)
}

func record(h *hdrhistogram.Histogram, d time.Duration) {
	// A value past the histogram's range is clamped rather than lost: the
	// count stays right and the maximum reads "≥ 1 h".
	_ = h.RecordValue(min(max(d.Microseconds(), 1), h.HighestTrackableValue()))
}

func latencies(h *hdrhistogram.Histogram) Latencies {
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return Latencies{
		Count: h.TotalCount(),
		P50:   us(h.ValueAtQuantile(50)), P90: us(h.ValueAtQuantile(90)), P99: us(h.ValueAtQuantile(99)),
		Max: us(h.Max()),
	}
}

// Print writes the summary for a person to read.
func (s Summary) Print(w io.Writer, cfg Config) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	mode := fmt.Sprintf("%d in flight", cfg.Concurrency)
	if cfg.Rate > 0 {
		mode = fmt.Sprintf("%g/s (at most %d in flight)", cfg.Rate, cfg.Concurrency)
	}
	fmt.Fprintf(tw, "run %s: %s, tokens %s, cancel %g, lines %s\n", cfg.RunID, mode, cfg.Tokens, cfg.Cancel, cfg.Lines)
	fmt.Fprintf(tw, "elapsed\t%s\n", s.Elapsed.Round(10*time.Millisecond))
	fmt.Fprintf(tw, "orders\t%d attempted, %d placed, %d ended, %d without an end\n", s.Attempted, s.Placed, s.Ended, s.TimedOut)
	fmt.Fprintf(tw, "orders/s\tplaced %.1f, ended %.1f\n", s.PlacedPerSecond, s.EndedPerSecond)
	fmt.Fprintf(tw, "POST latency\t%s\n", s.Post)
	fmt.Fprintf(tw, "placement→terminal\t%s\n", s.ToTerminal)
	fmt.Fprintf(tw, "cancels\t%d sent, %d accepted\n", s.CancelsSent, s.CancelsAccepted)
	if s.Dropped > 0 {
		fmt.Fprintf(tw, "dropped arrivals\t%d (every slot busy)\n", s.Dropped)
	}
	fmt.Fprintf(tw, "outcomes\tof %d ended\n", s.Ended)
	writeCounts(tw, s.Outcomes, s.Ended)
	if len(s.Errors) == 0 {
		fmt.Fprintln(tw, "errors\tnone")
	} else {
		fmt.Fprintln(tw, "errors\tby kind")
		writeCounts(tw, s.Errors, 0)
	}
	return tw.Flush()
}

func writeCounts(w io.Writer, counts map[string]int, total int) {
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		if total > 0 {
			fmt.Fprintf(w, "  %s\t%d (%.1f%%)\n", k, counts[k], 100*float64(counts[k])/float64(total))
		} else {
			fmt.Fprintf(w, "  %s\t%d\n", k, counts[k])
		}
	}
}

// String writes the percentiles on one line.
func (l Latencies) String() string {
	if l.Count == 0 {
		return "none"
	}
	var b strings.Builder
	for _, p := range []struct {
		name string
		d    time.Duration
	}{{"p50", l.P50}, {"p90", l.P90}, {"p99", l.P99}, {"max", l.Max}} {
		fmt.Fprintf(&b, "%s %s  ", p.name, roundDuration(p.d))
	}
	return strings.TrimSpace(b.String())
}

// roundDuration keeps three significant figures or so, as the histogram does.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
