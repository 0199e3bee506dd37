package ws

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/ordersaga/ordersaga/internal/kafkaclient"
	"github.com/ordersaga/ordersaga/internal/metrics"
	"github.com/ordersaga/ordersaga/internal/retry"
	"github.com/ordersaga/ordersaga/internal/serve"
)

// Consumer returns a client that reads every partition of topic, starting
// with the records stamped after from: the hub's start. Records before it
// are in orders.order_events, which after_seq replays.
func Consumer(brokers []string, topic string, from time.Time, log *zap.Logger) (*kgo.Client, error) {
	return kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(from.UnixMilli())),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.MetadataMinAge(time.Second),
		kgo.WithLogger(kzap.New(log, kzap.Level(kgo.LogLevelWarn))),
	)
}

// Handler is the public port: /ws, and /healthz and /readyz for the
// probes. /metrics and /status are on OpsHandler only, so that browsers
// and the internet never reach them.
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	serve.Probes(mux, h.checks()...)
	return mux
}

// OpsHandler is the ops port (WS_OPS_ADDR): /metrics for Prometheus,
// /status for the gateway's system status, /debug/pprof/ for profiles
// when Settings.Profiling says so,
// and the probes again, so that an operator on that port sees everything
// the hub says about itself.
func (h *Hub) OpsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int64{"connections": int64(h.Stats().Connections), "kafka_consumer_lag": h.KafkaLag()})
	})
	if h.reg != nil {
		mux.Handle("/metrics", metrics.Handler(h.reg))
	}
	// The profiler, for a hub under load (make fanout profiles one, and
	// reads its live heap through heap?gc=1).
	if h.settings.Profiling {
		serve.Profiling(mux)
	}
	serve.Probes(mux, h.checks()...)
	return mux
}

// checks are the hub's dependencies for /readyz: its database and, when
// it consumes, the broker.
func (h *Hub) checks() []serve.Check {
	var cs []serve.Check
	if h.events != nil {
		cs = append(cs, serve.Check{Name: "postgres:orders", Ping: h.events.Ping})
	}
	if h.kafka != nil {
		cs = append(cs, serve.Check{Name: "kafka", Ping: h.kafka.Ping})
	}
	return cs
}

// Run consumes the topic and serves the hub's websockets on its listener
// and its /metrics and /status on its ops listener until ctx ends, then
// closes every connection with a going-away frame. A hub whose ops port
// fails stops, rather than run unseen.
func (h *Hub) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if h.kafka != nil {
		// Create the topic if the relay has not yet, so consuming starts at once.
		g.Go(func() error {
			_ = retry.Do(gctx, 500*time.Millisecond, 5*time.Second, func(ctx context.Context) error {
				tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				return kafkaclient.EnsureTopic(tctx, h.kafka, h.settings.Topic, h.settings.Partitions)
			}, func(err error, _ time.Duration) { h.log.Warn("kafka not ready; retrying", zap.Error(err)) })
			return nil
		})
		g.Go(func() error { h.Consume(gctx, h.kafka); return nil })
	}
	// Hijacked websockets outlive http.Server.Shutdown: the hub says
	// goodbye to each before the servers stop.
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(sctx)
		return nil
	})
	if h.listener != nil {
		h.log.Info("ws hub listening", zap.String("addr", h.listener.Addr().String()))
		g.Go(func() error { return serve.Run(gctx, serve.NewServer(h.Handler()), h.listener) })
	}
	if h.opsListener != nil {
		h.log.Info("ws hub ops listening", zap.String("ops_addr", h.opsListener.Addr().String()))
		g.Go(func() error { return serve.Run(gctx, serve.NewServer(h.OpsHandler()), h.opsListener) })
	}
	return g.Wait()
}
