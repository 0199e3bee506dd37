package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/loadgen"
	"github.com/ordersaga/ordersaga/internal/temporalclient"
)

// runLoad is `ordersaga load`. It is a client of a running stack: it
// needs the stack's address and an admin's credentials, none of the
// services' configuration (dataDir only says where `make dev` wrote the
// credentials).
func runLoad(ctx context.Context, appCfg config.Config, log *zap.Logger, args []string, stdout, stderr io.Writer) error {
	dataDirDefault := appCfg.Dev.DataDir
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "the gateway's base URL")
	email := fs.String("admin-email", "", "admin email (default: from DATA_DIR/admin-credentials.txt)")
	password := fs.String("admin-password", "", "admin password (default: from DATA_DIR/admin-credentials.txt)")
	dataDir := fs.String("data-dir", dataDirDefault, "where `make dev` wrote admin-credentials.txt")
	concurrency := fs.Int("concurrency", 20, "orders in flight, from POST to terminal status (with --rate: the most in flight)")
	rate := fs.Float64("rate", 0, "place this many orders per second instead of keeping --concurrency busy")
	orders := fs.Int("orders", 0, "orders to place (default 200 unless --duration)")
	duration := fs.Duration("duration", 0, "how long to place orders")
	tokens := fs.String("tokens", "tok_ok", "payment-token mix, e.g. tok_ok=90,tok_declined=10")
	cancel := fs.Float64("cancel", 0, "fraction of orders to cancel shortly after placing them (0..1)")
	cancelAfter := fs.Duration("cancel-after", 50*time.Millisecond, "how long after its POST an order is cancelled")
	lines := fs.String("lines", "1-3", "lines per order, N or MIN-MAX")
	customers := fs.Int("customers", 8, "customers to create (registration is limited to 10 at once per address)")
	products := fs.Int("products", 10, "products to create")
	timeout := fs.Duration("timeout", 2*time.Minute, "longest wait from POST to terminal status")
	report := fs.String("report", "", "write plots to this .html or .svg file")
	ceiling := fs.Bool("ceiling", false, "then run as many orders through OrderWorkflow with no-op activities, at the same concurrency, on the same Temporal server (namespace "+loadgen.CeilingNamespace+"), and print the ratio")
	temporalAddr := fs.String("temporal-address", "127.0.0.1:7233", "the stack's Temporal frontend, for --ceiling (TEMPORAL_ADDRESS when set)")
	rounds := fs.Int("rounds", 1, "with --ceiling: alternate this many runs of orders and of the ceiling, and print the medians")
	cpu := fs.Bool("cpu", false, "measure CPU per order of each process of a stack on this machine (the gateway's process and its children: `make dev`)")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("load takes flags only, not %q", fs.Arg(0))}
	}
	cfg := loadgen.Config{
		BaseURL: strings.TrimRight(*url, "/"), AdminEmail: *email, AdminPassword: *password,
		Concurrency: *concurrency, Rate: *rate, Orders: *orders, Duration: *duration,
		Cancel: *cancel, CancelAfter: *cancelAfter, Customers: *customers, Products: *products,
		Timeout: *timeout, Progress: stderr,
	}
	// With a rate, the default concurrency would cap arrivals at 20 in
	// flight; an open model wants room unless the user set a cap.
	if *rate > 0 && !flagSet(fs, "concurrency") {
		cfg.Concurrency = 10_000
	}
	var err error
	if cfg.Tokens, err = loadgen.ParseTokens(*tokens); err != nil {
		return usageError{err.Error()}
	}
	if cfg.Lines, err = loadgen.ParseRange(*lines); err != nil {
		return usageError{err.Error()}
	}
	if cfg.AdminEmail == "" || cfg.AdminPassword == "" {
		if cfg.AdminEmail, cfg.AdminPassword, err = readAdminCredentials(filepath.Join(*dataDir, "admin-credentials.txt")); err != nil {
			return err
		}
	}
	if *rounds < 1 || (*rounds > 1 && !*ceiling) {
		return usageError{"--rounds needs --ceiling and at least 1"}
	}
	var meter *loadgen.CPUMeter
	if *cpu {
		if meter, err = cpuMeter(cfg.BaseURL); err != nil {
			return err
		}
	}
	var ceil client.Client
	if *ceiling {
		if appCfg.TemporalAddress != "" && !flagSet(fs, "temporal-address") {
			*temporalAddr = appCfg.TemporalAddress
		}
		if ceil, err = openCeiling(ctx, appCfg, *temporalAddr, log); err != nil {
			return err
		}
		defer ceil.Close()
	}

	session, err := loadgen.Open(ctx, cfg, *rounds)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	defer session.Close()
	var results []loadgen.Round
	for i := range *rounds {
		if *rounds > 1 {
			fmt.Fprintf(stdout, "\n== round %d of %d ==\n", i+1, *rounds)
		}
		var round loadgen.Round
		res, err := metered(meter, &round.OrdersCPU, func() (*loadgen.Result, error) { return session.Run(ctx) })
		if err != nil {
			return fmt.Errorf("load: %w", err)
		}
		round.Orders = loadgen.Summarize(res)
		if err := round.Orders.Print(stdout, res.Config); err != nil {
			return err
		}
		printCPU(stdout, "orders", round.OrdersCPU, round.Orders.Ended)
		if *report != "" && i == *rounds-1 {
			if err := loadgen.WriteReport(*report, res, round.Orders); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "report\t%s\n", *report)
		}
		if ceil == nil {
			continue
		}
		n := max(round.Orders.Ended, 1)
		fmt.Fprintf(stdout, "ceiling\t%d no-op orders, %d in flight, namespace %s\n", n, res.Config.Concurrency, loadgen.CeilingNamespace)
		if round.Ceiling, err = metered(meter, &round.CeilingCPU, func() (loadgen.CeilingResult, error) {
			return loadgen.Ceiling(ctx, ceil, n, res.Config.Concurrency)
		}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "ceiling orders/s\t%.1f (orders confirmed %.1f/s: %.2fx of the ceiling)\n", round.Ceiling.PerSecond, round.Orders.ConfirmedPerSecond, round.Throughput())
		fmt.Fprintf(stdout, "ceiling p50, p99\t%s, %s (placement→CONFIRMED p50 %s: %.2fx of the ceiling's)\n", round.Ceiling.P50.Round(time.Millisecond), round.Ceiling.P99.Round(time.Millisecond),
			round.Orders.ToConfirmed.P50.Round(time.Millisecond), round.Latency())
		printCPU(stdout, "ceiling", round.CeilingCPU, round.Ceiling.Orders)
		results = append(results, round)
	}
	if len(results) > 0 {
		fmt.Fprintln(stdout)
		return loadgen.PrintRounds(stdout, results)
	}
	return nil
}

// metered runs f, and sets *used to the CPU the stack used meanwhile when
// meter is not nil.
func metered[T any](meter *loadgen.CPUMeter, used *loadgen.CPU, f func() (T, error)) (T, error) {
	if meter == nil {
		return f()
	}
	var zero T
	before, err := meter.Read()
	if err != nil {
		return zero, err
	}
	out, err := f()
	if err != nil {
		return zero, err
	}
	after, err := meter.Read()
	if err != nil {
		return zero, err
	}
	*used = after.Sub(before)
	return out, nil
}

// cpuMeter meters the process that serves the gateway's URL.
func cpuMeter(baseURL string) (*loadgen.CPUMeter, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, usageError{fmt.Sprintf("--url %q: %v", baseURL, err)}
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		port = map[string]int{"https": 443}[u.Scheme]
		if port == 0 {
			port = 80
		}
	}
	return loadgen.NewCPUMeter(port)
}

func printCPU(w io.Writer, what string, used loadgen.CPU, orders int) {
	if used == nil {
		return
	}
	var parts []string
	for _, g := range slices.Sorted(maps.Keys(used)) {
		parts = append(parts, fmt.Sprintf("%s %.1f ms", g, (used[g]/time.Duration(max(orders, 1))).Seconds()*1000))
	}
	fmt.Fprintf(w, "%s CPU/order\t%s\n", what, strings.Join(parts, ", "))
}

// openCeiling dials the ceiling's namespace on the stack's Temporal server,
// with the stack's codec keys, so that its workflows cost Temporal what the
// orders did.
func openCeiling(ctx context.Context, appCfg config.Config, addr string, log *zap.Logger) (client.Client, error) {
	appCfg.TemporalAddress, appCfg.TemporalNamespace = addr, loadgen.CeilingNamespace
	opts, _, err := temporalclient.Options(appCfg, log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)), nil)
	if err != nil {
		return nil, err
	}
	opts.WorkerHeartbeatInterval = -1 // no status page watches these workers
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := temporalclient.Connect(dctx, opts, log)
	if err != nil {
		return nil, err
	}
	if err := loadgen.PrepareCeiling(dctx, c); err != nil {
		c.Close()
		return nil, fmt.Errorf("ceiling namespace: %w", err)
	}
	return c, nil
}

// readAdminCredentials reads "email password" from the file `ordersaga dev`
// writes.
func readAdminCredentials(path string) (email, password string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("admin credentials: give --admin-email and --admin-password, or run `make dev` (it writes %s): %w", path, err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return "", "", errors.New("admin credentials: " + path + " should hold `email password` on one line")
	}
	return f[0], f[1], nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
