package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/api/temporalproto"

	"github.com/ordersaga/ordersaga/internal/replay"
	"github.com/ordersaga/ordersaga/internal/testkit"
)

const goldenDir = "../../workflows/order/testdata/histories"

// TestReplayEncryptedHistories: `ordersaga replay` replays histories whose
// payloads are encrypted (the golden histories, each payload encrypted as
// the workers' codec does, search attributes left as they are) with the
// keys of TEMPORAL_CODEC_KEYS; it still replays the golden histories in
// clear with those keys; and without the keys it fails on the encrypted
// ones instead of replaying them as if they were empty.
func TestReplayEncryptedHistories(t *testing.T) {
	goldens, err := replay.Files([]string{goldenDir})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := testkit.Codec()
	for _, g := range goldens {
		h, err := replay.Load(g)
		if err != nil {
			t.Fatal(err)
		}
		encrypted := 0
		err = proxy.VisitPayloads(context.Background(), h.History, proxy.VisitPayloadsOptions{
			SkipSearchAttributes: true,
			Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
				encrypted += len(ps)
				return c.Encode(ps)
			},
		})
		if err != nil || encrypted == 0 {
			t.Fatalf("encrypt %s: %d payloads, %v", g, encrypted, err)
		}
		data, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h.History)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte(`"encryption-key-id"`)) {
			t.Fatalf("%s: no encrypted payload in the file", g)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(g)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ctx := context.Background()
	t.Setenv("JWT_SECRET", "")
	t.Setenv("TEMPORAL_CODEC_KEYS", testkit.CodecKeys)
	if err := run(ctx, "replay", []string{dir}); err != nil {
		t.Errorf("encrypted histories with the keys: %v", err)
	}
	if err := run(ctx, "replay", []string{goldenDir}); err != nil {
		t.Errorf("histories in clear with the keys: %v", err)
	}
	t.Setenv("TEMPORAL_CODEC_KEYS", "")
	// Without the keys, each encrypted history fails saying which key it
	// needs, not as if the workflow code had changed.
	stdout := os.Stdout
	r, w, _ := os.Pipe()
	os.Stdout = w
	err = run(ctx, "replay", []string{dir})
	os.Stdout = stdout
	w.Close()
	report, _ := io.ReadAll(r)
	if err == nil {
		t.Error("encrypted histories replayed without the keys")
	}
	if n := strings.Count(string(report), `encrypted (key "test-2")`); n != len(goldens) || strings.Contains(string(report), "nondeterministic") {
		t.Errorf("%d of %d failures name the key; the report:\n%s", n, len(goldens), report)
	}
}
