package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/loadgen"
)

// runFanout is `ordersaga fanout`: websocket clients on a running hub,
// synthetic order events on the hub's topic, and the delay from produce
// to each client. Like load, it is a client of a running stack; it also
// needs Kafka, since it plays the outbox relay's part.
func runFanout(ctx context.Context, appCfg config.Config, log *zap.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "the gateway's base URL, where the admin signs in")
	hubURL := fs.String("ws", "", "the hub's websocket URL, e.g. ws://127.0.0.1:8091/ws (required: a hub that consumes --topic)")
	opsURL := fs.String("ops", "", "the hub's ops address, e.g. http://127.0.0.1:9475, for its memory and CPU (empty: none)")
	email := fs.String("admin-email", "", "admin email (default: from DATA_DIR/admin-credentials.txt)")
	password := fs.String("admin-password", "", "admin password (default: from DATA_DIR/admin-credentials.txt)")
	dataDir := fs.String("data-dir", appCfg.Dev.DataDir, "where `make dev` wrote admin-credentials.txt")
	brokers := fs.String("kafka", defaultBrokers(appCfg), "the Kafka brokers the hub consumes from, comma-separated (KAFKA_BROKERS when set)")
	topic := fs.String("topic", "", "the topic the hub consumes (its KAFKA_TOPIC): one of its own, never the real order-events topic")
	clients := fs.Int("clients", 5000, "websocket clients, each subscribed to all")
	rate := fs.Float64("rate", 50, "events produced per second")
	duration := fs.Duration("duration", 20*time.Second, "how long to produce events")
	drain := fs.Duration("drain", 10*time.Second, "longest wait after the last event for every client to have every event")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile of this process (the clients) to this file")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	switch {
	case fs.NArg() > 0:
		return usageError{fmt.Sprintf("fanout takes flags only, not %q", fs.Arg(0))}
	case *hubURL == "" || *topic == "":
		return usageError{"fanout needs --ws and --topic: a hub of its own, consuming a topic of its own (make fanout starts one)"}
	case *topic == appCfg.KafkaTopic:
		return usageError{fmt.Sprintf("--topic %s is KAFKA_TOPIC, the real order events: every dashboard would show the synthetic orders", *topic)}
	}
	cfg := loadgen.FanoutConfig{
		BaseURL: strings.TrimRight(*url, "/"), AdminEmail: *email, AdminPassword: *password,
		HubURL: *hubURL, HubOpsURL: strings.TrimRight(*opsURL, "/"), Brokers: strings.Split(*brokers, ","), Topic: *topic,
		Clients: *clients, Rate: *rate, Duration: *duration, Drain: *drain, Progress: stderr,
		Log: log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)),
	}
	if cfg.AdminEmail == "" || cfg.AdminPassword == "" {
		var err error
		if cfg.AdminEmail, cfg.AdminPassword, err = readAdminCredentials(filepath.Join(*dataDir, "admin-credentials.txt")); err != nil {
			return err
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	res, err := loadgen.Fanout(ctx, cfg)
	if err != nil {
		return fmt.Errorf("fanout: %w", err)
	}
	return res.Print(stdout)
}

// defaultBrokers is KAFKA_BROKERS, or else the broker `make dev` starts.
func defaultBrokers(cfg config.Config) string {
	if len(cfg.KafkaBrokers) > 0 {
		return strings.Join(cfg.KafkaBrokers, ",")
	}
	return fmt.Sprintf("127.0.0.1:%d", cfg.Dev.KafkaPort)
}
