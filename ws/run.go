package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/kafkaclient"
	"github.com/ordersaga/ordersaga/internal/metrics"
	"github.com/ordersaga/ordersaga/internal/outbox"
	"github.com/ordersaga/ordersaga/internal/postgres"
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
func (h *Hub) Handler(kafka *kgo.Client) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	h.probes(mux, kafka)
	return mux
}

// OpsHandler is the ops port (WS_OPS_ADDR): /metrics for Prometheus,
// /status for the gateway's system status, and the probes again, so that
// an operator on that port sees everything the hub says about itself.
func (h *Hub) OpsHandler(reg *prometheus.Registry, kafka *kgo.Client) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int64{"connections": int64(h.Stats().Connections), "kafka_consumer_lag": h.KafkaLag()})
	})
	if reg != nil {
		mux.Handle("/metrics", metrics.Handler(reg))
	}
	h.probes(mux, kafka)
	return mux
}

// probes adds /healthz (the process runs) and /readyz (its database and
// broker answer).
func (h *Hub) probes(mux *http.ServeMux, kafka *kgo.Client) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		checks := map[string]string{"postgres:orders": "ok", "kafka": "ok"}
		var failing []string
		if err := h.events.Ping(ctx); err != nil {
			checks["postgres:orders"], failing = "unavailable", append(failing, "postgres:orders")
		}
		if err := kafka.Ping(ctx); err != nil {
			checks["kafka"], failing = "unavailable", append(failing, "kafka")
		}
		w.Header().Set("Content-Type", "application/json")
		status := map[string]any{"status": "ready", "checks": checks}
		if len(failing) > 0 {
			status["status"], status["failing"] = "unavailable", failing
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(status)
	})
}

// Run serves the hub's websockets on cfg.WSAddr and its /metrics and
// /status on cfg.WSOpsAddr until ctx ends, then closes every connection
// with a going-away frame. It is `ordersaga ws`. ready, when given, is
// told both bound addresses.
func Run(ctx context.Context, cfg config.Config, log *zap.Logger, reg *prometheus.Registry, ready func(wsAddr, opsAddr string)) error {
	if err := cfg.Require("ORDERS_DATABASE_URL", "KAFKA_BROKERS", "JWT_SECRET"); err != nil {
		return err
	}
	// Stopping serving for any reason stops the consumer too.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	pool, err := postgres.Open(ctx, cfg.OrdersDatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	started := time.Now()
	kafka, err := Consumer(cfg.KafkaBrokers, cfg.KafkaTopic, started, log)
	if err != nil {
		return fmt.Errorf("kafka consumer: %w", err)
	}
	defer kafka.Close()
	// Create the topic if the relay has not yet, so consuming starts at once.
	go func() {
		for ctx.Err() == nil {
			tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := kafkaclient.EnsureTopic(tctx, kafka, cfg.KafkaTopic, cfg.KafkaPartitions)
			cancel()
			if err == nil {
				return
			}
			log.Warn("kafka not ready; retrying", zap.Error(err))
			time.Sleep(2 * time.Second)
		}
	}()
	hub := New(outbox.NewLog(pool), authn.New(cfg.JWTSecret, cfg.JWTTTL, time.Now), Settings{
		Topic: cfg.KafkaTopic, SendBuffer: cfg.WSSendBuffer, AllowedOrigins: cfg.WSAllowedOrigins,
	}, reg, log)
	consumed := make(chan struct{})
	go func() { hub.Consume(ctx, kafka); close(consumed) }()

	ln, err := net.Listen("tcp", cfg.WSAddr)
	if err != nil {
		return fmt.Errorf("ws hub listen on %s (set WS_ADDR): %w", cfg.WSAddr, err)
	}
	opsLn, err := net.Listen("tcp", cfg.WSOpsAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("ws hub ops listen on %s (set WS_OPS_ADDR): %w", cfg.WSOpsAddr, err)
	}
	if ready != nil {
		ready(ln.Addr().String(), opsLn.Addr().String())
	}
	hs := &http.Server{Handler: hub.Handler(kafka), ReadHeaderTimeout: 5 * time.Second}
	ops := &http.Server{Handler: hub.OpsHandler(reg, kafka), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hub.Shutdown(sctx)
		_ = hs.Shutdown(sctx)
		_ = ops.Shutdown(sctx)
	}()
	opsDone := make(chan error, 1)
	go func() {
		err := ops.Serve(opsLn)
		if !errors.Is(err, http.ErrServerClosed) {
			hs.Close() // a hub that cannot be watched stops, rather than run unseen
		}
		opsDone <- err
	}()
	hub.log.Info("ws hub listening", zap.String("addr", ln.Addr().String()), zap.String("ops_addr", opsLn.Addr().String()))
	err = hs.Serve(ln)
	stop()
	opsErr := <-opsDone
	<-consumed
	for _, e := range []error{err, opsErr} {
		if !errors.Is(e, http.ErrServerClosed) {
			return e
		}
	}
	return nil
}
