package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ordersaga/ordersaga/internal/localstack/temporalserver"
	"github.com/ordersaga/ordersaga/internal/temporalsetup"
	"github.com/ordersaga/ordersaga/internal/testkit"
)

// componentJSON is one line of the system status as the admin page reads it.
type componentJSON struct {
	Name     string     `json:"name"`
	Up       bool       `json:"up"`
	LastSeen *time.Time `json:"last_seen"`
	Backlog  *int64     `json:"backlog"`
	Detail   string     `json:"detail"`
}

// status reads the system status as the admin.
func (s *stack) status() map[string]componentJSON {
	s.t.Helper()
	r := s.do("GET", "/api/v1/system/status", s.admin, nil)
	if r.Status != 200 {
		s.t.Fatalf("system status: %d %s", r.Status, r.Body)
	}
	var out struct{ Components []componentJSON }
	r.json(s.t, &out)
	m := map[string]componentJSON{}
	for _, c := range out.Components {
		m[c.Name] = c
	}
	return m
}

// waitComponent polls the status until cond holds for the component and
// returns how long that took; it fails the test after within.
func (s *stack) waitComponent(name string, within time.Duration, what string, cond func(componentJSON) bool) time.Duration {
	s.t.Helper()
	began := time.Now()
	for {
		c := s.status()[name]
		if cond(c) {
			return time.Since(began)
		}
		if time.Since(began) > within {
			s.t.Fatalf("%s is not %s after %s: %+v", name, what, within, c)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestStatusShowsAStoppedWorkerWithin15s: the system status follows the
// workers' heartbeats: a payment worker that stops shows down within 15 s
// (at once, when it stops gracefully), and up again when it returns, while
// the other parts stay up and orders go through once it is back.
func TestStatusShowsAStoppedWorkerWithin15s(t *testing.T) {
	s := newStack(t, options{noWorkers: true})
	for _, name := range []string{"order worker", "product worker", "payment worker"} {
		if c := s.status()[name]; c.Up || c.Detail != "no worker has sent a heartbeat" {
			t.Errorf("%s before any worker runs: %+v", name, c)
		}
	}
	s.sys.StartWorker("order")
	s.sys.StartWorker("product")
	stopPayment := s.sys.StartWorker("payment")
	up := func(c componentJSON) bool { return c.Up }
	for _, name := range []string{"order worker", "product worker", "payment worker"} {
		s.waitComponent(name, 15*time.Second, "up", up)
	}
	c := s.status()["payment worker"]
	if c.LastSeen == nil || time.Since(*c.LastSeen) > 15*time.Second || c.Detail != "" || c.Backlog == nil {
		t.Errorf("a running payment worker: %+v, want last_seen within 15 s, a backlog and no detail", c)
	}

	stopPayment()
	stoppedAt := time.Now()
	took := s.waitComponent("payment worker", 15*time.Second, "down", func(c componentJSON) bool { return !c.Up })
	t.Logf("the stopped payment worker showed down after %s", took.Round(time.Millisecond))
	all := s.status()
	if c := all["payment worker"]; c.Detail != "stopped" || c.LastSeen == nil || c.LastSeen.After(time.Now()) || stoppedAt.Sub(*c.LastSeen) > 15*time.Second {
		t.Errorf("the stopped payment worker: %+v, want detail stopped and its last heartbeat", c)
	}
	for _, name := range []string{"gateway", "order worker", "product worker", "ws hub", "outbox relay"} {
		if !all[name].Up {
			t.Errorf("%s is down while only the payment worker stopped: %+v", name, all[name])
		}
	}
	// Orders wait for payment meanwhile, and go through when it is back.
	s.product("HEALTH-1", 700, map[string]int{"east": 5})
	shopper, _ := s.customer()
	var o orderJSON
	s.placeOrder(shopper, "tok_ok", "HEALTH-1", 1).json(t, &o)
	// Its authorization waits in the payment queue: the status and
	// /metrics show the backlog.
	s.waitComponent("payment worker", 20*time.Second, "with a backlog", func(c componentJSON) bool { return c.Backlog != nil && *c.Backlog >= 1 })
	if m := s.do("GET", "/metrics", "", nil); !strings.Contains(string(m.Body), `ordersaga_temporal_task_queue_backlog{task_queue="payment"} 1`) {
		t.Errorf("/metrics does not show the payment queue's backlog of 1")
	}

	s.sys.StartWorker("payment")
	took = s.waitComponent("payment worker", 15*time.Second, "up again", up)
	t.Logf("the restarted payment worker showed up after %s", took.Round(time.Millisecond))
	if c := s.status()["payment worker"]; c.Detail != "" || c.LastSeen == nil || time.Since(*c.LastSeen) > 15*time.Second {
		t.Errorf("the restarted payment worker: %+v", c)
	}
	s.waitStatus(shopper, o.ID, 30*time.Second, "CONFIRMED")
}

// TestStatusFallsBackToPollers: on a Temporal server that keeps no worker
// heartbeats (1.29's default), the status judges workers by their task
// queues' pollers, and says so.
func TestStatusFallsBackToPollers(t *testing.T) {
	testkit.TemporalAddress(t) // the shared server proves the CLI is built
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	server, err := temporalserver.Start(ctx, temporalserver.Options{WithoutWorkerHeartbeats: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Stop)
	if err := temporalsetup.EnsureSearchAttributes(ctx, testkit.TemporalClient(t, server.Addr(), "default"), "default"); err != nil {
		t.Fatal(err)
	}
	s := newStack(t, options{temporalAddr: server.Addr(), namespace: "default"})
	for _, name := range []string{"order worker", "product worker", "payment worker"} {
		s.waitComponent(name, 20*time.Second, "up by its pollers", func(c componentJSON) bool {
			return c.Up && c.LastSeen != nil && strings.Contains(c.Detail, "judged by its pollers")
		})
	}
}
