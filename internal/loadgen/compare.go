package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"
)

// Round is one run of orders and the ceiling run that followed it on the
// same Temporal server, with the CPU each used when a meter was given.
type Round struct {
	Orders  Summary
	Ceiling CeilingResult
	// OrdersCPU and CeilingCPU are CPU time by process group during each
	// run; nil without a meter.
	OrdersCPU, CeilingCPU CPU
}

// Throughput is confirmed orders per second as a ratio to the ceiling's.
func (r Round) Throughput() float64 { return ratio(r.Orders.ConfirmedPerSecond, r.Ceiling.PerSecond) }

// Latency is the p50 from placement to CONFIRMED as a ratio to the
// ceiling's p50 from start to completion.
func (r Round) Latency() float64 {
	return ratio(r.Orders.ToConfirmed.P50.Seconds(), r.Ceiling.P50.Seconds())
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// median of xs, which it sorts; the mean of the middle two for an even count.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func medianOf(rounds []Round, f func(Round) float64) float64 {
	xs := make([]float64, len(rounds))
	for i, r := range rounds {
		xs[i] = f(r)
	}
	return median(xs)
}

// PrintRounds writes each round, the medians and the ratios, and, when the
// rounds were metered, the CPU per order of each process group in each
// kind of run (medians over the rounds).
func PrintRounds(w io.Writer, rounds []Round) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\tconfirmed/s\tceiling/s\tratio\tp50 to CONFIRMED\tceiling p50\tratio\t")
	row := func(name string, confirmed, ceiling, thr, p50, cp50, lat float64) {
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.2f×\t%s\t%s\t%.2f×\t\n", name, confirmed, ceiling, thr,
			roundDuration(seconds(p50)), roundDuration(seconds(cp50)), lat)
	}
	for i, r := range rounds {
		row(fmt.Sprint(i+1), r.Orders.ConfirmedPerSecond, r.Ceiling.PerSecond, r.Throughput(),
			r.Orders.ToConfirmed.P50.Seconds(), r.Ceiling.P50.Seconds(), r.Latency())
	}
	row("median",
		medianOf(rounds, func(r Round) float64 { return r.Orders.ConfirmedPerSecond }),
		medianOf(rounds, func(r Round) float64 { return r.Ceiling.PerSecond }),
		medianOf(rounds, Round.Throughput),
		medianOf(rounds, func(r Round) float64 { return r.Orders.ToConfirmed.P50.Seconds() }),
		medianOf(rounds, func(r Round) float64 { return r.Ceiling.P50.Seconds() }),
		medianOf(rounds, Round.Latency))
	if err := tw.Flush(); err != nil {
		return err
	}
	if rounds[0].OrdersCPU == nil {
		return nil
	}
	groups := map[string]bool{}
	for _, r := range rounds {
		for g := range r.OrdersCPU {
			groups[g] = true
		}
	}
	perOrder := func(c CPU, group string, orders int) float64 {
		return (c[group] / time.Duration(max(orders, 1))).Seconds()
	}
	fmt.Fprintln(w, "\nCPU per order, median of the rounds:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "process\torders\tceiling\t")
	var total [2]float64
	for _, g := range slices.Sorted(maps.Keys(groups)) {
		o := medianOf(rounds, func(r Round) float64 { return perOrder(r.OrdersCPU, g, r.Orders.Ended) })
		c := medianOf(rounds, func(r Round) float64 { return perOrder(r.CeilingCPU, g, r.Ceiling.Orders) })
		total[0], total[1] = total[0]+o, total[1]+c
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", g, cpuMillis(o), cpuMillis(c))
	}
	fmt.Fprintf(tw, "all\t%s\t%s\t\n", cpuMillis(total[0]), cpuMillis(total[1]))
	return tw.Flush()
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func cpuMillis(s float64) string { return fmt.Sprintf("%.1f ms", s*1000) }
