// Command faultrun is `make faults`: it runs ordersaga with every service
// as its own process, injects DESIGN.md's faults under load, checks the
// invariants and prints a table of them, fault by fault. It exits 1 when
// an invariant is broken, 2 when the run could not be carried out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/logging"
	"github.com/ordersaga/ordersaga/internal/testkit/faultrun"
)

func main() { os.Exit(run()) }

// run parses the flags, runs the fault run and returns the exit code.
func run() int {
	orders := flag.Int("orders", 500, "least number of orders to place")
	faults := flag.String("faults", "all", "faults to inject, in order, comma-separated, or all: "+strings.Join(faultrun.FaultNames(), ","))
	shoppers := flag.Int("shoppers", 8, "customer accounts that place the orders (each signs in through the API, whose per-address limit lets about 10 in at once)")
	baseline := flag.Duration("baseline", 15*time.Second, "load before the first fault")
	pause := flag.Duration("pause", 20*time.Second, "load after each fault's recovery, before the next fault")
	down := flag.Duration("down", 5*time.Second, "how long a killed or stopped part stays down")
	freeze := flag.Duration("freeze", 20*time.Second, "how long PostgreSQL stays frozen")
	step := flag.Duration("step-timeout", 60*time.Second, "the services' ORDER_STEP_TIMEOUT")
	settle := flag.Duration("settle", 5*time.Minute, "bound on the wait for every order to be terminal")
	dir := flag.String("dir", "", "directory for the run's data and logs (default: a new temporary one, removed if the run passes)")
	keep := flag.Bool("keep", false, "keep the run directory even if the run passes")
	cli := flag.String("temporal-cli", "", "the temporal binary (default: the one tools/go.mod pins, built on first use)")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "seed of the order mix")
	flag.Parse()

	log, err := logging.New(zap.InfoLevel, true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	selected, err := faultrun.SelectFaults(*faults)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultrun:", err)
		return 2
	}
	// Ctrl-C ends the run cleanly: every server and service it started stops.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("fault run", zap.Uint64("seed", *seed), zap.Int("orders", *orders), zap.String("faults", *faults))
	res, err := faultrun.Run(ctx, faultrun.Options{
		Orders: *orders, Faults: selected, Shoppers: *shoppers,
		Baseline: *baseline, Pause: *pause, Down: *down, Freeze: *freeze,
		StepTimeout: *step, RetryFor: 4 * time.Minute, Settle: *settle, Catchup: time.Minute,
		Dir: *dir, Keep: *keep, Seed: *seed, TemporalCLI: *cli, Log: log, Out: os.Stdout,
	})
	_ = log.Sync()
	switch {
	case err != nil && errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "faultrun: interrupted")
		return 2
	case err != nil:
		fmt.Fprintln(os.Stderr, "faultrun:", err)
		return 2
	case !res.Passed():
		fmt.Fprintf(os.Stderr, "faultrun: %d violation(s); logs in %s/logs\n", len(res.Violations), res.Dir)
		return 1
	}
	return 0
}
