package faultrun

import (
	"fmt"
	"sort"
	"strings"
)

// accepted: every order a 2xx named exists; every order is terminal and
// not FAILED; its workflow completed.
func (j *judge) accepted() {
	st := j.f.State
	for _, p := range j.f.Placements {
		if p.OrderID == "" {
			continue
		}
		if _, ok := st.Orders[p.OrderID]; !ok {
			j.add(InvAccepted, p.OrderID, "accepted (2xx) but not in orders.orders: the order is lost")
		}
	}
	for _, id := range j.orderIDs() {
		o := st.Orders[id]
		switch {
		case !terminal(o.Status):
			j.add(InvAccepted, id, "still %s when the run ended: never reached a terminal status", o.Status)
		case o.Status == "FAILED":
			j.add(InvAccepted, id, "ended FAILED (%s): no fault of this run justifies it", o.Reason)
		}
	}
	if st.WorkflowsUnreadable != "" {
		j.add(InvAccepted, "", "could not list the order workflows: %s", st.WorkflowsUnreadable)
		return
	}
	for _, id := range j.orderIDs() {
		o := st.Orders[id]
		wf, ok := st.Workflows[id]
		switch {
		case !ok:
			j.add(InvAccepted, id, "no workflow order-%s exists (order is %s)", id, o.Status)
		case wf.Status == "Completed":
		case wf.Status == "Running" && terminal(o.Status):
			j.add(InvAccepted, id, "workflow still Running although the order is %s", o.Status)
		case wf.Status == "Running":
			// The order itself is reported as not terminal above.
		default:
			msg := ""
			if wf.Failure != "" {
				msg = ": " + wf.Failure
			}
			j.add(InvAccepted, id, "workflow ended %s (order is %s)%s", wf.Status, o.Status, msg)
		}
		if n := len(wf.TaskFailures); n > 0 {
			j.add(InvAccepted, id, "%d workflow task(s) of order-%s failed in the workflow's code: %s", n, id, wf.TaskFailures[0])
		}
		if wf.Runs > 1 {
			j.add(InvAccepted, id, "workflow order-%s ran %d times: an order runs once", id, wf.Runs)
		}
	}
}

// idempotency: one order per key; a retry with the same key and body
// returns that order.
func (j *judge) idempotency() {
	st := j.f.State
	rows := map[[2]string]string{}
	keysOf := map[string][]string{}
	for _, k := range st.IdempotencyKeys {
		rows[[2]string{k.CustomerID, k.Key}] = k.OrderID
		keysOf[k.OrderID] = append(keysOf[k.OrderID], k.Key)
	}
	for _, p := range j.f.Placements {
		ids := map[string]bool{}
		for _, a := range p.Answers {
			if a.Status >= 200 && a.Status < 300 && a.OrderID != "" {
				ids[a.OrderID] = true
			}
			if a.Code == "idempotency_key_reused" {
				j.addAt(InvIdempotency, p.Window, "key %s: a retry with the same body was refused 422 idempotency_key_reused", p.Key)
			}
		}
		if len(ids) > 1 {
			j.addAt(InvIdempotency, p.Window, "key %s answered with %d different orders: %s", p.Key, len(ids), strings.Join(sortedKeys(ids), ", "))
		}
		if p.OrderID == "" {
			continue
		}
		switch row, ok := rows[[2]string{p.CustomerID, p.Key}]; {
		case !ok:
			j.add(InvIdempotency, p.OrderID, "key %s has no orders.idempotency_keys row", p.Key)
		case row != p.OrderID:
			j.add(InvIdempotency, p.OrderID, "key %s: the client was answered this order, the key's row names %s", p.Key, row)
		}
	}
	for _, id := range j.orderIDs() {
		switch keys := keysOf[id]; {
		case len(keys) == 0:
			j.add(InvIdempotency, id, "order has no Idempotency-Key row: created without the client's key (a duplicate?)")
		case len(keys) > 1:
			sort.Strings(keys)
			j.add(InvIdempotency, id, "order answers %d keys: %s", len(keys), strings.Join(keys, ", "))
		}
	}
}

// cancels: a cancel answered 200 was accepted, so the order ends CANCELLED.
func (j *judge) cancels() {
	for _, p := range j.f.Placements {
		if p.Cancel == nil || p.OrderID == "" {
			continue
		}
		o, ok := j.f.State.Orders[p.OrderID]
		if !ok {
			continue // reported as lost
		}
		for _, a := range p.Cancel.Answers {
			if a.Status == 200 && terminal(o.Status) && o.Status != "CANCELLED" {
				j.add(InvCancel, p.OrderID, "cancel answered 200 at %s, but the order ended %s %s", a.At.Format("15:04:05.000"), o.Status, o.Reason)
				break
			}
		}
	}
}

// http: every request ended in a definite answer that a correct request
// can get, and no outage was answered 500.
func (j *judge) http() {
	for _, p := range j.f.Placements {
		j.answers(p, "POST /orders (key "+p.Key+")", p.Answers, map[int]bool{200: true, 202: true})
		if p.Cancel != nil {
			j.answers(p, "POST /orders/{id}/cancel", p.Cancel.Answers, map[int]bool{200: true, 409: true})
		}
	}
}

func (j *judge) answers(p Placement, what string, answers []Answer, expected map[int]bool) {
	report := func(format string, args ...any) {
		if p.OrderID != "" {
			j.add(InvHTTP, p.OrderID, format, args...)
		} else {
			j.addAt(InvHTTP, p.Window, format, args...)
		}
	}
	for _, a := range answers {
		if a.Status >= 500 && a.Status != 503 {
			report("%s answered %d %s at %s: an outage is 503, a bug is not an answer", what, a.Status, a.Code, a.At.Format("15:04:05.000"))
		}
	}
	if len(answers) == 0 {
		return
	}
	last := answers[len(answers)-1]
	switch {
	case !last.Definite():
		report("%s: no definite answer after %d attempts (last: %s)", what, len(answers), describe(last))
	case !expected[last.Status] && last.Code != "idempotency_key_reused":
		report("%s answered %d %s: a correct request cannot get that", what, last.Status, last.Code)
	}
}

// processes: a service that exited by itself did not survive the fault.
func (j *judge) processes() {
	for _, e := range j.f.Exits {
		j.addAt(InvProcesses, e.Window, "%s exited by itself at %s: %s", e.Service, e.At.Format("15:04:05.000"), e.Err)
	}
}

func describe(a Answer) string {
	if a.Status == 0 {
		return "no answer: " + a.Err
	}
	return fmt.Sprintf("%d %s", a.Status, a.Code)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
