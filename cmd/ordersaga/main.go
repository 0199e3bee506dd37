// Command ordersaga runs every part of ordersaga: one binary, one subcommand
// per service. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/logging"
	"github.com/ordersaga/ordersaga/internal/metrics"
)

const usage = `usage: ordersaga <command> [flags]

commands:
  dev                       run the whole system locally (PostgreSQL, Kafka, Temporal, every service)
  migrate                   apply the SQL migrations of every schema
  gateway                   run the REST gateway
  ws                        run the websocket hub
  worker order|product|payment
                            run one Temporal worker
  admin create --email E --password P
                            create an admin account
  temporal setup            register the namespace and search attributes on TEMPORAL_ADDRESS
  replay [--query Q] [--limit N] [FILE|DIR ...]
                            replay workflow histories (files, folders of *.json, or the
                            workflows a visibility query finds on TEMPORAL_ADDRESS)
                            against the current OrderWorkflow
  repair ORDER_ID           finish the compensation of a FAILED or terminated order
  load [--url U] [--concurrency N | --rate R] [--orders N | --duration D]
       [--tokens tok_ok=90,tok_declined=10] [--cancel F] [--lines 1-3] [--report F.html]
                            place orders against a running stack, follow them over the
                            websocket hub and print throughput and latency (--help: all flags)
  fanout --ws U --topic T [--ops U] [--clients N] [--rate R] [--duration D]
                            connect N websocket clients to a hub that consumes topic T, each
                            subscribed to all, produce synthetic order events to T and print
                            the delay from produce to client and the hub's memory per
                            connection (make fanout starts a hub of its own for it)

Configuration is read from the environment; see README.md.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1], os.Args[2:])
	stop()
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "ordersaga: %v\n\n%s", err, usage)
		os.Exit(2)
	case err != nil && !errors.Is(err, context.Canceled):
		fmt.Fprintf(os.Stderr, "ordersaga: %v\n", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, cmd string, args []string) error {
	cfg, err := config.Load()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	// load and fanout are clients of a running stack: they need none of
	// the secrets.
	if cmd == "load" || cmd == "fanout" {
		log, err := logging.New(cfg.LogLevel, true)
		if err != nil {
			return err
		}
		if cmd == "fanout" {
			return runFanout(ctx, cfg, log, args, os.Stdout, os.Stderr)
		}
		return runLoad(ctx, cfg, log, args, os.Stdout, os.Stderr)
	}
	// dev makes its own random JWT secret and accepts any given one, for
	// local tries; everything else runs where a guessable secret would let
	// anyone sign an admin token.
	if cmd != "dev" {
		if err := cfg.CheckSecrets(); err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
	}
	log, err := logging.New(cfg.LogLevel, cmd == "dev")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log = log.With(zap.String("command", cmd))

	switch cmd {
	case "dev":
		return runDev(ctx, cfg, log)
	case "migrate":
		return runMigrate(ctx, cfg, log)
	case "gateway":
		reg := metrics.NewRegistry()
		return runGateway(ctx, cfg, log, reg, metrics.TemporalSDK(reg))
	case "ws":
		return runHub(ctx, cfg, log, metrics.NewRegistry())
	case "worker":
		if len(args) != 1 {
			return usageError{"worker needs one of: order, product, payment"}
		}
		reg := metrics.NewRegistry()
		return runWorker(ctx, cfg, log, reg, metrics.TemporalSDK(reg), args[0], true)
	case "admin":
		if len(args) == 0 || args[0] != "create" {
			return usageError{"admin needs the subcommand create"}
		}
		fs := flag.NewFlagSet("admin create", flag.ContinueOnError)
		email := fs.String("email", "", "the admin's email")
		password := fs.String("password", "", "the admin's password (at least 8 characters)")
		name := fs.String("name", "Admin", "the admin's display name")
		if err := fs.Parse(args[1:]); err != nil {
			return usageError{err.Error()}
		}
		return runAdminCreate(ctx, cfg, log, *email, *password, *name)
	case "temporal":
		if len(args) != 1 || args[0] != "setup" {
			return usageError{"temporal needs the subcommand setup"}
		}
		return runTemporalSetup(ctx, cfg, log)
	case "replay":
		fs := flag.NewFlagSet("replay", flag.ContinueOnError)
		query := fs.String("query", "", `visibility query, e.g. 'OrderStatus="FAILED"'; fetches histories from TEMPORAL_ADDRESS`)
		limit := fs.Int("limit", 1000, "most histories to fetch with --query")
		if err := fs.Parse(args); err != nil {
			return usageError{err.Error()}
		}
		if (*query == "") == (fs.NArg() == 0) {
			return usageError{"replay needs history files or folders, or --query"}
		}
		return runReplay(ctx, cfg, log, *query, *limit, fs.Args())
	case "repair":
		if len(args) != 1 {
			return usageError{"repair needs one order id"}
		}
		return runRepair(ctx, cfg, log, args[0])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return nil
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}
