package temporalserver_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/ordersaga/ordersaga/internal/localstack/ports"
	"github.com/ordersaga/ordersaga/internal/localstack/temporalserver"
)

// A server killed with SIGKILL comes back on its port with its SQLite
// file, and a workflow started before the kill is still there.
func TestKillAndRestartKeepsWorkflows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	port, err := ports.Free()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts := temporalserver.Options{DBFile: filepath.Join(dir, "temporal.db"), Port: port, LogFile: filepath.Join(dir, "temporal.log")}
	s, err := temporalserver.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if s != nil {
			s.Stop()
		}
	}()
	c, err := client.DialContext(ctx, client.Options{HostPort: s.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	// No worker polls this queue: the workflow stays open across the kill.
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "survives-kill", TaskQueue: "nobody"}, "Anything")
	c.Close()
	if err != nil {
		t.Fatal(err)
	}

	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := temporalserver.Ping(ctx, s.Addr(), "default"); err == nil {
		t.Fatal("a killed server answered")
	}
	if s, err = temporalserver.Start(ctx, opts); err != nil {
		t.Fatalf("restart on the same port and file: %v", err)
	}
	c, err = client.DialContext(ctx, client.Options{HostPort: s.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := c.DescribeWorkflowExecution(ctx, "survives-kill", run.GetRunID())
	if err != nil {
		t.Fatalf("the workflow started before the kill: %v", err)
	}
	if got := d.GetWorkflowExecutionInfo().GetStatus().String(); got != "Running" {
		t.Errorf("status after the restart: %s, want Running", got)
	}
}
