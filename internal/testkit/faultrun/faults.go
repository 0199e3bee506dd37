package faultrun

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Fault is one fault of DESIGN.md's table: Inject does it and undoes it
// (restarts what it killed, thaws what it froze), and returns once the
// system's parts are back; the system's own recovery is what the run
// then watches.
type Fault struct {
	Name   string
	Inject func(ctx context.Context, t *Target) error
}

// Target is what faults act on.
type Target struct {
	Stack *Stack
	Procs *Procs
	// Down is how long a killed or stopped part stays down.
	Down time.Duration
	// Freeze is how long PostgreSQL stays frozen.
	Freeze time.Duration
}

// Service names, as Procs knows them.
const (
	svcGateway = "gateway"
	svcHub     = "hub"
	svcOrder   = "order-worker"
	svcProduct = "product-worker"
	svcPayment = "payment-worker"
)

// Faults lists every fault, in the order the full run injects them.
var Faults = []Fault{
	killService("kill-order-worker", svcOrder),
	killService("kill-product-worker", svcProduct),
	killService("kill-payment-worker", svcPayment),
	killService("kill-gateway", svcGateway),
	killService("kill-hub", svcHub),
	{Name: "restart-broker", Inject: func(ctx context.Context, t *Target) error {
		t.Stack.StopBroker()
		if err := sleep(ctx, t.Down); err != nil {
			return err
		}
		return t.Stack.StartBroker(ctx)
	}},
	{Name: "stop-postgres", Inject: func(ctx context.Context, t *Target) error {
		if err := t.Stack.StopPostgresImmediate(ctx); err != nil {
			return err
		}
		if err := sleep(ctx, t.Down); err != nil {
			return err
		}
		return t.Stack.StartPostgres(ctx)
	}},
	{Name: "freeze-postgres", Inject: func(ctx context.Context, t *Target) error {
		if err := t.Stack.FreezePostgres(t.Freeze + 15*time.Second); err != nil {
			t.Stack.ThawPostgres()
			return err
		}
		// Thawed whatever happens: a frozen server outlives nothing well.
		defer t.Stack.ThawPostgres()
		return sleep(ctx, t.Freeze)
	}},
	{Name: "kill-temporal", Inject: func(ctx context.Context, t *Target) error {
		if err := t.Stack.KillTemporal(); err != nil {
			return err
		}
		if err := sleep(ctx, t.Down); err != nil {
			return err
		}
		return t.Stack.StartTemporal(ctx)
	}},
}

func killService(name, service string) Fault {
	return Fault{Name: name, Inject: func(ctx context.Context, t *Target) error {
		if err := t.Procs.Kill(service); err != nil {
			return err
		}
		if err := sleep(ctx, t.Down); err != nil {
			return err
		}
		return t.Procs.Restart(ctx, service)
	}}
}

// SelectFaults returns the faults named in list (comma-separated), in the
// order given; "all" is every fault.
func SelectFaults(list string) ([]Fault, error) {
	if strings.TrimSpace(list) == "all" {
		return Faults, nil
	}
	var out []Fault
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		found := false
		for _, f := range Faults {
			if f.Name == name {
				out = append(out, f)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown fault %q; known: %s", name, strings.Join(FaultNames(), ", "))
		}
	}
	return out, nil
}

// FaultNames lists the names of every fault.
func FaultNames() []string {
	names := make([]string, len(Faults))
	for i, f := range Faults {
		names[i] = f.Name
	}
	return names
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
