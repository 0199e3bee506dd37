package loadgen_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ordersaga/ordersaga/internal/loadgen"
	"github.com/ordersaga/ordersaga/internal/testkit/system"
)

// TestFanoutCountsEveryDelivery runs the fan-out against a whole system's
// hub, as `ordersaga fanout` runs against a hub of its own: every client
// receives every event once, and the report's counts agree with what the
// hub says it queued.
func TestFanoutCountsEveryDelivery(t *testing.T) {
	sys := system.Start(t, system.Options{NoWorkers: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	queuedBefore := hubQueued(t, sys)
	var progress bytes.Buffer
	const clients, rate = 50, 40
	res, err := loadgen.Fanout(ctx, loadgen.FanoutConfig{
		BaseURL: sys.GatewayURL, AdminEmail: "root@example.com", AdminPassword: "admin-password",
		HubURL: sys.HubURL, HubOpsURL: sys.HubOpsURL, Brokers: sys.Brokers, Topic: sys.Topic,
		Clients: clients, Rate: rate, Duration: 3 * time.Second, Drain: 10 * time.Second, Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	var printed bytes.Buffer
	if err := res.Print(&printed); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s\nprogress:\n%s", printed.String(), progress.String())

	const events = 3 * rate
	if res.Events != events || res.Clients != clients || res.ProduceErrors != 0 {
		t.Fatalf("%d events to %d clients (%d refused), want %d to %d", res.Events, res.Clients, res.ProduceErrors, events, clients)
	}
	if res.Deliveries != events*clients || res.Missed != 0 || res.Duplicates != 0 || res.OutOfOrder != 0 ||
		res.DroppedClients() != 0 || res.ErrorFrames != 0 || res.Delay.Count != events*clients {
		t.Errorf("deliveries %d (delays %d), want %d; missed %d, duplicated %d, out of order %d, dropped %v, error frames %d",
			res.Deliveries, res.Delay.Count, events*clients, res.Missed, res.Duplicates, res.OutOfOrder, res.Dropped, res.ErrorFrames)
	}
	if queued := hubQueued(t, sys) - queuedBefore; queued != events*clients {
		t.Errorf("the hub queued %d events to clients, the report counts %d deliveries", queued, res.Deliveries)
	}
	if d := res.Delay; d.P50 <= 0 || d.P99 < d.P50 || d.Max < d.P99 || d.Max > 10*time.Second {
		t.Errorf("delays %+v", d)
	}
	// Each client had all 120 events, over about the 3 s they were produced in.
	if rate := res.DeliveriesPerSecond(); rate < clients*40/2 || rate > clients*40*2 {
		t.Errorf("%.0f deliveries/s, want about %d", rate, clients*40)
	}

	// The hub's figures come from its ops port, after a collection. (Here
	// the hub shares its process with the clients and the test, so its
	// memory per connection means nothing; make fanout runs it alone.)
	h := res.Hub
	if h == nil || !h.Before.Collected || !h.Connected.Collected || !h.After.Collected || h.Before.RSS <= 0 || h.Connected.Heap <= 0 ||
		h.Connected.Stacks <= 0 || h.After.CPU <= h.Before.CPU || h.Connected.Goroutines < clients {
		t.Fatalf("hub figures %+v", h)
	}
	want := fmt.Sprintf("fanout-result clients=%d events=%d ", clients, events)
	if !strings.Contains(printed.String(), want) || !strings.Contains(printed.String(), " missed=0 duplicated=0 out_of_order=0 dropped=0 ") {
		t.Errorf("the report's result line is not %q…missed=0 duplicated=0 out_of_order=0 dropped=0:\n%s", want, printed.String())
	}
}

// hubQueued is the hub's count of events queued to clients.
func hubQueued(t *testing.T, sys *system.System) int64 {
	t.Helper()
	families, err := sys.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == "ordersaga_ws_events_delivered_total" {
			return int64(mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	t.Fatal("the hub reports no ordersaga_ws_events_delivered_total")
	return 0
}
