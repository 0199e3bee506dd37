package faultrun

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
)

// KafkaObserver reads topic order-events from its start, as any consumer
// of the events may, and records every record in the order it read them.
// franz-go reconnects by itself, so it reads on across a broker restart.
type KafkaObserver struct {
	cl  *kgo.Client
	log *zap.Logger

	mu      sync.Mutex
	records []KafkaRecord
	seen    map[string]map[int]bool
}

// NewKafkaObserver returns a consumer of topic on brokers (without a
// consumer group: it reads every partition itself).
func NewKafkaObserver(brokers []string, topic string, log *zap.Logger) (*KafkaObserver, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(500*time.Millisecond), // find the topic soon after the relay creates it
		// The broker restart makes franz-go warn on every retry; errors are enough.
		kgo.WithLogger(kzap.New(log, kzap.Level(kgo.LogLevelError))),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka observer: %w", err)
	}
	return &KafkaObserver{cl: cl, log: log, seen: map[string]map[int]bool{}}, nil
}

// Run consumes until ctx ends, then closes the client.
func (k *KafkaObserver) Run(ctx context.Context) {
	defer k.cl.Close()
	for {
		fetches := k.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			k.log.Debug("kafka fetch error", zap.String("topic", topic), zap.Int32("partition", p), zap.Error(err))
		})
		fetches.EachRecord(func(r *kgo.Record) {
			var e Event
			if err := json.Unmarshal(r.Value, &e); err != nil {
				k.log.Warn("kafka record is not an order event", zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset))
				return
			}
			k.mu.Lock()
			k.records = append(k.records, KafkaRecord{Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Event: e})
			if k.seen[e.OrderID] == nil {
				k.seen[e.OrderID] = map[int]bool{}
			}
			k.seen[e.OrderID][e.Seq] = true
			k.mu.Unlock()
		})
	}
}

// Has reports whether the event (orderID, seq) was read.
func (k *KafkaObserver) Has(orderID string, seq int) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.seen[orderID][seq]
}

// Records returns every record read, in order.
func (k *KafkaObserver) Records() []KafkaRecord {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]KafkaRecord(nil), k.records...)
}
