package faultrun

import (
	"fmt"
	"sort"
)

// Check judges the facts of a run against DESIGN.md's invariants and
// returns every violation, each attributed to the fault window its order
// was placed in. It only reads the facts, so that each rule can be shown,
// with crafted facts, to catch what it is meant to catch.
func Check(f Facts) []Violation {
	j := newJudge(f)
	j.accepted()
	j.stock()
	j.money()
	j.events()
	j.idempotency()
	j.cancels()
	j.http()
	j.processes()
	sort.SliceStable(j.out, func(a, b int) bool {
		if j.out[a].Invariant != j.out[b].Invariant {
			return j.out[a].Invariant < j.out[b].Invariant
		}
		return j.out[a].Window < j.out[b].Window
	})
	return j.out
}

// judge holds the facts and the violations found so far.
type judge struct {
	f Facts
	// window maps an order id to the window its placement began in.
	window map[string]int
	out    []Violation
}

func newJudge(f Facts) *judge {
	j := &judge{f: f, window: map[string]int{}}
	byKey := map[[2]string]int{}
	for _, p := range f.Placements {
		byKey[[2]string{p.CustomerID, p.Key}] = p.Window
		if p.OrderID != "" {
			j.window[p.OrderID] = p.Window
		}
	}
	// An order whose every answer was lost still belongs to its key's window.
	for _, k := range f.State.IdempotencyKeys {
		if w, ok := byKey[[2]string{k.CustomerID, k.Key}]; ok {
			if _, known := j.window[k.OrderID]; !known {
				j.window[k.OrderID] = w
			}
		}
	}
	return j
}

// add records a violation about orderID ("" for none), in its order's window.
func (j *judge) add(inv Invariant, orderID, format string, args ...any) {
	w := WholeRun
	if orderID != "" {
		if ow, ok := j.window[orderID]; ok {
			w = ow
		}
	}
	j.out = append(j.out, Violation{Invariant: inv, Window: w, OrderID: orderID, Detail: fmt.Sprintf(format, args...)})
}

// addAt records a violation in a given window.
func (j *judge) addAt(inv Invariant, window int, format string, args ...any) {
	j.out = append(j.out, Violation{Invariant: inv, Window: window, Detail: fmt.Sprintf(format, args...)})
}

// orderIDs returns the state's order ids sorted, so that reports are stable.
func (j *judge) orderIDs() []string {
	ids := make([]string, 0, len(j.f.State.Orders))
	for id := range j.f.State.Orders {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
