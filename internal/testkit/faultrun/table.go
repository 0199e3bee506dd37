package faultrun

import (
	"fmt"
	"io"
	"strings"
)

// WindowSummary is one row of the table: a fault window and how many
// orders were placed in it.
type WindowSummary struct {
	Name   string
	Orders int
}

// WriteTable prints the result: one row per fault window (the orders
// placed while that fault was injected or recovering) and a whole-run row
// that also holds the violations that belong to no order; one column per
// invariant; cells "ok" or "N ✗". The details of every violation follow.
func WriteTable(w io.Writer, windows []WindowSummary, violations []Violation) {
	counts := make([][numInvariants]int, len(windows))
	var total [numInvariants]int
	for _, v := range violations {
		total[v.Invariant]++
		if v.Window >= 0 && v.Window < len(windows) {
			counts[v.Window][v.Invariant]++
		}
	}
	header := []string{"fault window", "orders"}
	for i := Invariant(0); i < numInvariants; i++ {
		header = append(header, i.String())
	}
	rows := [][]string{header}
	all := 0
	for i, win := range windows {
		all += win.Orders
		rows = append(rows, row(win.Name, win.Orders, counts[i]))
	}
	rows = append(rows, row("whole run", all, total))

	widths := make([]int, len(header))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	line := func(r []string) {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = c + strings.Repeat(" ", widths[i]-len([]rune(c)))
		}
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	line(rows[0])
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", widths[i])
	}
	line(sep)
	for _, r := range rows[1:] {
		line(r)
	}

	if len(violations) == 0 {
		fmt.Fprintln(w, "\nno violations")
		return
	}
	fmt.Fprintf(w, "\n%d violation(s):\n", len(violations))
	for _, v := range violations {
		where := "whole run"
		if v.Window >= 0 && v.Window < len(windows) {
			where = windows[v.Window].Name
		}
		order := ""
		if v.OrderID != "" {
			order = " order " + v.OrderID + ":"
		}
		fmt.Fprintf(w, "- [%s] (%s)%s %s\n", v.Invariant, where, order, v.Detail)
	}
}

func row(name string, orders int, counts [numInvariants]int) []string {
	r := []string{name, fmt.Sprint(orders)}
	for _, n := range counts {
		if n == 0 {
			r = append(r, "ok")
		} else {
			r = append(r, fmt.Sprintf("%d ✗", n))
		}
	}
	return r
}

// WriteSummary prints what the run did, so that a table of "ok" can be
// told from a run that exercised nothing: orders by outcome, retries,
// cancels, and what the observers saw.
func WriteSummary(w io.Writer, f Facts, wsConnections int) {
	statuses := map[string]int{}
	for _, o := range f.State.Orders {
		statuses[o.Status+" "+o.Reason]++
	}
	accepted, attempts, cancels := 0, 0, map[int]int{}
	for _, p := range f.Placements {
		attempts += len(p.Answers)
		if p.OrderID != "" {
			accepted++
		}
		if p.Cancel != nil && len(p.Cancel.Answers) > 0 {
			cancels[p.Cancel.Answers[len(p.Cancel.Answers)-1].Status]++
		}
	}
	frames := 0
	for _, e := range f.WS {
		if !e.Sent {
			frames++
		}
	}
	events := 0
	for _, evs := range f.State.Events {
		events += len(evs)
	}
	var outcomes []string
	for _, s := range sortedKeys(boolKeys(statuses)) {
		outcomes = append(outcomes, fmt.Sprintf("%s %d", strings.TrimSpace(s), statuses[s]))
	}
	var cancelled []string
	for _, s := range []int{200, 409} {
		cancelled = append(cancelled, fmt.Sprintf("%d: %d", s, cancels[s]))
	}
	fmt.Fprintf(w, "orders: %d placed, %d accepted, %d POST attempts; outcomes: %s\n", len(f.Placements), accepted, attempts, strings.Join(outcomes, ", "))
	fmt.Fprintf(w, "cancels: %s; events: %d stored, %d Kafka records read, %d websocket frames over %d connection(s); %d unplanned process exit(s)\n\n",
		strings.Join(cancelled, ", "), events, len(f.Kafka), frames, wsConnections, len(f.Exits))
}

func boolKeys(m map[string]int) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}
