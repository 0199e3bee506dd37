package saga

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/ordersaga/ordersaga/internal/logging"
	"github.com/ordersaga/ordersaga/internal/replay"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

const goldenDir = "../testdata/histories"

// paths are the saga paths `make histories` records, one file each.
var paths = []string{
	"confirmed", "out_of_stock", "declined", "transient_errors_then_success", "capture_fails",
	"cancel_while_authorizing", "cancel_after_authorization", "timeout",
}

func golden(t *testing.T) []replay.History {
	t.Helper()
	var out []replay.History
	for _, p := range paths {
		h, err := replay.Load(filepath.Join(goldenDir, p+".json"))
		if err != nil {
			t.Fatalf("golden history %s: %v (record them with make histories)", p, err)
		}
		out = append(out, h)
	}
	return out
}

func replayer(fn any) *replay.Replayer {
	return replay.New(fn, logging.Temporal(testkit.Logger()))
}

// TestGoldenHistoriesReplay: every recorded path replays against the
// current OrderWorkflow.
func TestGoldenHistoriesReplay(t *testing.T) {
	var out bytes.Buffer
	if err := replayer(OrderWorkflow).Report(golden(t), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "8 histories replay") {
		t.Errorf("report: %s", out.String())
	}
}

// A new release adds a pause before reserving stock: a new command at the
// start of every order.

// withPauseUnversioned makes the change naively.
func withPauseUnversioned(ctx workflow.Context, in order.Input) (order.Result, error) {
	s, err := newSaga(ctx, in)
	if err != nil {
		return order.Result{}, err
	}
	s.beforeReserve = func(ctx workflow.Context) error { return workflow.Sleep(ctx, time.Second) }
	return s.run(ctx)
}

// withPauseVersioned makes the same change behind workflow.GetVersion:
// histories recorded before it take the old path.
func withPauseVersioned(ctx workflow.Context, in order.Input) (order.Result, error) {
	s, err := newSaga(ctx, in)
	if err != nil {
		return order.Result{}, err
	}
	s.beforeReserve = func(ctx workflow.Context) error {
		if workflow.GetVersion(ctx, "pause-before-reserve", workflow.DefaultVersion, 1) == 1 {
			return workflow.Sleep(ctx, time.Second)
		}
		return nil
	}
	return s.run(ctx)
}

func TestAChangeWithoutGetVersionBreaksReplay(t *testing.T) {
	var out bytes.Buffer
	err := replayer(withPauseUnversioned).Report(golden(t), &out)
	if err == nil {
		t.Fatalf("the unversioned change replayed every history:\n%s", out.String())
	}
	// Every history fails, and the report names each workflow and why.
	for _, h := range golden(t) {
		if !strings.Contains(err.Error(), h.WorkflowID) || !strings.Contains(out.String(), "FAIL "+h.WorkflowID) {
			t.Errorf("the report does not name %s:\n%s", h.WorkflowID, out.String())
		}
	}
	if !strings.Contains(strings.ToLower(out.String()), "nondeterministic") {
		t.Errorf("the report does not say why:\n%s", out.String())
	}
}

func TestTheSameChangeBehindGetVersionReplays(t *testing.T) {
	var out bytes.Buffer
	if err := replayer(withPauseVersioned).Report(golden(t), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// And new orders take the new path.
	w := newWorld()
	env := newEnv()
	w.register(env)
	env.ExecuteWorkflow(withPauseVersioned, input())
	var res order.Result
	if err := env.GetWorkflowResult(&res); err != nil || res.Status != order.Confirmed {
		t.Fatalf("a new order on the versioned code: %+v, %v", res, err)
	}
	if env.Now().Sub(time.Time{}) <= 0 {
		t.Error("clock did not move")
	}
}

func TestLoadAcceptsTheShapesToolsWrite(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(goldenDir, "confirmed.json"))
	if err != nil {
		t.Fatal(err)
	}
	base, err := replay.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	events := string(raw[strings.Index(string(raw), "[") : strings.LastIndex(string(raw), "]")+1])
	reversed := reverseEvents(t, raw)
	for name, doc := range map[string]string{
		"bare array":            events,
		"history wrapper":       `{"history":{"events":` + events + `}}`,
		"newest first (old UI)": reversed,
		"with workflowId":       `{"workflowId":"order-x","events":` + events + `}`,
	} {
		h, err := replay.Parse([]byte(doc))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(h.History.GetEvents()) != len(base.History.GetEvents()) {
			t.Errorf("%s: %d events, want %d", name, len(h.History.GetEvents()), len(base.History.GetEvents()))
		}
		if err := replayer(OrderWorkflow).Replay(h); err != nil {
			t.Errorf("%s does not replay: %v", name, err)
		}
	}
	for name, doc := range map[string]string{
		"empty":     `{}`,
		"not json":  `events`,
		"truncated": `{"events":[{"eventId":"5","eventType":"EVENT_TYPE_WORKFLOW_TASK_SCHEDULED"}]}`,
	} {
		if _, err := replay.Parse([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func reverseEvents(t *testing.T, raw []byte) string {
	t.Helper()
	var doc struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(doc.Events)-1; i < j; i, j = i+1, j-1 {
		doc.Events[i], doc.Events[j] = doc.Events[j], doc.Events[i]
	}
	b, _ := json.Marshal(doc)
	return string(b)
}
