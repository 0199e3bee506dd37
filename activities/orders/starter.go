package orders

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/metrics"
	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// How the starter pages through orphaned orders and backs off from an
// order that Temporal refused.
const (
	starterPage = 100
	// refusedFirstDelay is how long a refused order waits before it is tried
	// again; each further refusal doubles it, up to refusedMaxDelay. A
	// refusal is about the order itself (its input is too large, say), so
	// trying again at once would only refuse it again; trying again later
	// still starts it if the refusal was not its fault after all.
	refusedFirstDelay = time.Minute
	refusedMaxDelay   = time.Hour
	// defaultStartTimeout bounds one start call.
	defaultStartTimeout = 10 * time.Second
)

// Starter runs the orders the gateway accepted but could not start a
// workflow for (Temporal was unreachable, or the gateway died between the
// two steps). Starting is idempotent by workflow id, so a starter racing
// the gateway, or two starters, start each order once.
//
// An order that Temporal refuses never holds up the orders behind it: it
// is skipped, logged with its order_id, counted in
// ordersaga_starter_refused_total, and tried again after a backoff.
type Starter struct {
	store        *Store
	client       client.Client
	interval     time.Duration
	grace        time.Duration
	timeouts     order.Timeouts
	log          *zap.Logger
	startTimeout time.Duration
	now          func() time.Time
	refused      prometheus.Counter

	mu sync.Mutex
	// backoff holds the orders Temporal refused, by order id: how often,
	// and when to try again. It is pruned at the end of each full pass.
	backoff map[string]refusal
}

type refusal struct {
	count int
	retry time.Time
}

// NewStarter returns a starter tuned by s that registers its metrics with
// reg (nil: none).
func NewStarter(store *Store, c client.Client, s StarterSettings, log *zap.Logger, reg prometheus.Registerer) *Starter {
	refused := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ordersaga_starter_refused_total",
		Help: "Workflow starts of accepted orders that Temporal refused because of the order itself; each such order is skipped, logged with its order_id, and tried again later.",
	})
	metrics.Register(reg, refused)
	return &Starter{
		store: store, client: c, interval: s.Interval, grace: s.Grace, timeouts: s.Timeouts, log: log,
		startTimeout: defaultStartTimeout, now: time.Now, refused: refused, backoff: map[string]refusal{},
	}
}

// Run starts orphaned orders every interval until ctx ends.
func (s *Starter) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		if _, err := s.Once(ctx); err != nil && ctx.Err() == nil {
			switch {
			case postgres.Transient(err):
				s.log.Warn("starter: the orders database is unavailable; will retry", zap.Error(err))
			case temporalDown(err):
				s.log.Warn("starter: Temporal is unavailable; will retry", zap.Error(err))
			default:
				s.log.Error("starter pass failed; will retry", zap.Error(err))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Once starts the orphaned orders it finds, oldest first, and returns how
// many it started. An order that Temporal refuses is skipped (see
// Starter), and the pass goes on. When Temporal or the database does not
// answer, the pass stops and returns the error: every order would fail the
// same way, and the next pass starts again from the oldest.
func (s *Starter) Once(ctx context.Context) (int, error) {
	started := 0
	seen := map[string]bool{}
	var after *Cursor
	for {
		inputs, last, err := s.store.Unstarted(ctx, s.grace, after, starterPage, s.timeouts)
		if err != nil {
			return started, err
		}
		for _, in := range inputs {
			seen[in.OrderID] = true
			if !s.due(in.OrderID) {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, s.startTimeout)
			err := order.Start(sctx, s.client, in)
			cancel()
			if err != nil {
				if ctx.Err() != nil || temporalDown(err) {
					return started, err
				}
				s.refuse(in.OrderID, err)
				continue
			}
			if err := s.store.MarkStarted(ctx, in.OrderID); err != nil {
				// The workflow runs; the next pass finds it started and marks it.
				return started, err
			}
			s.forget(in.OrderID)
			s.log.Info("started the workflow of an orphaned order", zap.String("order_id", in.OrderID))
			started++
		}
		if len(inputs) < starterPage {
			s.prune(seen)
			return started, nil
		}
		after = last
	}
}

// due reports whether orderID may be tried now: it was never refused, or
// its backoff has passed.
func (s *Starter) due(orderID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.backoff[orderID]
	return !ok || !s.now().Before(r.retry)
}

// refuse records that Temporal refused to start orderID.
func (s *Starter) refuse(orderID string, err error) {
	s.mu.Lock()
	r := s.backoff[orderID]
	r.count++
	delay := refusedMaxDelay
	if r.count <= 7 { // 1 min << 6 is past the cap already
		delay = min(refusedFirstDelay<<(r.count-1), refusedMaxDelay)
	}
	r.retry = s.now().Add(delay)
	s.backoff[orderID] = r
	s.mu.Unlock()
	s.refused.Inc()
	s.log.Error("Temporal refused to start the order's workflow; skipping it, the orders behind it go on",
		zap.String("order_id", orderID), zap.Int("refusals", r.count), zap.Duration("retry_in", delay), zap.Error(err))
}

func (s *Starter) forget(orderID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.backoff, orderID)
}

// prune forgets the refused orders that a full pass no longer found: they
// were started elsewhere (a retried request, another starter).
func (s *Starter) prune(seen map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.backoff {
		if !seen[id] {
			delete(s.backoff, id)
		}
	}
}

// temporalDown reports whether a failed start says that Temporal cannot
// serve now, rather than that it refused this one order. Only a refusal
// that names the request (an invalid argument, a payload over a size
// limit, a failed precondition) or a failure before anything was sent (the
// order's input could not be encoded) is the order's own: it is skipped.
// Every other answer of the server (unavailable, internal, overloaded,
// namespace trouble) and every timeout is the server's state, which stops
// the pass, so that an incident does not push each order into its own
// backoff.
func temporalDown(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var exhausted *serviceerror.ResourceExhausted
	if errors.As(err, &exhausted) {
		// Rate limits and overload name a cause; a request over gRPC's
		// message size limit names none, and is this order's own.
		return exhausted.Cause != enumspb.RESOURCE_EXHAUSTED_CAUSE_UNSPECIFIED
	}
	var (
		invalid      *serviceerror.InvalidArgument
		precondition *serviceerror.FailedPrecondition
		svc          serviceerror.ServiceError
	)
	switch {
	case errors.As(err, &invalid), errors.As(err, &precondition):
		return false
	case errors.As(err, &svc):
		return true
	}
	// Not an answer of the server: the client failed before sending.
	return false
}

// StarterSettings tune the starter.
type StarterSettings struct {
	// Interval is how often it looks for orders without a workflow.
	Interval time.Duration
	// Grace is how old such an order must be before it is taken: younger
	// ones are being started by the gateway.
	Grace time.Duration
	// Timeouts are handed to each workflow it starts.
	Timeouts order.Timeouts
}
