package faultrun

import (
	"fmt"
	"sort"
	"strings"
)

// events: each order's history is seq 1..n ending in its status, and every
// event reached Kafka and the websocket client, in seq order, once after
// deduplication by event_id.
func (j *judge) events() {
	st := j.f.State
	for _, id := range j.orderIDs() {
		o := st.Orders[id]
		evs := st.Events[id]
		if len(evs) == 0 {
			j.add(InvEvents, id, "order has no events: not even PENDING")
			continue
		}
		for i, e := range evs {
			if e.Seq != i+1 {
				j.add(InvEvents, id, "events are not seq 1..n: position %d has seq %d (seqs %s)", i+1, e.Seq, seqList(evs))
				break
			}
		}
		if evs[0].Status != "PENDING" {
			j.add(InvEvents, id, "first event is %s, not PENDING", evs[0].Status)
		}
		for _, e := range evs[:len(evs)-1] {
			if terminal(e.Status) {
				j.add(InvEvents, id, "terminal event %s at seq %d is followed by more events", e.Status, e.Seq)
				break
			}
		}
		last := evs[len(evs)-1]
		if last.Status != o.Status || last.Reason != o.Reason {
			j.add(InvEvents, id, "last event (seq %d) says %s %s, the order says %s %s", last.Seq, last.Status, last.Reason, o.Status, o.Reason)
		}
		if o.LastSeq != last.Seq {
			j.add(InvEvents, id, "order's last_seq is %d, its last event is seq %d", o.LastSeq, last.Seq)
		}
	}
	j.kafka()
	j.websocket()
}

// kafka: per order, records in the order the consumer read them (one
// order's records share a partition) carry seq 1, 2, …; a repeat is
// at-least-once delivery and is deduplicated, a jump is an event out of
// order or lost.
func (j *judge) kafka() {
	seen := map[string]map[int]bool{}
	max := map[string]int{}
	for _, r := range j.f.Kafka {
		e := r.Event
		if !j.known(e, "Kafka") {
			continue
		}
		if r.Key != e.OrderID {
			j.add(InvEvents, e.OrderID, "Kafka record %s has key %q, not the order id", e.EventID, r.Key)
		}
		if seen[e.OrderID] == nil {
			seen[e.OrderID] = map[int]bool{}
		}
		seen[e.OrderID][e.Seq] = true
		switch m := max[e.OrderID]; {
		case e.Seq <= m:
			// A duplicate: deduplicated by event_id.
		case e.Seq == m+1:
			max[e.OrderID] = e.Seq
		default:
			j.add(InvEvents, e.OrderID, "Kafka: seq %d came after seq %d (partition %d offset %d): out of order", e.Seq, m, r.Partition, r.Offset)
			max[e.OrderID] = e.Seq
		}
	}
	j.missing("Kafka", seen)
}

// websocket: per connection and order, frames come in runs of consecutive
// seqs. A run starts with the connection's first frame of the order, or
// at after_seq+1 of a subscription the client sent. Anything else is a
// repeat or a jump within one subscription: API.md promises each event
// once per subscription, in seq order.
func (j *judge) websocket() {
	type flow struct {
		prev    int
		pending []int // after_seq of subscriptions sent and not yet answered
	}
	seen := map[string]map[int]bool{}
	flows := map[[2]string]*flow{}
	for _, w := range j.f.WS {
		id := w.OrderID
		if !w.Sent {
			id = w.Event.OrderID
		}
		k := [2]string{fmt.Sprint(w.Conn), id}
		fl := flows[k]
		if fl == nil {
			fl = &flow{prev: -1}
			flows[k] = fl
		}
		if w.Sent {
			fl.pending = append(fl.pending, w.AfterSeq)
			continue
		}
		e := w.Event
		if !j.known(e, "the websocket") {
			continue
		}
		if seen[id] == nil {
			seen[id] = map[int]bool{}
		}
		seen[id][e.Seq] = true
		// A frame that continues the run never answers a subscription: the
		// replay may still come, and restarts the run at after_seq+1.
		restart := -1
		if fl.prev >= 0 && e.Seq != fl.prev+1 {
			for i, after := range fl.pending {
				if e.Seq == after+1 {
					restart = i
				}
			}
		}
		switch {
		case fl.prev < 0 || e.Seq == fl.prev+1:
		case restart >= 0:
			fl.pending = fl.pending[restart+1:]
		case e.Seq <= fl.prev:
			j.add(InvEvents, id, "websocket connection %d: seq %d again after seq %d within one subscription", w.Conn, e.Seq, fl.prev)
		default:
			j.add(InvEvents, id, "websocket connection %d: seq %d came right after seq %d: out of order or skipped", w.Conn, e.Seq, fl.prev)
		}
		fl.prev = e.Seq
	}
	j.missing("the websocket", seen)
}

// known reports whether e is an event of the database, and reports it
// when it is not, or says something else than the database.
func (j *judge) known(e Event, where string) bool {
	var db *Event
	for i, s := range j.f.State.Events[e.OrderID] {
		if s.Seq == e.Seq {
			db = &j.f.State.Events[e.OrderID][i]
			break
		}
	}
	if db == nil {
		j.add(InvEvents, e.OrderID, "%s carried event %s (%s), which orders.order_events does not have", where, e.EventID, e.Status)
		return false
	}
	if e.Status != db.Status || e.Reason != db.Reason || e.EventID != fmt.Sprintf("%s:%d", e.OrderID, e.Seq) {
		j.add(InvEvents, e.OrderID, "%s carried event %s as %s %s; orders.order_events has %s %s", where, e.EventID, e.Status, e.Reason, db.Status, db.Reason)
	}
	return true
}

// missing reports, per order, the stored events that never arrived.
func (j *judge) missing(where string, seen map[string]map[int]bool) {
	for _, id := range j.orderIDs() {
		var lost []string
		for _, e := range j.f.State.Events[id] {
			if !seen[id][e.Seq] {
				lost = append(lost, fmt.Sprintf("%d %s", e.Seq, e.Status))
			}
		}
		if len(lost) > 0 {
			j.add(InvEvents, id, "never reached %s: seq %s", where, strings.Join(lost, ", "))
		}
	}
}

func seqList(evs []Event) string {
	s := make([]int, len(evs))
	for i, e := range evs {
		s[i] = e.Seq
	}
	sort.Ints(s)
	return fmt.Sprint(s)
}
