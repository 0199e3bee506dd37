// Package replay replays recorded order workflow histories against the
// current workflow code, so that a change that would break running orders
// is caught before it ships. It reads the JSON that `temporal workflow show
// --output json` writes and the file the Temporal UI downloads, and it can
// fetch histories from a live server by visibility query.
package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ordersaga/ordersaga/internal/codec"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// History is one recorded workflow run.
type History struct {
	// Source says where it came from: a file path or "server".
	Source     string
	WorkflowID string
	History    *historypb.History
}

// Replayer replays histories against one implementation of OrderWorkflow.
type Replayer struct {
	workflow any
	log      log.Logger
	dc       converter.DataConverter
}

// Option changes how a Replayer replays.
type Option func(*Replayer)

// WithDataConverter replays with dc, the data converter the workers ran
// with. A history whose payloads are encrypted replays only with the codec
// that holds its keys; a history in clear replays with that codec too,
// since it passes payloads in clear through. Without it, the SDK's
// default converter reads histories in clear only.
func WithDataConverter(dc converter.DataConverter) Option {
	return func(r *Replayer) { r.dc = dc }
}

// New returns a replayer for fn, registered under OrderWorkflow's name.
func New(fn any, logger log.Logger, opts ...Option) *Replayer {
	r := &Replayer{workflow: fn, log: logger}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Replay returns nil when h replays without a nondeterminism error.
func (r *Replayer) Replay(h History) error {
	if err := r.readable(h); err != nil {
		return err
	}
	rep, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: r.dc})
	if err != nil {
		return fmt.Errorf("workflow replayer: %w", err)
	}
	rep.RegisterWorkflowWithOptions(r.workflow, workflow.RegisterOptions{Name: order.WorkflowName})
	return rep.ReplayWorkflowHistory(r.log, h.History)
}

// readable checks that the workflow's input decodes with the replayer's
// data converter. An encrypted history replayed without its key would
// otherwise fail as if the code had changed (the workflow cannot read its
// input, so it issues other commands), and send the operator looking for
// a nondeterminism that is not there.
func (r *Replayer) readable(h History) error {
	events := h.History.GetEvents()
	if len(events) == 0 {
		return nil
	}
	input := events[0].GetWorkflowExecutionStartedEventAttributes().GetInput()
	if len(input.GetPayloads()) == 0 || string(input.GetPayloads()[0].GetMetadata()[converter.MetadataEncoding]) != codec.Encoding {
		return nil
	}
	dc := r.dc
	if dc == nil {
		dc = converter.GetDefaultDataConverter()
	}
	var in json.RawMessage
	if err := dc.FromPayload(input.GetPayloads()[0], &in); err != nil {
		keyID := string(input.GetPayloads()[0].GetMetadata()[codec.MetadataKeyID])
		return fmt.Errorf("the history is encrypted (key %q) and does not decode: set TEMPORAL_CODEC_KEYS to a keyring that lists that key: %w", keyID, err)
	}
	return nil
}

// Files expands paths (files, or folders of *.json files) into a sorted list.
func Files(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(p, "*.json"))
		if err != nil {
			return nil, err
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("%s holds no *.json history", p)
		}
		out = append(out, matches...)
	}
	sort.Strings(out)
	return out, nil
}

// Load reads a history file in any of the shapes tools write: {"events":[…]}
// (the CLI and the UI), a bare array of events, {"history":{"events":[…]}},
// with events in any order (some UI versions download them newest first).
func Load(path string) (History, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return History{}, err
	}
	h, err := Parse(raw)
	if err != nil {
		return History{}, fmt.Errorf("%s: %w", path, err)
	}
	h.Source = path
	if h.WorkflowID == "" {
		h.WorkflowID = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return h, nil
}

// Parse reads one history from JSON.
func Parse(raw []byte) (History, error) {
	var top struct {
		WorkflowID string            `json:"workflowId"`
		Events     []json.RawMessage `json:"events"`
		History    *struct {
			Events []json.RawMessage `json:"events"`
		} `json:"history"`
	}
	var events []json.RawMessage
	trimmed := bytes.TrimSpace(raw)
	switch {
	case len(trimmed) > 0 && trimmed[0] == '[':
		if err := json.Unmarshal(trimmed, &events); err != nil {
			return History{}, fmt.Errorf("not a JSON array of events: %w", err)
		}
	default:
		if err := json.Unmarshal(trimmed, &top); err != nil {
			return History{}, fmt.Errorf("not a JSON history: %w", err)
		}
		events = top.Events
		if len(events) == 0 && top.History != nil {
			events = top.History.Events
		}
	}
	if len(events) == 0 {
		return History{}, errors.New("no events: expected {\"events\":[...]} as `temporal workflow show --output json` writes")
	}
	ids := make([]int64, len(events))
	for i, e := range events {
		var head struct {
			EventID json.RawMessage `json:"eventId"`
		}
		if err := json.Unmarshal(e, &head); err != nil {
			return History{}, fmt.Errorf("event %d: %w", i, err)
		}
		id, err := strconv.ParseInt(strings.Trim(string(head.EventID), `"`), 10, 64)
		if err != nil {
			return History{}, fmt.Errorf("event %d has no eventId", i)
		}
		ids[i] = id
	}
	idx := make([]int, len(events))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return ids[idx[a]] < ids[idx[b]] })
	sorted := make([]json.RawMessage, len(events))
	for i, j := range idx {
		sorted[i] = events[j]
	}
	normalized, _ := json.Marshal(map[string]any{"events": sorted})
	hist, err := client.HistoryFromJSON(bytes.NewReader(normalized), client.HistoryJSONOptions{})
	if err != nil {
		return History{}, fmt.Errorf("decode events (payloads must be encoded, as downloaded without decoding): %w", err)
	}
	if hist.GetEvents()[0].GetEventType() != enums.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED {
		return History{}, errors.New("the first event is not WorkflowExecutionStarted: the history is incomplete")
	}
	id := top.WorkflowID
	if id == "" {
		id = workflowIDOf(hist)
	}
	return History{WorkflowID: id, History: hist}, nil
}

// workflowIDOf reads the order id from the workflow's input.
func workflowIDOf(h *historypb.History) string {
	attrs := h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes()
	if attrs.GetWorkflowType().GetName() != order.WorkflowName {
		return ""
	}
	var in order.Input
	if err := converter.GetDefaultDataConverter().FromPayloads(attrs.GetInput(), &in); err != nil || in.OrderID == "" {
		return ""
	}
	return order.WorkflowID(in.OrderID)
}

// Fetch returns the histories of the workflows that query matches, from a
// live server.
func Fetch(ctx context.Context, c client.Client, query string, limit int) ([]History, error) {
	var out []History
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token, PageSize: 100})
		if err != nil {
			return nil, fmt.Errorf("list workflows %q: %w", query, err)
		}
		for _, ex := range resp.GetExecutions() {
			h, err := history(ctx, c, ex.GetExecution())
			if err != nil {
				return nil, err
			}
			out = append(out, h)
			if limit > 0 && len(out) >= limit {
				return out, nil
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return out, nil
		}
	}
}

func history(ctx context.Context, c client.Client, ex *commonpb.WorkflowExecution) (History, error) {
	it := c.GetWorkflowHistory(ctx, ex.GetWorkflowId(), ex.GetRunId(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return History{}, fmt.Errorf("history of %s: %w", ex.GetWorkflowId(), err)
		}
		h.Events = append(h.Events, e)
	}
	return History{Source: "server", WorkflowID: ex.GetWorkflowId(), History: h}, nil
}

// Report replays each history and writes one line per history to out. It
// returns an error naming every workflow that no longer replays.
func (r *Replayer) Report(histories []History, out io.Writer) error {
	var failed []string
	for _, h := range histories {
		if err := r.Replay(h); err != nil {
			failed = append(failed, h.WorkflowID)
			fmt.Fprintf(out, "FAIL %s (%s): %s\n", h.WorkflowID, h.Source, explain(err))
			continue
		}
		fmt.Fprintf(out, "ok   %s (%s, %d events)\n", h.WorkflowID, h.Source, len(h.History.GetEvents()))
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d histories do not replay: %s", len(failed), len(histories), strings.Join(failed, ", "))
	}
	fmt.Fprintf(out, "%d histories replay\n", len(histories))
	return nil
}

// explain adds what a replay failure means for the release at hand.
func explain(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "TMPRL1100") || strings.Contains(strings.ToLower(msg), "nondetermin") {
		return "nondeterministic: the current code issues different commands than this history recorded " +
			"(put the change behind workflow.GetVersion; see docs/operators.md): " + msg
	}
	return msg
}
