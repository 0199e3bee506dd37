package faultrun

import (
	"bytes"
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// TestFaultRunShort is the short version of `make faults`: every service
// as its own process, a few dozen orders, and a worker kill, a broker
// restart, a PostgreSQL immediate stop and a PostgreSQL freeze while they
// run. It fails on any broken invariant and prints the table.
func TestFaultRunShort(t *testing.T) {
	faults, err := SelectFaults("kill-payment-worker,restart-broker,stop-postgres,freeze-postgres")
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var table bytes.Buffer
	res, err := Run(ctx, Options{
		Orders: 40, Faults: faults, Shoppers: 6,
		Baseline: 4 * time.Second, Pause: 6 * time.Second, Down: 3 * time.Second, Freeze: 8 * time.Second,
		StepTimeout: time.Minute, RetryFor: 90 * time.Second, Settle: 100 * time.Second, Catchup: 30 * time.Second,
		Seed: seed, Log: zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)), Out: &table,
	})
	t.Log("\n" + table.String())
	if err != nil {
		t.Fatalf("the fault run could not be carried out: %v (logs in %s/logs)", err, res.Dir)
	}
	if !res.Passed() {
		t.Fatalf("%d invariant violation(s), listed above; services' logs in %s/logs", len(res.Violations), res.Dir)
	}
}
