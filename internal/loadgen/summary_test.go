package loadgen

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersaga/ordersaga/workflows/order"
)

func TestSummarize(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ok := func(sent, answered, ended int, s order.Status, r order.Reason) Order {
		return Order{ID: uuid.New(), Sent: at(sent), Answered: at(answered), Ended: at(ended), Status: s, Reason: r}
	}
	res := &Result{
		Start: t0, End: at(10_000), Dropped: 2, WebsocketDrops: 1,
		Orders: []Order{
			ok(0, 100, 1000, order.Confirmed, order.ReasonNone),
			ok(0, 200, 2000, order.Confirmed, order.ReasonNone),
			ok(1000, 1100, 3000, order.Rejected, order.ReasonPaymentDeclined),
			func() Order {
				o := ok(2000, 2300, 4000, order.Cancelled, order.ReasonCustomer)
				o.CancelSent, o.CancelAccepted = true, true
				return o
			}(),
			func() Order { // cancelled too late: 409
				o := ok(3000, 3400, 5000, order.Confirmed, order.ReasonNone)
				o.CancelSent = true
				return o
			}(),
			{ID: uuid.New(), Sent: at(4000), Answered: at(4000 + 500)}, // no end came
			{Sent: at(4000), Answered: at(4050), PlaceError: "HTTP 503 unavailable"},
			{Sent: at(4000), Answered: at(4060), PlaceError: "network"},
		},
	}
	s := Summarize(res)
	want := Summary{
		Attempted: 8, Placed: 6, Ended: 5, TimedOut: 1,
		CancelsSent: 2, CancelsAccepted: 1, Dropped: 2, Elapsed: 10 * time.Second,
	}
	if s.Attempted != want.Attempted || s.Placed != want.Placed || s.Ended != want.Ended || s.TimedOut != want.TimedOut ||
		s.CancelsSent != want.CancelsSent || s.CancelsAccepted != want.CancelsAccepted || s.Dropped != want.Dropped || s.Elapsed != want.Elapsed {
		t.Errorf("counts %+v", s)
	}
	wantOutcomes := map[string]int{"CONFIRMED": 3, "REJECTED(payment_declined)": 1, "CANCELLED(customer)": 1}
	if !equalCounts(s.Outcomes, wantOutcomes) {
		t.Errorf("outcomes %v, want %v", s.Outcomes, wantOutcomes)
	}
	wantErrors := map[string]int{"place: HTTP 503 unavailable": 1, "place: network": 1, "timeout: no terminal status": 1, "websocket: connection lost": 1}
	if !equalCounts(s.Errors, wantErrors) {
		t.Errorf("errors %v, want %v", s.Errors, wantErrors)
	}
	// 6 placed between the first POST (0 ms) and the last answer (4.5 s);
	// 5 ended by the last end (5 s).
	if !near(s.PlacedPerSecond, 6/4.5) || !near(s.EndedPerSecond, 5/5.0) {
		t.Errorf("rates placed %v ended %v", s.PlacedPerSecond, s.EndedPerSecond)
	}
	// POST latencies of the placed: 100, 100, 200, 300, 400, 500 ms; the
	// histogram rounds the rank (0.9 × 6 = 5.4 → the 5th).
	if s.Post.Count != 6 || !nearD(s.Post.P50, 200*time.Millisecond) || !nearD(s.Post.P90, 400*time.Millisecond) || !nearD(s.Post.Max, 500*time.Millisecond) {
		t.Errorf("POST latency %+v", s.Post)
	}
	// To terminal: 1, 2, 2, 2, 2 s.
	if s.ToTerminal.Count != 5 || !nearD(s.ToTerminal.P50, 2*time.Second) || !nearD(s.ToTerminal.P99, 2*time.Second) {
		t.Errorf("to terminal %+v", s.ToTerminal)
	}

	var out bytes.Buffer
	if err := s.Print(&out, Config{RunID: "R", Concurrency: 20, Tokens: Tokens{{"tok_ok", 1}}, Lines: Range{1, 3}}); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"CANCELLED(customer)", "place: HTTP 503 unavailable", "placed 1.3, ended 1.0", "2 sent, 1 accepted", "dropped arrivals"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the printed summary lacks %q:\n%s", line, out.String())
		}
	}
}

func TestSummarizeNothing(t *testing.T) {
	t0 := time.Now()
	s := Summarize(&Result{Start: t0, End: t0})
	if s.Attempted != 0 || s.PlacedPerSecond != 0 || s.EndedPerSecond != 0 || s.Post.Count != 0 {
		t.Errorf("empty run: %+v", s)
	}
	if s.Post.String() != "none" {
		t.Errorf("no latencies print as %q", s.Post.String())
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func near(a, b float64) bool { return a > b*0.999 && a < b*1.001 }

// nearD allows the histogram's 3 significant digits.
func nearD(a, b time.Duration) bool { return a >= b-b/500 && a <= b+b/500 }
