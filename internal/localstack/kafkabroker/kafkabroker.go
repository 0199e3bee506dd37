// Package kafkabroker runs a Kafka-protocol broker in-process with franz-go's
// kfake, for the local stack and the test harness. Clients talk to it over
// TCP exactly as they talk to Apache Kafka.
package kafkabroker

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ordersaga/ordersaga/internal/localstack/ports"
)

// Options describe the broker to run.
type Options struct {
	// Port on 127.0.0.1; 0 picks a free one.
	Port int
	// DataDir persists topics and offsets across restarts; empty keeps them in memory.
	DataDir string
}

// Broker is a running in-process broker.
type Broker struct {
	cluster *kfake.Cluster
}

// Start runs a one-node cluster and returns once a client can reach it.
func Start(ctx context.Context, opts Options) (*Broker, error) {
	if opts.Port == 0 {
		p, err := ports.Free()
		if err != nil {
			return nil, err
		}
		opts.Port = p
	} else if err := ports.CheckFree(opts.Port, "the Kafka broker", "set DEV_KAFKA_PORT, or KAFKA_BROKERS to use a running broker"); err != nil {
		return nil, err
	}
	kopts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(opts.Port), kfake.ClusterID("ordersaga-dev")}
	if opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(opts.DataDir))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("start kafka broker: %w", err)
	}
	b := &Broker{cluster: c}
	if err := Ping(ctx, b.Addrs()); err != nil {
		c.Close()
		return nil, err
	}
	return b, nil
}

// Addrs are the bootstrap addresses of the broker.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Stop closes the broker, flushing persisted state.
func (b *Broker) Stop() { b.cluster.Close() }

// Ping returns nil once the brokers answer a metadata request, retrying
// until ctx ends or 30 seconds pass.
func Ping(ctx context.Context, brokers []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if err = cl.Ping(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka brokers %v did not answer: %w", brokers, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
