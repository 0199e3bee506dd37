// Package loadgen places orders against a running ordersaga, the way its
// users do (REST to place and cancel, the websocket hub to follow), and
// measures what they see: how many orders per second, how long a POST
// takes, and how long from placing an order to its terminal status. It is
// what `ordersaga load` runs; Summarize and WriteReport turn a run into
// figures and plots. Fanout is `ordersaga fanout`: websocket clients on a
// hub, synthetic events on its topic, and the delay from produce to each
// client.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// Config is what a run does. Zero values take the defaults noted.
type Config struct {
	// BaseURL is the gateway's, e.g. http://127.0.0.1:8080.
	BaseURL string
	// AdminEmail and AdminPassword sign in the admin who creates the
	// run's products.
	AdminEmail, AdminPassword string
	// Concurrency is how many orders are in flight, from POST to terminal
	// status (default 20). With Rate, it is the most in flight: an
	// arrival that finds them all busy is dropped and counted.
	Concurrency int
	// Rate, when above 0, places orders at this many per second whatever
	// their latency (an open model) instead of keeping Concurrency busy.
	Rate float64
	// Orders is how many orders to place; Duration, how long to place
	// them. With both, whichever comes first; with neither, 200 orders.
	Orders   int
	Duration time.Duration
	// Tokens is the payment-token mix (default tok_ok only).
	Tokens Tokens
	// Cancel is the fraction of orders cancelled CancelAfter after their
	// POST answered.
	Cancel      float64
	CancelAfter time.Duration
	// Lines is how many lines an order has (default 1-3), each a distinct
	// product, one unit each.
	Lines Range
	// Customers and Products are how many of each the run creates
	// (defaults 8 and 10). Registration is limited per address (10 at
	// once, then one per 10 s), so more than 10 customers slow the start.
	Customers, Products int
	// Timeout bounds each order from POST to terminal status (default 2 min).
	Timeout time.Duration
	// RunID prefixes the run's skus and emails (default: random).
	RunID string
	// HTTPClient is the client for REST calls (default: one with a 30 s timeout).
	HTTPClient *http.Client
	// Progress, when not nil, receives live figures while the run goes.
	Progress io.Writer
	// Seed makes the choices of the run repeatable (default: random).
	Seed uint64
}

func (c *Config) defaults() error {
	if c.BaseURL == "" {
		return errors.New("give the gateway's base URL")
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 20
	}
	if c.Orders <= 0 && c.Duration <= 0 {
		c.Orders = 200
	}
	if len(c.Tokens) == 0 {
		c.Tokens = Tokens{{Token: "tok_ok", Weight: 1}}
	}
	if c.Cancel < 0 || c.Cancel > 1 {
		return fmt.Errorf("the cancel fraction %v is not between 0 and 1", c.Cancel)
	}
	if c.CancelAfter <= 0 {
		c.CancelAfter = 50 * time.Millisecond
	}
	if c.Lines.Min == 0 {
		c.Lines = Range{1, 3}
	}
	if c.Customers <= 0 {
		c.Customers = 8
	}
	if c.Products <= 0 {
		c.Products = 10
	}
	if c.Lines.Max > c.Products {
		return fmt.Errorf("orders of up to %d lines need at least as many products, not %d", c.Lines.Max, c.Products)
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.RunID == "" {
		c.RunID = "L" + strings.ToUpper(uuid.NewString()[:8]) // a sku is upper case
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	return nil
}

// Order is what happened to one order the run tried to place.
type Order struct {
	ID    uuid.UUID
	Token string
	Lines int
	// Sent is when its POST went out; Answered, when the answer came.
	Sent, Answered time.Time
	// PlaceError is the kind of error the POST met ("HTTP 503
	// unavailable", "network"), empty when it was placed.
	PlaceError string
	// CancelSent says the run asked to cancel it; CancelAccepted, that
	// the gateway accepted (200 rather than 409); CancelError is the kind
	// of error the cancel met.
	CancelSent, CancelAccepted bool
	CancelError                string
	// Status and Reason are its terminal status, seen at Ended over the
	// websocket; Status is empty if none came within the timeout.
	Status order.Status
	Reason order.Reason
	Ended  time.Time
}

// Placed reports whether the gateway accepted the order.
func (o Order) Placed() bool { return o.PlaceError == "" && o.ID != uuid.Nil }

// Result is a whole run.
type Result struct {
	Config Config
	// Start is when the first order went out; End, when the last order
	// ended or timed out.
	Start, End time.Time
	Orders     []Order
	// Dropped counts arrivals (with Rate) that found Concurrency orders
	// in flight.
	Dropped int
	// WebsocketDrops counts lost websocket connections (each resumed).
	WebsocketDrops int
}

// Run sets up the run's products and customers, places the orders and
// follows each to its end. It returns an error only when it could not set
// up; errors of single orders are in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	s, err := Open(ctx, cfg, 1)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Run(ctx)
}

// Session is a set-up load: the products, and the customers signed in and
// following their orders over the hub. Each Run places cfg's orders
// through it, so that runs compared with each other differ in nothing but
// what is measured.
type Session struct {
	cfg       Config
	api       *api
	skus      []string
	customers []*customer
	drops     atomic.Int64
	runs      int
	stop      context.CancelFunc
}

// Open sets up products with stock for runs runs of cfg, and the customers.
// Close it when done.
func Open(ctx context.Context, cfg Config, runs int) (*Session, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	a := &api{base: cfg.BaseURL, http: cfg.HTTPClient}
	wsURL, err := a.wsURL(ctx)
	if err != nil {
		return nil, err
	}
	skus, err := setUpProducts(ctx, a, cfg, max(runs, 1))
	if err != nil {
		return nil, err
	}
	followCtx, stop := context.WithCancel(ctx)
	s := &Session{cfg: cfg, api: a, skus: skus, stop: stop}
	if s.customers, err = setUpCustomers(ctx, followCtx, a, cfg, wsURL, func() { s.drops.Add(1) }); err != nil {
		stop()
		return nil, err
	}
	return s, nil
}

// Close stops following the customers' orders.
func (s *Session) Close() { s.stop() }

// Run places the orders of one run and follows each to its end.
func (s *Session) Run(ctx context.Context) (*Result, error) {
	s.runs++
	g := &generator{cfg: s.cfg, api: s.api, skus: s.skus, customers: s.customers, progress: newProgress(s.cfg),
		keyPrefix: fmt.Sprintf("%s-r%d", s.cfg.RunID, s.runs)}
	drops := s.drops.Load()
	res := &Result{Config: s.cfg}
	res.Start = time.Now()
	stopProgress := g.progress.start(ctx, g)
	g.place(ctx)
	stopProgress()
	res.End = time.Now()
	res.Orders = g.orders
	res.Dropped = int(g.dropped.Load())
	res.WebsocketDrops = int(s.drops.Load() - drops)
	return res, nil
}

func setUpProducts(ctx context.Context, a *api, cfg Config, runs int) ([]string, error) {
	admin, err := a.login(ctx, cfg.AdminEmail, cfg.AdminPassword)
	if err != nil {
		return nil, err
	}
	// Enough stock that no order of the run is refused for want of it:
	// every order could take one unit of every product.
	onHand := 1_000_000
	if cfg.Orders > 0 {
		onHand = runs*cfg.Orders + 10
	}
	skus := make([]string, cfg.Products)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range skus {
		skus[i] = fmt.Sprintf("%s-P%03d", cfg.RunID, i+1)
		g.Go(func() error { return a.createProduct(gctx, admin, skus[i], onHand) })
	}
	return skus, g.Wait()
}

type customer struct {
	token  string
	follow *follower
}

func setUpCustomers(ctx, followCtx context.Context, a *api, cfg Config, wsURL string, onDrop func()) ([]*customer, error) {
	out := make([]*customer, cfg.Customers)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range out {
		g.Go(func() error {
			email := fmt.Sprintf("%s-c%03d@load.example.com", strings.ToLower(cfg.RunID), i+1)
			const password = "load-password"
			if err := a.register(gctx, email, password, "Load "+cfg.RunID); err != nil {
				return err
			}
			token, err := a.login(gctx, email, password)
			if err != nil {
				return err
			}
			f := newFollower(wsURL, token, onDrop)
			c, err := f.connect(gctx)
			if err != nil {
				return err
			}
			go f.run(followCtx, c)
			out[i] = &customer{token: token, follow: f}
			return nil
		})
	}
	return out, g.Wait()
}

// generator places the orders of one run.
type generator struct {
	cfg       Config
	api       *api
	skus      []string
	customers []*customer
	progress  *progress
	// keyPrefix makes the Idempotency-Keys of one run differ from another's.
	keyPrefix string

	next     atomic.Int64 // orders started
	inFlight atomic.Int64
	dropped  atomic.Int64

	mu     sync.Mutex
	orders []Order
	// live figures for the progress line
	placed, ended, errs int
}

// take reserves the next order's number, or reports that the run has
// placed all it should.
func (g *generator) take(deadline time.Time) (int64, bool) {
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return 0, false
	}
	n := g.next.Add(1)
	if g.cfg.Orders > 0 && n > int64(g.cfg.Orders) {
		return 0, false
	}
	return n, true
}

func (g *generator) place(ctx context.Context) {
	var deadline time.Time
	if g.cfg.Duration > 0 {
		deadline = time.Now().Add(g.cfg.Duration)
	}
	var wg sync.WaitGroup
	if g.cfg.Rate > 0 {
		interval := time.Duration(float64(time.Second) / g.cfg.Rate)
		t := time.NewTicker(interval)
		defer t.Stop()
	arrivals:
		for {
			n, ok := g.take(deadline)
			if !ok {
				break
			}
			if g.inFlight.Load() >= int64(g.cfg.Concurrency) {
				g.dropped.Add(1)
			} else {
				g.inFlight.Add(1)
				wg.Go(func() {
					defer g.inFlight.Add(-1)
					g.one(ctx, n)
				})
			}
			select {
			case <-ctx.Done():
				break arrivals
			case <-t.C:
			}
		}
	} else {
		for range g.cfg.Concurrency {
			wg.Go(func() {
				for ctx.Err() == nil {
					n, ok := g.take(deadline)
					if !ok {
						return
					}
					g.inFlight.Add(1)
					g.one(ctx, n)
					g.inFlight.Add(-1)
				}
			})
		}
	}
	wg.Wait()
}

// one places order number n, maybe cancels it, and waits for its end.
func (g *generator) one(ctx context.Context, n int64) {
	rng := rand.New(rand.NewPCG(g.cfg.Seed, uint64(n)))
	c := g.customers[int(n)%len(g.customers)]
	o := Order{Token: g.cfg.Tokens.Pick(rng), Lines: g.cfg.Lines.Pick(rng)}
	lines := make([]line, o.Lines)
	for i, p := range rng.Perm(len(g.skus))[:o.Lines] {
		lines[i] = line{SKU: g.skus[p], Quantity: 1}
	}
	cancel := rng.Float64() < g.cfg.Cancel
	defer func() { g.record(o) }()

	o.Sent = time.Now()
	p, err := g.api.placeOrder(ctx, c.token, fmt.Sprintf("%s-%d", g.keyPrefix, n), lines, o.Token)
	o.Answered = time.Now()
	if err != nil {
		o.PlaceError = errorKind(err)
		return
	}
	o.ID = p.ID
	g.mu.Lock()
	g.placed++
	g.mu.Unlock()
	done := c.follow.wait(p.ID)
	timeout := time.NewTimer(g.cfg.Timeout - time.Since(o.Sent))
	defer timeout.Stop()
	var cancelAt <-chan time.Time
	if cancel {
		t := time.NewTimer(g.cfg.CancelAfter)
		defer t.Stop()
		cancelAt = t.C
	}
	for {
		select {
		case t := <-done:
			o.Status, o.Reason, o.Ended = t.Status, t.Reason, t.At
			return
		case <-cancelAt:
			cancelAt = nil
			o.CancelSent = true
			ok, err := g.api.cancel(ctx, c.token, p.ID)
			o.CancelAccepted = ok
			if err != nil {
				o.CancelError = errorKind(err)
			}
		case <-timeout.C:
			c.follow.forget(p.ID)
			return
		case <-ctx.Done():
			c.follow.forget(p.ID)
			return
		}
	}
}

func (g *generator) record(o Order) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.orders = append(g.orders, o)
	if !o.Ended.IsZero() {
		g.ended++
	}
	if o.PlaceError != "" || o.CancelError != "" || (o.Placed() && o.Ended.IsZero()) {
		g.errs++
	}
}

// live returns the figures the progress line shows.
func (g *generator) live() (placed, ended, errs int, inFlight int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.placed, g.ended, g.errs, g.inFlight.Load()
}
