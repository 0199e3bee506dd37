// Package kafkaclient builds the franz-go clients ordersaga uses and makes
// sure the event topic exists. Nothing here knows whether the brokers are
// kfake or Apache Kafka.
package kafkaclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
)

// Producer returns an idempotent producer (franz-go's default: acks=all,
// ordered per partition) whose deliveries give up after deliveryTimeout, so
// that a caller learns of an outage instead of waiting forever.
func Producer(brokers []string, topic string, deliveryTimeout time.Duration, log *zap.Logger) (*kgo.Client, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordDeliveryTimeout(deliveryTimeout),
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.WithLogger(kzap.New(log, kzap.Level(kgo.LogLevelWarn))),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return cl, nil
}

// EnsureTopic creates topic with partitions if it is missing.
func EnsureTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32) error {
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}
