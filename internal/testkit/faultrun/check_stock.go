package faultrun

import (
	"sort"
)

// stock: every stock row is within bounds now and was at every step of
// the ledger; the ledger adds up to every row; each terminal order's
// movements match its outcome, and it holds nothing.
func (j *judge) stock() {
	st := j.f.State
	type sums struct{ onHand, reserved int }
	rows := map[[2]string]StockRow{}
	for _, r := range st.Stock {
		rows[[2]string{r.SKU, r.Warehouse}] = r
		if r.OnHand < 0 || r.Reserved < 0 || r.Reserved > r.OnHand {
			j.add(InvStock, "", "stock %s/%s is on_hand %d, reserved %d: out of bounds", r.SKU, r.Warehouse, r.OnHand, r.Reserved)
		}
	}

	// Replay the ledger in id order: within one stock row, ids follow the
	// order in which the row's updates committed, since each movement is
	// written after its update, under the row's lock.
	running := map[[2]string]*sums{}
	broken := map[[2]string]bool{}
	for _, m := range st.Movements {
		k := [2]string{m.SKU, m.Warehouse}
		s := running[k]
		if s == nil {
			s = &sums{}
			running[k] = s
		}
		s.onHand += m.OnHandDelta
		s.reserved += m.ReservedDelta
		if !broken[k] && (s.onHand < 0 || s.reserved < 0 || s.reserved > s.onHand) {
			// One report per row: later steps inherit the break.
			broken[k] = true
			j.add(InvStock, m.OrderID, "ledger of %s/%s after movement %d (%s): on_hand %d, reserved %d: out of bounds",
				m.SKU, m.Warehouse, m.ID, m.Kind, s.onHand, s.reserved)
		}
	}
	for _, k := range sortedPairs(rows, running) {
		r, hasRow := rows[k]
		s := running[k]
		if s == nil {
			s = &sums{}
		}
		switch {
		case !hasRow:
			j.add(InvStock, "", "ledger has movements for %s/%s, which has no stock row", k[0], k[1])
		case s.onHand != r.OnHand || s.reserved != r.Reserved:
			j.add(InvStock, "", "stock %s/%s is on_hand %d, reserved %d; its ledger adds up to %d, %d: not conserved",
				k[0], k[1], r.OnHand, r.Reserved, s.onHand, s.reserved)
		}
	}

	// Per order: what the ledger did for it must match how it ended.
	type orderSums struct {
		committed map[string]int // units sold, by sku
		held      int            // reserved − released − committed
	}
	byOrder := map[string]*orderSums{}
	for _, m := range st.Movements {
		if m.OrderID == "" {
			continue
		}
		s := byOrder[m.OrderID]
		if s == nil {
			s = &orderSums{committed: map[string]int{}}
			byOrder[m.OrderID] = s
		}
		s.held += m.ReservedDelta
		if m.Kind == "commit" {
			s.committed[m.SKU] -= m.OnHandDelta
		}
	}
	for _, id := range j.orderIDs() {
		o := st.Orders[id]
		if !terminal(o.Status) {
			continue
		}
		s := byOrder[id]
		if s == nil {
			s = &orderSums{committed: map[string]int{}}
		}
		if s.held != 0 {
			j.add(InvStock, id, "order is %s but still holds %d reserved unit(s) in the ledger", o.Status, s.held)
		}
		if res := st.Reservations[id]; res == "RESERVED" {
			j.add(InvStock, id, "order is %s but its catalog.reservations row is still RESERVED", o.Status)
		}
		if o.Status == "CONFIRMED" {
			if res := st.Reservations[id]; res != "COMMITTED" {
				j.add(InvStock, id, "order is CONFIRMED but its reservation is %q, not COMMITTED", res)
			}
			for _, sku := range unionSKUs(o.Lines, s.committed) {
				if s.committed[sku] != o.Lines[sku] {
					j.add(InvStock, id, "order is CONFIRMED for %d × %s; the ledger committed %d", o.Lines[sku], sku, s.committed[sku])
				}
			}
			continue
		}
		for _, sku := range unionSKUs(nil, s.committed) {
			if s.committed[sku] != 0 {
				j.add(InvStock, id, "order is %s, yet the ledger committed (sold) %d × %s", o.Status, s.committed[sku], sku)
			}
		}
	}
}

func sortedPairs[A, B any](a map[[2]string]A, b map[[2]string]B) [][2]string {
	seen := map[[2]string]bool{}
	var out [][2]string
	for k := range a {
		seen[k] = true
		out = append(out, k)
	}
	for k := range b {
		if !seen[k] {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i][0] != out[j][0] {
			return out[i][0] < out[j][0]
		}
		return out[i][1] < out[j][1]
	})
	return out
}

func unionSKUs(a, b map[string]int) []string {
	seen := map[string]bool{}
	for k := range a {
		seen[k] = true
	}
	for k := range b {
		seen[k] = true
	}
	return sortedKeys(seen)
}
