package codec_test

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ordersaga/ordersaga/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func greet(ctx workflow.Context, name string) (string, error) { return "hello " + name, nil }

// TestWorkerWithoutTheKeyRetries: a worker deployed without the key of a
// workflow's payloads does not fail the workflow (which would end it for
// good); its workflow tasks fail and are retried, and a worker with the key
// completes the workflow.
func TestWorkerWithoutTheKeyRetries(t *testing.T) {
	addr, ns := testkit.NewNamespace(t)
	starter := testkit.TemporalClient(t, addr, ns) // encrypts with test-2
	const queue = "codec-test"

	opts := testkit.ClientOptions(addr, ns)
	opts.DataConverter = mustCodec(t, "other:"+randomKey(t)).DataConverter()
	keyless, err := client.Dial(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer keyless.Close()
	w := worker.New(keyless, queue, worker.Options{})
	w.RegisterWorkflow(greet)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := starter.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue, WorkflowTaskTimeout: 2 * time.Second}, greet, "ann")
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the keyless worker to have failed a workflow task.
	for {
		it := starter.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		failedTask := false
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			failedTask = failedTask || e.GetEventType() == enums.EVENT_TYPE_WORKFLOW_TASK_FAILED
		}
		if failedTask {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the keyless worker never failed a workflow task")
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.Stop()
	d, err := starter.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		t.Fatal(err)
	}
	if st := d.GetWorkflowExecutionInfo().GetStatus(); st != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("after the keyless worker the workflow is %s, want RUNNING", st)
	}

	// The key arrives: a worker with the keyring finishes the workflow.
	w2 := worker.New(starter, queue, worker.Options{})
	w2.RegisterWorkflow(greet)
	if err := w2.Start(); err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	var out string
	if err := run.Get(ctx, &out); err != nil || out != "hello ann" {
		t.Fatalf("with the key: %q, %v", out, err)
	}
}
