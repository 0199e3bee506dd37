package kafkabroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ordersaga/ordersaga/internal/localstack/kafkabroker"
	"github.com/ordersaga/ordersaga/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestRecordRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	brokers := testkit.KafkaBrokers(t)
	roundTrip(ctx, t, brokers, "roundtrip", "order-1", `{"seq":1}`)
}

// TestDataSurvivesRestart is what `make dev` relies on: a broker restarted
// on the same data directory still has the records.
func TestDataSurvivesRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	b, err := kafkabroker.Start(ctx, kafkabroker.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(ctx, t, b.Addrs(), "persisted", "k", "v1")
	b.Stop()

	b2, err := kafkabroker.Start(ctx, kafkabroker.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Stop()
	got := consume(ctx, t, b2.Addrs(), "persisted", 1)
	if string(got[0].Value) != "v1" {
		t.Errorf("after restart got %q", got[0].Value)
	}
}

func roundTrip(ctx context.Context, t *testing.T, brokers []string, topic, key, value string) {
	t.Helper()
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	got := consume(ctx, t, brokers, topic, 1)
	if string(got[0].Key) != key || string(got[0].Value) != value {
		t.Errorf("got %q=%q, want %q=%q", got[0].Key, got[0].Value, key, value)
	}
}

func consume(ctx context.Context, t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline", len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}
