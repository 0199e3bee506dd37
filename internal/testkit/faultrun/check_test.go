package faultrun

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	orderA = "aaaaaaaa-0000-0000-0000-000000000001" // CONFIRMED, placed in window 0
	orderB = "bbbbbbbb-0000-0000-0000-000000000002" // CANCELLED, placed in window 1
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func ev(id string, seq int, status, reason string) Event {
	return Event{EventID: id + ":" + strconv.Itoa(seq), OrderID: id, Seq: seq, Status: status, Reason: reason}
}

// goodFacts is a small run in which every invariant holds: order A was
// confirmed after a retried POST; order B was cancelled (the first cancel
// attempt met a 503); the websocket client reconnected once and resumed.
func goodFacts() Facts {
	aEvents := []Event{ev(orderA, 1, "PENDING", ""), ev(orderA, 2, "RESERVED", ""), ev(orderA, 3, "AUTHORIZED", ""), ev(orderA, 4, "CONFIRMED", "")}
	bEvents := []Event{ev(orderB, 1, "PENDING", ""), ev(orderB, 2, "RESERVED", ""), ev(orderB, 3, "CANCELLED", "customer")}
	var kafka []KafkaRecord
	for i, e := range append(append([]Event(nil), aEvents...), bEvents...) {
		kafka = append(kafka, KafkaRecord{Partition: 0, Offset: int64(i), Key: e.OrderID, Event: e})
	}
	// At-least-once: a repeat is deduplicated, not a violation.
	kafka = append(kafka, KafkaRecord{Partition: 0, Offset: 7, Key: orderA, Event: aEvents[1]})
	return Facts{
		Placements: []Placement{{
			Key: "k1", CustomerID: "c1", Window: 0, FirstAttempt: t0, OrderID: orderA,
			Answers: []Answer{{At: t0, Err: "connection refused"}, {At: t0, Status: 202, OrderID: orderA}},
		}, {
			Key: "k2", CustomerID: "c1", Window: 1, FirstAttempt: t0, OrderID: orderB,
			Answers: []Answer{{At: t0, Status: 202, OrderID: orderB}},
			Cancel:  &Cancel{Answers: []Answer{{At: t0, Status: 503, Code: "unavailable"}, {At: t0, Status: 200, OrderID: orderB}}},
		}},
		Kafka: kafka,
		WS: []WSEntry{
			{Conn: 1, Event: aEvents[0]}, {Conn: 1, Event: aEvents[1]}, {Conn: 1, Event: bEvents[0]}, {Conn: 1, Event: bEvents[1]},
			// Reconnected: resume each order, then a live frame arrives
			// before the replay, which starts over at after_seq+1.
			{Conn: 2, Sent: true, OrderID: orderA, AfterSeq: 2}, {Conn: 2, Sent: true, OrderID: orderB, AfterSeq: 1},
			{Conn: 2, Event: aEvents[2]}, {Conn: 2, Event: aEvents[3]},
			{Conn: 2, Event: bEvents[2]}, {Conn: 2, Event: bEvents[1]}, {Conn: 2, Event: bEvents[2]},
		},
		State: State{
			Orders: map[string]Order{
				orderA: {ID: orderA, CustomerID: "c1", Status: "CONFIRMED", TotalCents: 1000, LastSeq: 4, Lines: map[string]int{"SKU-1": 2}},
				orderB: {ID: orderB, CustomerID: "c1", Status: "CANCELLED", Reason: "customer", TotalCents: 500, LastSeq: 3, Lines: map[string]int{"SKU-1": 1}},
			},
			Events: map[string][]Event{orderA: aEvents, orderB: bEvents},
			Stock:  []StockRow{{SKU: "SKU-1", Warehouse: "east", OnHand: 98, Reserved: 0}},
			Movements: []Movement{
				{ID: 1, SKU: "SKU-1", Warehouse: "east", OnHandDelta: 100, Kind: "initial"},
				{ID: 2, SKU: "SKU-1", Warehouse: "east", ReservedDelta: 2, Kind: "reserve", OrderID: orderA},
				{ID: 3, SKU: "SKU-1", Warehouse: "east", ReservedDelta: 1, Kind: "reserve", OrderID: orderB},
				{ID: 4, SKU: "SKU-1", Warehouse: "east", OnHandDelta: -2, ReservedDelta: -2, Kind: "commit", OrderID: orderA},
				{ID: 5, SKU: "SKU-1", Warehouse: "east", ReservedDelta: -1, Kind: "release", OrderID: orderB},
			},
			Reservations:    map[string]string{orderA: "COMMITTED", orderB: "RELEASED"},
			Payments:        map[string]Payment{orderA: {Status: "CAPTURED", AmountCents: 1000}, orderB: {Status: "VOIDED", AmountCents: 500}},
			Holds:           map[string]Hold{orderA: {State: "CAPTURED", AmountCents: 1000, CapturedCents: 1000, Captures: 1}, orderB: {State: "VOIDED", AmountCents: 500}},
			MoneyMoves:      map[string]int{orderA: 1},
			IdempotencyKeys: []KeyRow{{CustomerID: "c1", Key: "k1", OrderID: orderA}, {CustomerID: "c1", Key: "k2", OrderID: orderB}},
			Workflows:       map[string]Workflow{orderA: {Status: "Completed", Runs: 1}, orderB: {Status: "Completed", Runs: 1}},
		},
	}
}

func TestCheckPassesAConsistentRun(t *testing.T) {
	if v := Check(goodFacts()); len(v) != 0 {
		t.Fatalf("violations in a consistent run: %+v", v)
	}
}

// Each case breaks one thing the way a defect would, and the check must
// report it under the right invariant, in the window of the order.
func TestCheckCatchesEachViolation(t *testing.T) {
	setOrder := func(f *Facts, id string, change func(*Order)) {
		o := f.State.Orders[id]
		change(&o)
		f.State.Orders[id] = o
	}
	cases := []struct {
		name   string
		breaks func(*Facts)
		want   Invariant
		window int
		detail string
	}{
		// 1. accepted
		{"accepted order lost", func(f *Facts) { delete(f.State.Orders, orderB) }, InvAccepted, 1, "not in orders.orders"},
		{"order stuck", func(f *Facts) {
			setOrder(f, orderA, func(o *Order) { o.Status = "AUTHORIZED" })
		}, InvAccepted, 0, "still AUTHORIZED"},
		{"order FAILED", func(f *Facts) {
			setOrder(f, orderB, func(o *Order) { o.Status, o.Reason = "FAILED", "compensation_failed" })
		}, InvAccepted, 1, "ended FAILED"},
		{"workflow failed", func(f *Facts) {
			f.State.Workflows[orderA] = Workflow{Status: "Failed", Failure: "record CONFIRMED: deadline exceeded", Runs: 1}
		}, InvAccepted, 0, "record CONFIRMED: deadline exceeded"},
		{"workflow terminated", func(f *Facts) { f.State.Workflows[orderB] = Workflow{Status: "Terminated", Runs: 1} }, InvAccepted, 1, "ended Terminated"},
		{"workflow running for a terminal order", func(f *Facts) { f.State.Workflows[orderA] = Workflow{Status: "Running", Runs: 1} }, InvAccepted, 0, "still Running"},
		{"no workflow", func(f *Facts) { delete(f.State.Workflows, orderA) }, InvAccepted, 0, "no workflow"},
		{"workflow task panicked", func(f *Facts) {
			f.State.Workflows[orderA] = Workflow{Status: "Completed", Runs: 1, TaskFailures: []string{"WorkflowWorkerUnhandledFailure: runtime error: invalid memory address or nil pointer dereference"}}
		}, InvAccepted, 0, "failed in the workflow's code"},
		{"workflow ran twice", func(f *Facts) { f.State.Workflows[orderA] = Workflow{Status: "Completed", Runs: 2} }, InvAccepted, 0, "ran 2 times"},
		{"Temporal unreadable", func(f *Facts) { f.State.WorkflowsUnreadable = "connection refused" }, InvAccepted, WholeRun, "could not list"},

		// 2. stock
		{"row out of bounds", func(f *Facts) {
			f.State.Stock[0].Reserved = 99
		}, InvStock, WholeRun, "out of bounds"},
		{"ledger oversold on the way", func(f *Facts) {
			// Reserved 2 more than there was at that moment, then put back.
			m := f.State.Movements
			f.State.Movements = append([]Movement{m[0],
				{ID: 10, SKU: "SKU-1", Warehouse: "east", ReservedDelta: 101, Kind: "reserve", OrderID: orderB},
				{ID: 11, SKU: "SKU-1", Warehouse: "east", ReservedDelta: -101, Kind: "release", OrderID: orderB}}, m[1:]...)
		}, InvStock, 1, "after movement 10"},
		{"not conserved", func(f *Facts) { f.State.Stock[0].OnHand = 97 }, InvStock, WholeRun, "not conserved"},
		{"stock row without ledger", func(f *Facts) {
			f.State.Stock = append(f.State.Stock, StockRow{SKU: "SKU-2", Warehouse: "west", OnHand: 5})
		}, InvStock, WholeRun, "SKU-2/west"},
		{"reservation left held", func(f *Facts) { f.State.Reservations[orderB] = "RESERVED" }, InvStock, 1, "still RESERVED"},
		{"units held for a cancelled order", func(f *Facts) {
			f.State.Movements = f.State.Movements[:4]
			f.State.Stock[0].Reserved = 1
		}, InvStock, 1, "still holds 1 reserved"},
		{"confirmed but committed less", func(f *Facts) {
			setOrder(f, orderA, func(o *Order) { o.Lines = map[string]int{"SKU-1": 3} })
		}, InvStock, 0, "committed 2"},
		{"cancelled but sold", func(f *Facts) {
			f.State.Movements[4] = Movement{ID: 5, SKU: "SKU-1", Warehouse: "east", OnHandDelta: -1, ReservedDelta: -1, Kind: "commit", OrderID: orderB}
			f.State.Stock[0].OnHand = 97
		}, InvStock, 1, "committed (sold)"},

		// 3. money
		{"confirmed but not captured", func(f *Facts) { f.State.Payments[orderA] = Payment{Status: "AUTHORIZED", AmountCents: 1000} }, InvMoney, 0, "not CAPTURED"},
		{"cancelled but charged", func(f *Facts) { f.State.Payments[orderB] = Payment{Status: "CAPTURED", AmountCents: 500} }, InvMoney, 1, "the shopper is charged"},
		{"hold left in payments", func(f *Facts) { f.State.Payments[orderB] = Payment{Status: "AUTHORIZED", AmountCents: 500} }, InvMoney, 1, "a hold is left"},
		{"captured the wrong amount", func(f *Facts) { f.State.Payments[orderA] = Payment{Status: "CAPTURED", AmountCents: 999} }, InvMoney, 0, "captured 999"},
		{"provider never charged", func(f *Facts) { delete(f.State.Holds, orderA) }, InvMoney, 0, "no hold"},
		{"provider hold outlives its order", func(f *Facts) {
			f.State.Holds[orderB] = Hold{State: "AUTHORIZED", AmountCents: 500}
		}, InvMoney, 1, "provider's hold is AUTHORIZED"},
		{"provider captured twice", func(f *Facts) {
			f.State.Holds[orderA] = Hold{State: "CAPTURED", AmountCents: 1000, CapturedCents: 1000, Captures: 2}
		}, InvMoney, 0, "charged twice"},
		{"provider log shows two captures", func(f *Facts) { f.State.MoneyMoves[orderA] = 2 }, InvMoney, 0, "charged twice"},
		{"provider hold for no order", func(f *Facts) {
			f.State.Holds["cccccccc-0000-0000-0000-000000000003"] = Hold{State: "AUTHORIZED", AmountCents: 700}
		}, InvMoney, WholeRun, "which is no order"},
		{"provider ledger missing", func(f *Facts) {
			f.State.Holds, f.State.HoldsUnreadable = nil, `relation "paysim.holds" does not exist`
		}, InvMoney, WholeRun, "paysim.holds"},

		// 4. events
		{"gap in seq", func(f *Facts) {
			e := f.State.Events[orderA]
			f.State.Events[orderA] = []Event{e[0], e[1], e[3]}
		}, InvEvents, 0, "not seq 1..n"},
		{"last event is not the status", func(f *Facts) {
			setOrder(f, orderB, func(o *Order) { o.Reason = "admin" })
		}, InvEvents, 1, "the order says CANCELLED admin"},
		{"never on Kafka", func(f *Facts) { f.Kafka = f.Kafka[:6] }, InvEvents, 1, "never reached Kafka: seq 3 CANCELLED"},
		{"Kafka out of order", func(f *Facts) {
			f.Kafka[1], f.Kafka[2] = f.Kafka[2], f.Kafka[1]
		}, InvEvents, 0, "Kafka: seq 3 came after seq 1"},
		{"Kafka carries an uncommitted event", func(f *Facts) {
			f.Kafka = append(f.Kafka, KafkaRecord{Key: orderB, Event: ev(orderB, 4, "CONFIRMED", "")})
		}, InvEvents, 1, "does not have"},
		{"never on the websocket", func(f *Facts) {
			f.WS = f.WS[:len(f.WS)-3] // B's CANCELLED never came
		}, InvEvents, 1, "never reached the websocket"},
		{"websocket repeats within a subscription", func(f *Facts) {
			f.WS = append(f.WS, WSEntry{Conn: 2, Event: ev(orderA, 4, "CONFIRMED", "")})
		}, InvEvents, 0, "seq 4 again after seq 4"},
		{"websocket skips", func(f *Facts) {
			f.WS = []WSEntry{{Conn: 1, Event: ev(orderA, 1, "PENDING", "")}, {Conn: 1, Event: ev(orderA, 3, "AUTHORIZED", "")},
				{Conn: 1, Event: ev(orderA, 2, "RESERVED", "")}, {Conn: 1, Event: ev(orderA, 4, "CONFIRMED", "")}}
		}, InvEvents, 0, "seq 3 came right after seq 1"},

		// 5. idempotency
		{"one key, two orders", func(f *Facts) {
			f.Placements[0].Answers = append(f.Placements[0].Answers, Answer{Status: 200, OrderID: orderB})
		}, InvIdempotency, 0, "2 different orders"},
		{"retry refused as another request", func(f *Facts) {
			f.Placements[0].Answers[1] = Answer{Status: 422, Code: "idempotency_key_reused"}
		}, InvIdempotency, 0, "idempotency_key_reused"},
		{"order without its key", func(f *Facts) { f.State.IdempotencyKeys = f.State.IdempotencyKeys[:1] }, InvIdempotency, 1, "no Idempotency-Key row"},
		{"key row names another order", func(f *Facts) {
			f.State.IdempotencyKeys[0].OrderID = orderB
		}, InvIdempotency, 0, "row names"},

		// cancel
		{"cancel accepted, order confirmed", func(f *Facts) {
			f.Placements[0].Cancel = &Cancel{Answers: []Answer{{At: t0, Status: 200}}}
		}, InvCancel, 0, "ended CONFIRMED"},

		// http
		{"outage answered 500", func(f *Facts) {
			f.Placements[0].Answers[0] = Answer{At: t0, Status: 500, Code: "internal"}
		}, InvHTTP, 0, "answered 500 internal"},
		{"no definite answer", func(f *Facts) {
			f.Placements[1].Cancel.Answers = f.Placements[1].Cancel.Answers[:1]
		}, InvHTTP, 1, "no definite answer"},
		{"an answer a correct request cannot get", func(f *Facts) {
			f.Placements[1].Cancel.Answers[1] = Answer{At: t0, Status: 404, Code: "not_found"}
		}, InvHTTP, 1, "404 not_found"},

		// processes
		{"service exited by itself", func(f *Facts) {
			f.Exits = []Exit{{Service: "order-worker", At: t0, Window: 1, Err: "exit status 1"}}
		}, InvProcesses, 1, "order-worker exited"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := goodFacts()
			tc.breaks(&f)
			got := Check(f)
			for _, v := range got {
				if v.Invariant == tc.want && v.Window == tc.window && strings.Contains(v.Detail, tc.detail) {
					return
				}
			}
			t.Fatalf("want a %s violation in window %d saying %q; got %+v", tc.want, tc.window, tc.detail, got)
		})
	}
}

func TestTableCountsViolationsPerWindowAndInvariant(t *testing.T) {
	f := goodFacts()
	f.State.Payments[orderB] = Payment{Status: "CAPTURED", AmountCents: 500}
	f.State.HoldsUnreadable = "paysim missing"
	var buf bytes.Buffer
	WriteTable(&buf, []WindowSummary{{"baseline", 1}, {"kill-gateway", 1}}, Check(f))
	out := buf.String()
	for _, want := range []string{
		"| baseline     | 1      | ok       | ok    | ok    |",
		"| kill-gateway | 1      | ok       | ok    | 1 ✗   |",
		"| whole run    | 2      | ok       | ok    | 2 ✗   |",
		"- [money] (kill-gateway) order " + orderB + ": order is CANCELLED customer but its payment is CAPTURED",
		"- [money] (whole run) the provider's ledger (paysim.holds) could not be read",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestTimelineAttributesTimesToWindows(t *testing.T) {
	now := t0
	tl := NewTimeline("baseline", func() time.Time { return now })
	now = t0.Add(10 * time.Second)
	tl.Begin("kill-hub")
	now = t0.Add(20 * time.Second)
	tl.Begin("stop-postgres")
	for _, tc := range []struct {
		at   time.Duration
		want int
	}{{0, 0}, {9 * time.Second, 0}, {10 * time.Second, 1}, {19 * time.Second, 1}, {25 * time.Second, 2}} {
		if got := tl.At(t0.Add(tc.at)); got != tc.want {
			t.Errorf("At(+%s) = %d, want %d", tc.at, got, tc.want)
		}
	}
}

func TestSelectFaults(t *testing.T) {
	all, err := SelectFaults("all")
	if err != nil || len(all) != 9 {
		t.Fatalf("all: %d faults, %v", len(all), err)
	}
	some, err := SelectFaults("restart-broker, kill-hub")
	if err != nil || len(some) != 2 || some[0].Name != "restart-broker" || some[1].Name != "kill-hub" {
		t.Fatalf("two faults in the given order: %+v, %v", some, err)
	}
	if _, err := SelectFaults("kill-everything"); err == nil {
		t.Fatal("an unknown fault is an error")
	}
}
