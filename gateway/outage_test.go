package gateway_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/internal/localstack/ports"
	"github.com/ordersaga/ordersaga/internal/localstack/temporalserver"
	"github.com/ordersaga/ordersaga/internal/temporalsetup"
	"github.com/ordersaga/ordersaga/internal/testkit"
)

// TestOrdersAreAcceptedWhileTemporalIsDown: with Temporal stopped, POST
// /orders still answers 202 within its deadline and the order is readable;
// once Temporal is back, the starter runs it to a terminal status.
func TestOrdersAreAcceptedWhileTemporalIsDown(t *testing.T) {
	tmp := newOwnTemporal(t)
	const startTimeout = 2 * time.Second
	s := newStack(t, options{temporalAddr: tmp.addr(), namespace: "default", startTimeout: startTimeout})
	s.product("WATCH-42", 1000, map[string]int{"east": 5})
	tok, _ := s.customer()

	tmp.stop()
	began := time.Now()
	r := s.placeOrder(tok, "tok_ok", "WATCH-42", 2)
	took := time.Since(began)
	var o orderJSON
	r.json(t, &o)
	if r.Status != 202 || o.Status != "PENDING" {
		t.Fatalf("with Temporal down: %d %s", r.Status, r.Body)
	}
	if took > startTimeout+3*time.Second {
		t.Errorf("answered after %s; the deadline is %s", took, startTimeout)
	}
	if r := s.do("GET", "/api/v1/orders/"+o.ID, tok, nil); r.Status != 200 {
		t.Errorf("the accepted order is not readable: %d", r.Status)
	}
	var ready struct{ Failing []string }
	if r := s.do("GET", "/readyz", "", nil); r.Status != 503 {
		t.Errorf("readyz with Temporal down: %d", r.Status)
	} else {
		r.json(t, &ready)
		if len(ready.Failing) != 1 || ready.Failing[0] != "temporal" {
			t.Errorf("readyz names %v", ready.Failing)
		}
	}

	tmp.start()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = orders.NewStarter(s.store, testkit.TemporalClient(t, tmp.addr(), "default"), orders.StarterSettings{Interval: 200 * time.Millisecond}, testkit.Logger(), nil).Run(ctx)
		close(done)
	}()
	defer func() { stop(); <-done }()
	final := s.waitStatus(tok, o.ID, 90*time.Second, "CONFIRMED", "REJECTED", "CANCELLED", "FAILED")
	if final.Status != "CONFIRMED" {
		t.Errorf("after Temporal came back the order ended %s(%s)", final.Status, final.Reason)
	}
}

// ownTemporal is a Temporal dev server of the test's own, which it can stop
// and start again (same port, same database) to play an outage.
type ownTemporal struct {
	t      testing.TB
	port   int
	dbFile string
	server *temporalserver.Server
}

func newOwnTemporal(t testing.TB) *ownTemporal {
	t.Helper()
	testkit.TemporalAddress(t) // the shared server proves the CLI is built
	port, err := ports.Free()
	if err != nil {
		t.Fatal(err)
	}
	o := &ownTemporal{t: t, port: port, dbFile: filepath.Join(t.TempDir(), "temporal.db")}
	o.start()
	t.Cleanup(func() { o.stop() })
	if err := temporalsetup.EnsureSearchAttributes(context.Background(), testkit.TemporalClient(t, o.addr(), "default"), "default"); err != nil {
		t.Fatal(err)
	}
	return o
}

func (o *ownTemporal) addr() string { return o.server.Addr() }

func (o *ownTemporal) start() {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ts, err := temporalserver.Start(ctx, temporalserver.Options{DBFile: o.dbFile, Port: o.port})
	if err != nil {
		o.t.Fatal(err)
	}
	o.server = ts
}

func (o *ownTemporal) stop() {
	if o.server != nil {
		o.server.Stop()
		o.server = nil
	}
}
