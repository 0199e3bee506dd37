// Package faultrun is `make faults`: it starts PostgreSQL, the broker and
// Temporal as the local stack does, runs every service as its own OS
// process, drives orders through the public API as a careful client,
// watches the events on Kafka and on an admin's websocket, injects the
// faults of DESIGN.md one after another while the load runs, and then
// checks DESIGN.md's invariants, fault window by fault window.
package faultrun

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/localstack/temporalserver"
	"github.com/ordersaga/ordersaga/internal/logging"
	"github.com/ordersaga/ordersaga/internal/migrate"
	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/internal/temporalclient"
	"github.com/ordersaga/ordersaga/internal/temporalsetup"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// Options shape a run.
type Options struct {
	// Orders is the least number of orders placed.
	Orders int
	// Faults are injected in this order.
	Faults []Fault
	// Shoppers is how many customer accounts place the orders.
	Shoppers int
	// Baseline is how long the load runs before the first fault.
	Baseline time.Duration
	// Pause is how long the load runs after each fault's recovery.
	Pause time.Duration
	// Down is how long a killed part stays down; Freeze how long
	// PostgreSQL stays frozen.
	Down, Freeze time.Duration
	// StepTimeout is the services' ORDER_STEP_TIMEOUT.
	StepTimeout time.Duration
	// RetryFor bounds a client's retries of one request.
	RetryFor time.Duration
	// Settle bounds the wait for every order to be terminal; Catchup the
	// wait for the observers to have every event.
	Settle, Catchup time.Duration
	// Dir holds the run's data and logs; empty means a new temporary
	// directory, removed when the run passes unless Keep.
	Dir  string
	Keep bool
	Seed uint64
	// TemporalCLI is the temporal binary; empty means the pinned one.
	TemporalCLI string
	Log         *zap.Logger
	// Out receives the result table.
	Out io.Writer
}

// Result is what a run found.
type Result struct {
	// Dir holds the services' logs and the servers' data; it is kept when
	// the run fails.
	Dir        string
	Windows    []WindowSummary
	Violations []Violation
}

// Passed reports whether every invariant held.
func (r Result) Passed() bool { return len(r.Violations) == 0 }

// Run performs one fault run. An error means the run could not be carried
// out (a server would not start, a fault could not be injected); broken
// invariants are in the Result.
func Run(ctx context.Context, o Options) (res Result, err error) {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	log := o.Log
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "ordersaga-faults-"); err != nil {
			return res, err
		}
	}
	res.Dir = dir
	defer func() {
		if err == nil && res.Passed() && !o.Keep {
			os.RemoveAll(dir)
			return
		}
		log.Info("run directory kept: services' logs are in its logs/", zap.String("dir", dir))
	}()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return res, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &run{o: o, log: log, dir: dir, timeline: NewTimeline("baseline", time.Now)}
	defer r.close()
	if err := r.start(runCtx); err != nil {
		return res, err
	}
	if err := r.drive(runCtx); err != nil {
		return res, err
	}
	facts, err := r.facts(runCtx)
	if err != nil {
		return res, err
	}
	res.Violations = Check(facts)
	res.Windows = summarize(r.timeline.Names(), facts.Placements)
	WriteSummary(o.Out, facts, r.ws.Connections())
	WriteTable(o.Out, res.Windows, res.Violations)
	return res, nil
}

// run is one run's moving parts.
type run struct {
	o        Options
	log      *zap.Logger
	dir      string
	timeline *Timeline

	stack    *Stack
	procs    *Procs
	db       *pgxpool.Pool
	api      *API
	ws       *WSObserver
	kafka    *KafkaObserver
	load     *Load
	closers  []func()
	observed sync.WaitGroup

	exitsMu sync.Mutex
	exits   []Exit
}

// start brings up the servers, the schema, the services, the accounts,
// the catalogue and the observers.
func (r *run) start(ctx context.Context) error {
	root, err := temporalserver.ModuleRoot()
	if err != nil {
		return err
	}
	cli := r.o.TemporalCLI
	if cli == "" {
		if cli, err = temporalserver.Binary(ctx, r.log); err != nil {
			return err
		}
	}
	// The binary builds while the servers start.
	type built struct {
		bin string
		err error
	}
	build := make(chan built, 1)
	go func() {
		bin, err := BuildBinary(ctx, root, r.dir)
		build <- built{bin, err}
	}()
	r.log.Info("starting PostgreSQL, the broker and Temporal", zap.String("dir", r.dir))
	stack, err := StartStack(ctx, r.dir, cli, r.log)
	b := <-build
	if err != nil {
		return err
	}
	r.stack = stack
	r.closers = append(r.closers, stack.Close)
	if b.err != nil {
		return b.err
	}

	cfg, err := config.LoadFrom(map[string]string{"DATABASE_URL": stack.DSN()})
	if err != nil {
		return err
	}
	if err := migrate.Run(ctx, cfg, r.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel))); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := r.setupTemporal(ctx); err != nil {
		return err
	}
	if r.db, err = postgres.Open(ctx, stack.DSN(), 4); err != nil {
		return err
	}
	r.closers = append(r.closers, r.db.Close)
	const adminEmail = "admin@faultrun.test"
	adminPassword, err := CreateAdmin(ctx, stack.DSN(), adminEmail)
	if err != nil {
		return err
	}

	addrs, err := r.startServices(ctx, b.bin)
	if err != nil {
		return err
	}

	r.api = NewAPI("http://"+addrs.Gateway, r.o.RetryFor)
	admin, err := Login(ctx, r.api, adminEmail, adminPassword)
	if err != nil {
		return err
	}
	cat, err := CreateCatalogue(ctx, r.api, admin.Token)
	if err != nil {
		return err
	}
	shoppers, err := CreateShoppers(ctx, stack.DSN(), r.api, r.o.Shoppers)
	if err != nil {
		return err
	}

	r.ws = NewWSObserver("ws://"+addrs.Hub+"/ws", admin.Token, r.log.Named("ws"))
	if r.kafka, err = NewKafkaObserver(stack.Brokers(), cfg.KafkaTopic, r.log.Named("kafka")); err != nil {
		return err
	}
	obsCtx, stopObservers := context.WithCancel(context.Background())
	r.observed.Add(2)
	go func() { defer r.observed.Done(); r.ws.Run(obsCtx) }()
	go func() { defer r.observed.Done(); r.kafka.Run(obsCtx) }()
	// Stopped before the services, so that the services' shutdown is not
	// taken for a fault.
	r.closers = append(r.closers, func() { stopObservers(); r.observed.Wait() })
	r.load = NewLoad(r.api, shoppers, cat, r.timeline, r.ws.Track, r.o.Seed, r.log.Named("load"))
	return nil
}

// startServices runs the five services on free ports. Other programs on
// the machine pick free ports too, so a service that could not start is
// tried again, all of them on new ports, before the run gives up.
func (r *run) startServices(ctx context.Context, bin string) (Addrs, error) {
	codecKey := make([]byte, 32)
	if _, err := rand.Read(codecKey); err != nil {
		return Addrs{}, fmt.Errorf("make a codec key: %w", err)
	}
	secret, err := randomSecret(32)
	if err != nil {
		return Addrs{}, err
	}
	r.log.Info("starting the services, each as its own process")
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		addrs, err := FreeAddrs()
		if err != nil {
			return Addrs{}, err
		}
		procs := NewProcs(ctx, bin, filepath.Join(r.dir, "logs"), ServiceEnv(r.stack, addrs, secret, "run:"+base64.StdEncoding.EncodeToString(codecKey), r.o.StepTimeout), r.log, r.exited)
		lastErr = nil
		for _, svc := range addrs.Services() {
			if lastErr = procs.Start(ctx, svc); lastErr != nil {
				break
			}
		}
		if lastErr == nil {
			procs.Arm()
			r.procs = procs
			r.closers = append(r.closers, procs.StopAll)
			return addrs, nil
		}
		procs.StopAll()
		if ctx.Err() != nil {
			return Addrs{}, ctx.Err()
		}
		r.log.Warn("a service did not start; trying again on other ports", zap.Int("attempt", attempt), zap.Error(lastErr))
	}
	return Addrs{}, lastErr
}

func (r *run) setupTemporal(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	log := r.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel))
	c, err := temporalclient.Connect(dctx, client.Options{HostPort: r.stack.TemporalAddress(), Namespace: Namespace, Logger: logging.Temporal(log)}, log)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := temporalsetup.EnsureNamespace(ctx, c, Namespace); err != nil {
		return err
	}
	return temporalsetup.EnsureSearchAttributes(ctx, c, Namespace)
}

// exited hears of a service that exited by itself.
func (r *run) exited(service string, err error) {
	r.exitsMu.Lock()
	defer r.exitsMu.Unlock()
	now := time.Now()
	r.exits = append(r.exits, Exit{Service: service, At: now, Window: r.timeline.At(now), Err: err.Error()})
}

// drive runs the load and, meanwhile, the faults; then waits for every
// order to end and for the observers to catch up.
func (r *run) drive(ctx context.Context) error {
	planned := r.o.Baseline
	for _, f := range r.o.Faults {
		d := r.o.Down
		if f.Name == "freeze-postgres" {
			d = r.o.Freeze
		}
		planned += d + r.o.Pause + 3*time.Second // + the restart itself
	}
	rate := float64(r.o.Orders) / planned.Seconds()
	r.log.Info("load starts", zap.Int("orders", r.o.Orders), zap.Float64("per_second", rate), zap.Int("faults", len(r.o.Faults)))
	faultsDone := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		r.load.Run(ctx, LoadOptions{Orders: r.o.Orders, Rate: rate, Concurrency: 64, CancelShare: 0.25}, faultsDone)
	}()
	faultErr := r.inject(ctx)
	close(faultsDone)
	<-loadDone
	if faultErr != nil {
		return faultErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	r.log.Info("load done; waiting for every order to end", zap.Duration("bound", r.o.Settle))
	settled := waitFor(ctx, r.o.Settle, 2*time.Second, func() bool { return r.open(ctx) == 0 })
	r.log.Info("orders settled", zap.Bool("all_terminal", settled), zap.Int("open", r.open(ctx)))
	caught := waitFor(ctx, r.o.Catchup, time.Second, func() bool { return r.unobserved(ctx) == 0 })
	r.log.Info("observers caught up", zap.Bool("complete", caught), zap.Int("missing", r.unobserved(ctx)))
	return ctx.Err()
}

// inject runs the faults one after another, each in a window of its own.
func (r *run) inject(ctx context.Context) error {
	t := &Target{Stack: r.stack, Procs: r.procs, Down: r.o.Down, Freeze: r.o.Freeze}
	if err := sleep(ctx, r.o.Baseline); err != nil {
		return err
	}
	for _, f := range r.o.Faults {
		r.timeline.Begin(f.Name)
		r.log.Info("fault", zap.String("fault", f.Name))
		if err := f.Inject(ctx, t); err != nil {
			return fmt.Errorf("inject %s: %w", f.Name, err)
		}
		r.log.Info("fault over; the system recovers", zap.String("fault", f.Name), zap.Duration("pause", r.o.Pause))
		if err := sleep(ctx, r.o.Pause); err != nil {
			return err
		}
	}
	return nil
}

// open counts the orders that are not terminal, or -1 when the database
// cannot say.
func (r *run) open(ctx context.Context) int {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var n int
	if err := r.db.QueryRow(qctx, `SELECT count(*) FROM orders.orders WHERE status <> ALL($1)`, order.TerminalStatuses()).Scan(&n); err != nil {
		return -1
	}
	return n
}

// unobserved counts the stored events that the Kafka consumer or the
// websocket client has not seen yet, or -1 when the database cannot say.
func (r *run) unobserved(ctx context.Context) int {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := r.db.Query(qctx, `SELECT order_id::text, seq FROM orders.order_events`)
	if err != nil {
		return -1
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id string
		var seq int
		if err := rows.Scan(&id, &seq); err != nil {
			return -1
		}
		if !r.kafka.Has(id, seq) || !r.ws.Has(id, seq) {
			n++
		}
	}
	if rows.Err() != nil {
		return -1
	}
	return n
}

// facts gathers what the check judges.
func (r *run) facts(ctx context.Context) (Facts, error) {
	var st State
	// The database was stopped and frozen during the run; give it a moment.
	var err error
	waitFor(ctx, time.Minute, 2*time.Second, func() bool {
		st, err = CollectDatabase(ctx, r.db)
		return err == nil
	})
	if err != nil {
		return Facts{}, err
	}
	ids := make([]string, 0, len(st.Orders))
	for id := range st.Orders {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if err := r.workflows(ctx, &st, ids); err != nil {
		st.WorkflowsUnreadable = err.Error()
	}
	r.exitsMu.Lock()
	exits := append([]Exit(nil), r.exits...)
	r.exitsMu.Unlock()
	return Facts{Placements: r.load.Placements(), Exits: exits, Kafka: r.kafka.Records(), WS: r.ws.Entries(), State: st}, nil
}

func (r *run) workflows(ctx context.Context, st *State, ids []string) error {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	log := r.log.WithOptions(zap.IncreaseLevel(zap.ErrorLevel))
	c, err := temporalclient.Connect(dctx, client.Options{HostPort: r.stack.TemporalAddress(), Namespace: Namespace, Logger: logging.Temporal(log)}, log)
	if err != nil {
		return err
	}
	defer c.Close()
	st.Workflows, err = CollectWorkflows(dctx, c, Namespace, ids)
	return err
}

// close stops everything the run started, last first.
func (r *run) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// summarize counts the placements of each window.
func summarize(names []string, placements []Placement) []WindowSummary {
	out := make([]WindowSummary, len(names))
	for i, n := range names {
		out[i].Name = n
	}
	for _, p := range placements {
		if p.Window >= 0 && p.Window < len(out) {
			out[p.Window].Orders++
		}
	}
	return out
}
