package temporalserver_test

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ordersaga/ordersaga/internal/temporalsetup"
	"github.com/ordersaga/ordersaga/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func greet(ctx workflow.Context, name string) (string, error) {
	return "hello " + name, nil
}

func TestWorkflowRunsOnDevServer(t *testing.T) {
	addr, ns := testkit.NewNamespace(t)
	c := testkit.TemporalClient(t, addr, ns)
	w := worker.New(c, "smoke", worker.Options{})
	w.RegisterWorkflow(greet)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "smoke-1", TaskQueue: "smoke"}, greet, "saga")
	if err != nil {
		t.Fatal(err)
	}
	var got string
	if err := run.Get(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if got != "hello saga" {
		t.Errorf("got %q", got)
	}
}

func TestSearchAttributesAreRegisteredOnce(t *testing.T) {
	addr, ns := testkit.NewNamespace(t)
	c := testkit.TemporalClient(t, addr, ns)
	ctx := context.Background()
	// NewNamespace registered them already; a second run must be a no-op.
	if err := temporalsetup.EnsureSearchAttributes(ctx, c, ns); err != nil {
		t.Fatalf("second registration: %v", err)
	}
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range temporalsetup.SearchAttributes {
		if got, ok := resp.GetCustomAttributes()[name]; !ok || got != typ {
			t.Errorf("search attribute %s: got %v (present %v), want %v", name, got, ok, typ)
		}
	}
}
