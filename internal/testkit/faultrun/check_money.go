package faultrun

import "sort"

// money: captured if and only if CONFIRMED, no hold left for a terminal
// order, nothing captured twice: in payments.payments (the payment
// worker's record) and in paysim (the provider's own ledger), since the
// two can disagree and the shopper's card sees only the provider.
func (j *judge) money() {
	st := j.f.State
	for _, id := range j.orderIDs() {
		o := st.Orders[id]
		if !terminal(o.Status) {
			continue
		}
		p, ok := st.Payments[id]
		if o.Status == "CONFIRMED" {
			switch {
			case !ok:
				j.add(InvMoney, id, "order is CONFIRMED but has no payments row: confirmed without payment")
			case p.Status != "CAPTURED":
				j.add(InvMoney, id, "order is CONFIRMED but its payment is %s, not CAPTURED", p.Status)
			case p.AmountCents != o.TotalCents:
				j.add(InvMoney, id, "payment captured %d cents for an order of %d", p.AmountCents, o.TotalCents)
			}
			continue
		}
		if ok {
			switch p.Status {
			case "CAPTURED":
				j.add(InvMoney, id, "order is %s %s but its payment is CAPTURED: the shopper is charged", o.Status, o.Reason)
			case "AUTHORIZED", "PENDING":
				j.add(InvMoney, id, "order is %s %s but its payment is still %s: a hold is left", o.Status, o.Reason, p.Status)
			}
		}
	}
	for _, id := range sortedMapKeys(st.Payments) {
		if _, ok := st.Orders[id]; ok {
			continue
		}
		if s := st.Payments[id].Status; s == "CAPTURED" || s == "AUTHORIZED" {
			j.add(InvMoney, id, "payments row %s for an order that does not exist", s)
		}
	}

	if st.HoldsUnreadable != "" {
		j.add(InvMoney, "", "the provider's ledger (paysim.holds) could not be read, so holds and double captures at the provider are unchecked: %s", st.HoldsUnreadable)
		return
	}
	for _, id := range j.orderIDs() {
		o := st.Orders[id]
		if !terminal(o.Status) {
			continue
		}
		h, ok := st.Holds[id]
		if o.Status == "CONFIRMED" {
			switch {
			case !ok:
				j.add(InvMoney, id, "order is CONFIRMED but the provider has no hold for it: never charged")
			case h.State != "CAPTURED":
				j.add(InvMoney, id, "order is CONFIRMED but the provider's hold is %s, not CAPTURED", h.State)
			case h.Captures != 1 || h.CapturedCents != o.TotalCents:
				j.add(InvMoney, id, "provider captured %d time(s), %d cents, for an order of %d", h.Captures, h.CapturedCents, o.TotalCents)
			}
			continue
		}
		if ok && h.State != "VOIDED" {
			j.add(InvMoney, id, "order is %s %s but the provider's hold is %s (%d cents)", o.Status, o.Reason, h.State, h.AmountCents)
		}
	}
	for _, key := range sortedMapKeys(st.Holds) {
		h := st.Holds[key]
		if h.Captures > 1 {
			j.add(InvMoney, key, "provider captured %d times (%d cents): charged twice", h.Captures, h.CapturedCents)
		}
		if n := st.MoneyMoves[key]; n > 1 {
			j.add(InvMoney, key, "provider's operations log has %d captures that moved money: charged twice", n)
		}
		if _, ok := st.Orders[key]; !ok && h.State != "VOIDED" {
			j.add(InvMoney, key, "provider holds %s %d cents for key %s, which is no order: a hold outlives its order", h.State, h.AmountCents, key)
		}
	}
}

func sortedMapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
