package gateway_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// metricsReport is the body of GET /system/metrics.
type metricsReport struct {
	StepSeconds int64   `json:"step_seconds"`
	Timestamps  []int64 `json:"timestamps"`
	Charts      []struct {
		ID     string `json:"id"`
		Series []struct {
			Name   string     `json:"name"`
			Values []*float64 `json:"values"`
		} `json:"series"`
	} `json:"charts"`
	SlowStatements []struct {
		Query string `json:"query"`
		Calls int64  `json:"calls"`
	} `json:"slow_statements"`
	Notes []string `json:"notes"`
}

// values returns the values of one series, nil if it is not there.
func (r metricsReport) values(chart, series string) []*float64 {
	for _, c := range r.Charts {
		for _, s := range c.Series {
			if c.ID == chart && s.Name == series {
				return s.Values
			}
		}
	}
	return nil
}

// count turns a rate series back into how many things it counted.
func (r metricsReport) count(chart, series string) float64 {
	var n float64
	for _, v := range r.values(chart, series) {
		if v != nil {
			n += *v * float64(r.StepSeconds)
		}
	}
	return math.Round(n*1000) / 1000
}

// latest is the most recent value of a series that is not null, or -1.
func (r metricsReport) latest(chart, series string) float64 {
	vs := r.values(chart, series)
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i] != nil {
			return *vs[i]
		}
	}
	return -1
}

// TestSystemMetrics: orders placed through the API show in the
// monitoring, counted from their events; so do the events the relay
// published, the gateway's own requests, the database's sessions and size,
// the hub's lag, the task queues' backlogs and the schedule-to-start
// latency of the orders' tasks. Only admins may read it.
func TestSystemMetrics(t *testing.T) {
	s := newStack(t, options{})
	shopper, _ := s.customer()
	if r := s.do("GET", "/api/v1/system/metrics", "", nil); r.Status != 401 || r.errCode() != "unauthenticated" {
		t.Errorf("without a token: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", "/api/v1/system/metrics", shopper, nil); r.Status != 403 || r.errCode() != "forbidden" {
		t.Errorf("as a customer: %d %s", r.Status, r.Body)
	}

	s.product("METRIC-1", 500, map[string]int{"east": 10})
	var ids []string
	for _, token := range []string{"tok_ok", "tok_ok", "tok_declined"} {
		var o orderJSON
		if r := s.placeOrder(shopper, token, "METRIC-1", 1); r.Status != 202 {
			t.Fatalf("place an order: %d %s", r.Status, r.Body)
		} else {
			r.json(t, &o)
		}
		ids = append(ids, o.ID)
	}
	for _, id := range ids {
		s.waitStatus(shopper, id, 30*time.Second, "CONFIRMED", "REJECTED")
	}

	var r metricsReport
	var why string
	deadline := time.Now().Add(45 * time.Second)
	for {
		s.do("GET", "/api/v1/system/metrics", s.admin, nil).json(t, &r)
		var published int
		if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM orders.order_events WHERE published_at IS NOT NULL`).Scan(&published); err != nil {
			t.Fatal(err)
		}
		switch {
		case r.count("orders", "confirmed") != 2 || r.count("orders", "rejected:payment_declined") != 1:
			why = fmt.Sprintf("orders: %v confirmed, %v declined", r.count("orders", "confirmed"), r.count("orders", "rejected:payment_declined"))
		case r.latest("order_latency", "p50") <= 0 || r.latest("order_latency", "p99") < r.latest("order_latency", "p50"):
			why = fmt.Sprintf("order latency p50 %v, p99 %v", r.latest("order_latency", "p50"), r.latest("order_latency", "p99"))
		case r.count("kafka_events", "published") != float64(published) || r.count("kafka_bytes", "published") <= 0:
			why = fmt.Sprintf("kafka: %v events published, the outbox marked %d", r.count("kafka_events", "published"), published)
		case r.latest("gateway_requests", "requests") <= 0 || r.latest("gateway_latency", "p99") <= 0:
			why = "no gateway requests yet"
		case r.latest("postgres_connections", "open") <= 0 || r.latest("postgres_size", "size") <= 0:
			why = "no database sample yet"
		case r.latest("kafka_lag", "ws hub") < 0 || r.latest("temporal_backlog", "payment") < 0:
			why = "no hub lag or task-queue backlog yet"
		case r.latest("temporal_schedule_to_start", "activity p50") <= 0 || r.latest("temporal_schedule_to_start", "workflow task p99") <= 0:
			// The harness's workers share the gateway's registry, as in
			// `ordersaga dev`: the first tasks ever started must count.
			why = "no schedule-to-start latency of the orders' tasks"
		default:
			why = ""
		}
		if why == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the monitoring does not show the system after 45 s: %s; notes %q", why, r.Notes)
		}
		time.Sleep(500 * time.Millisecond)
	}

	if len(r.Timestamps) != 180 || r.StepSeconds != 5 {
		t.Fatalf("%d timestamps %d s apart, want 15 minutes of 5 s steps", len(r.Timestamps), r.StepSeconds)
	}
	for i := 1; i < len(r.Timestamps); i++ {
		if r.Timestamps[i]-r.Timestamps[i-1] != 5 {
			t.Fatalf("timestamps %d and %d are not one step apart", r.Timestamps[i-1], r.Timestamps[i])
		}
	}
	if end := time.Unix(r.Timestamps[179], 0); time.Since(end) < 0 || time.Since(end) > 15*time.Second {
		t.Errorf("the last timestamp is %s, %s ago", end, time.Since(end))
	}
	for _, c := range r.Charts {
		for _, s := range c.Series {
			if len(s.Values) != len(r.Timestamps) {
				t.Errorf("%s/%s has %d values for %d timestamps", c.ID, s.Name, len(s.Values), len(r.Timestamps))
			}
		}
	}
	if r.count("orders", "failed") != 0 || r.count("orders", "cancelled") != 0 || r.count("orders", "rejected:out_of_stock") != 0 {
		t.Errorf("outcomes that did not happen: %v failed, %v cancelled, %v out of stock",
			r.count("orders", "failed"), r.count("orders", "cancelled"), r.count("orders", "rejected:out_of_stock"))
	}
	// The test harness's PostgreSQL loads pg_stat_statements.
	if len(r.SlowStatements) == 0 {
		t.Errorf("no slow statements; notes %q", r.Notes)
	}
	for _, st := range r.SlowStatements {
		if strings.Contains(st.Query, "tok_") || st.Calls <= 0 {
			t.Errorf("slow statement %+v", st)
		}
	}
}
