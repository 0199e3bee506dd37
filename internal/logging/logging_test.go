package logging

import (
	"testing"

	"go.temporal.io/sdk/log"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestTemporalBridgeKeepsFields(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	tl := Temporal(zap.New(core))
	tl.Info("activity started", "order_id", "o-1", "attempt", 2)
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("want 1 entry, got %d", len(entries))
	}
	fields := entries[0].ContextMap()
	if entries[0].Message != "activity started" || fields["order_id"] != "o-1" || fields["attempt"] != int64(2) {
		t.Errorf("bridge lost fields: %q %v", entries[0].Message, fields)
	}
}

func TestNewHonoursLevel(t *testing.T) {
	l, err := New(zapcore.WarnLevel, false)
	if err != nil {
		t.Fatal(err)
	}
	if l.Core().Enabled(zapcore.InfoLevel) || !l.Core().Enabled(zapcore.WarnLevel) {
		t.Error("level not applied")
	}
}

func TestSDKLinesAboutAnOrderCarryOrderID(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	tl := Temporal(zap.New(core))
	tl.Warn("Activity error.", "WorkflowID", "order-7f1c", "ActivityType", "ReserveStock")
	tl.Info("unrelated", "WorkflowID", "smoke-1")
	// A logger scoped to the workflow (as the SDK builds it) tags every line.
	scoped := log.With(tl, "WorkflowID", "order-abcd")
	scoped.Info("task done")
	// A line that names order_id itself keeps its own.
	tl.Info("own", "order_id", "x", "WorkflowID", "order-y")

	entries := logs.All()
	want := []any{"7f1c", nil, "abcd", "x"}
	for i, e := range entries {
		if got := e.ContextMap()["order_id"]; got != want[i] {
			t.Errorf("%q: order_id = %v, want %v", e.Message, got, want[i])
		}
	}
}
