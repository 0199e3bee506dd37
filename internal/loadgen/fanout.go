package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/ordersaga/ordersaga/internal/apperr"
	"github.com/ordersaga/ordersaga/internal/kafkaclient"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// FanoutConfig is what a fan-out run does: Clients websockets on a hub,
// each subscribed to "all", and Rate synthetic order events a second for
// Duration, produced to the hub's topic. Zero values take the defaults
// noted.
type FanoutConfig struct {
	// BaseURL is the gateway's, where the admin signs in for the
	// clients' token.
	BaseURL                   string
	AdminEmail, AdminPassword string
	// HubURL is the hub's websocket endpoint, e.g. ws://127.0.0.1:8091/ws.
	HubURL string
	// HubOpsURL is the hub's ops address, e.g. http://127.0.0.1:9475, for
	// its memory and CPU figures; empty leaves them out.
	HubOpsURL string
	// Brokers and Topic are where the hub consumes. The events are
	// synthetic: never give a topic that real dashboards follow.
	Brokers []string
	Topic   string
	// Partitions is how many partitions the topic is created with if the
	// hub has not created it yet (default 6).
	Partitions int32
	// Clients is how many websockets to open (default 5,000).
	Clients int
	// Rate is events produced per second (default 50); Duration, for how
	// long (default 20 s).
	Rate     float64
	Duration time.Duration
	// Drain is how long to wait after the last event for the clients to
	// receive everything (default 10 s).
	Drain time.Duration
	// DialConcurrency is how many clients connect at once (default 32).
	DialConcurrency int
	// HTTPClient is the client for REST calls and the hub's metrics
	// (default: one with a 30 s timeout).
	HTTPClient *http.Client
	// Progress, when not nil, receives a line of live figures every few
	// seconds.
	Progress io.Writer
	// Log receives the Kafka client's warnings (default: none).
	Log *zap.Logger
}

func (c *FanoutConfig) defaults() error {
	switch {
	case c.BaseURL == "":
		return errors.New("give the gateway's base URL")
	case c.HubURL == "":
		return errors.New("give the hub's websocket URL")
	case len(c.Brokers) == 0 || c.Topic == "":
		return errors.New("give the Kafka brokers and the topic the hub consumes")
	}
	if c.Partitions <= 0 {
		c.Partitions = 6
	}
	if c.Clients <= 0 {
		c.Clients = 5000
	}
	if c.Rate <= 0 {
		c.Rate = 50
	}
	if c.Duration <= 0 {
		c.Duration = 20 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 10 * time.Second
	}
	if c.DialConcurrency <= 0 {
		c.DialConcurrency = 32
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	return nil
}

// Events is how many events the run produces.
func (c FanoutConfig) Events() int {
	return max(1, int(math.Round(c.Rate*c.Duration.Seconds())))
}

// FanoutResult is what a fan-out run measured.
type FanoutResult struct {
	Config FanoutConfig
	// Events is how many events were produced; ProduceErrors, how many
	// of them Kafka refused.
	Events, ProduceErrors int
	// Clients is how many clients were connected and subscribed;
	// ConnectTime, how long connecting them all took.
	Clients     int
	ConnectTime time.Duration
	// Delay is from an event's produce to its receipt by a client, over
	// every first receipt.
	Delay Latencies
	// Deliveries counts first receipts: at most Events × Clients.
	Deliveries int64
	// Duplicates counts events a client received again; OutOfOrder,
	// events received after a later event of the same order; Missed,
	// events that a client still connected at the end never received.
	Duplicates, OutOfOrder, Missed int64
	// ErrorFrames counts error frames the hub sent during the run;
	// Foreign, events of other runs still on the topic, ignored.
	ErrorFrames, Foreign int64
	// Dropped counts clients whose connection ended during the run, by
	// how it ended ("4001", "1006", …).
	Dropped map[string]int
	// Start is when the first event was produced; End, when the last
	// receipt came.
	Start, End time.Time
	// Hub is the hub's memory and CPU, when HubOpsURL was given.
	Hub *HubFigures
	// ClientCPU is the CPU time this process spent from the first event
	// to the end of the drain.
	ClientCPU time.Duration
}

// DeliveriesPerSecond is Deliveries over the span from the first produce
// to the last receipt.
func (r *FanoutResult) DeliveriesPerSecond() float64 {
	return float64(r.Deliveries) / max(r.End.Sub(r.Start).Seconds(), 1e-3)
}

// DroppedClients is how many clients lost their connection.
func (r *FanoutResult) DroppedClients() int {
	n := 0
	for _, c := range r.Dropped {
		n += c
	}
	return n
}

// statuses are the synthetic orders' transitions, as a confirmed order
// goes; the last is terminal, so the hub forgets each order as it would
// a real one.
var statuses = []order.Status{order.Pending, order.Reserved, order.Authorized, order.Confirmed}

// Fanout connects the clients, produces the events and measures what
// each client receives. It fails when it cannot set up: sign in, open
// every connection, reach Kafka.
func Fanout(ctx context.Context, cfg FanoutConfig) (*FanoutResult, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := RaiseFileLimit(cfg.Clients + 256); err != nil {
		return nil, err
	}
	a := &api{base: cfg.BaseURL, http: cfg.HTTPClient}
	token, err := a.login(ctx, cfg.AdminEmail, cfg.AdminPassword)
	if err != nil {
		return nil, err
	}
	producer, err := kafkaclient.Producer(cfg.Brokers, cfg.Topic, 10*time.Second, cfg.Log)
	if err != nil {
		return nil, err
	}
	defer producer.Close()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = kafkaclient.EnsureTopic(tctx, producer, cfg.Topic, cfg.Partitions)
	cancel()
	if err != nil {
		return nil, err
	}

	res := &FanoutResult{Config: cfg, Events: cfg.Events(), Dropped: map[string]int{}}
	run := newFanoutRun(cfg, res.Events)
	hub := &hubReader{http: cfg.HTTPClient, base: cfg.HubOpsURL}
	if cfg.HubOpsURL != "" {
		res.Hub = &HubFigures{}
		if res.Hub.Before, err = hub.sample(ctx); err != nil {
			return nil, err
		}
	}

	began := time.Now()
	clients, err := run.connect(ctx, token)
	defer func() {
		for _, c := range clients {
			_ = c.conn.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	res.Clients, res.ConnectTime = len(clients), time.Since(began)
	if res.Hub != nil {
		if res.Hub.Connected, err = hub.sample(ctx); err != nil {
			return nil, err
		}
	}

	var readers sync.WaitGroup
	for _, c := range clients {
		readers.Go(func() { run.read(c) })
	}
	cpuBefore := processCPU()
	stopProgress := run.showProgress(ctx, clients)
	res.Start = time.Now()
	res.ProduceErrors = run.produce(ctx, producer)
	run.drain(ctx, len(clients))
	stopProgress()
	res.ClientCPU = processCPU() - cpuBefore
	if res.Hub != nil {
		if res.Hub.After, err = hub.sample(ctx); err != nil {
			return nil, err
		}
	}
	run.stopping.Store(true)
	for _, c := range clients {
		_ = c.conn.Close()
	}
	readers.Wait()
	run.summarize(res, clients)
	return res, ctx.Err()
}

// fanoutRun is the state that a run's clients share.
type fanoutRun struct {
	cfg    FanoutConfig
	events int
	// orders maps each synthetic order to its index; read-only once built.
	orders   map[uuid.UUID]int
	orderIDs []uuid.UUID
	customer uuid.UUID
	// delays is sharded so that thousands of readers rarely wait for
	// each other; one histogram per client would take hundreds of
	// kilobytes each.
	delays [32]struct {
		sync.Mutex
		h *hdrhistogram.Histogram
	}
	complete, dropped, produced atomic.Int64
	stopping                    atomic.Bool
}

func newFanoutRun(cfg FanoutConfig, events int) *fanoutRun {
	r := &fanoutRun{cfg: cfg, events: events, orders: map[uuid.UUID]int{}, customer: uuid.New()}
	for i := 0; i*len(statuses) < events; i++ {
		id := uuid.New()
		r.orders[id] = i
		r.orderIDs = append(r.orderIDs, id)
	}
	for i := range r.delays {
		r.delays[i].h = newHistogram()
	}
	return r
}

// connect opens and subscribes every client, a few at a time, and fails
// naming how many it opened if one cannot be.
func (r *fanoutRun) connect(ctx context.Context, token string) ([]*fanoutClient, error) {
	clients := make([]*fanoutClient, r.cfg.Clients)
	// A read buffer that holds a batch of frames (the hub writes what it
	// has queued for a client at once) takes them with one system call.
	dialer := &websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 16 << 10, WriteBufferSize: 1024}
	var opened atomic.Int64
	stop := r.every(ctx, func() string {
		return fmt.Sprintf("%d of %d clients connected and subscribed", opened.Load(), r.cfg.Clients)
	})
	defer stop()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.DialConcurrency)
	for i := range clients {
		g.Go(func() error {
			c, err := dialHub(gctx, dialer, r.cfg.HubURL, token)
			if err != nil {
				return err
			}
			clients[i] = &fanoutClient{n: i, conn: c, finished: make(chan struct{})}
			answer, err := subscribe(c, []any{map[string]string{"type": "subscribe", "scope": "all"}}, func(message) {})
			if err != nil {
				return err
			}
			if answer.Code != apperr.InvalidArgument {
				return fmt.Errorf("the hub refused the subscription to all: %s %s", answer.Code, answer.Message)
			}
			opened.Add(1)
			return nil
		})
	}
	err := g.Wait()
	var out []*fanoutClient
	for _, c := range clients {
		if c != nil {
			out = append(out, c)
		}
	}
	if err != nil {
		return out, fmt.Errorf("opened %d of %d websockets (is the file-descriptor limit of this process and the hub's high enough? ulimit -n): %w",
			opened.Load(), r.cfg.Clients, err)
	}
	return out, nil
}

// produce sends the run's events at the configured rate, each stamped
// with the moment it was produced (occurred_at) and keyed by its order,
// as the outbox relay keys them. It returns how many Kafka refused.
func (r *fanoutRun) produce(ctx context.Context, p *kgo.Client) int {
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	for i := range r.events {
		// A schedule rather than a ticker: a late event does not shift
		// the ones after it, so the rate holds over the run.
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			select {
			case <-ctx.Done():
				return r.events - i
			case <-time.After(d):
			}
		}
		id := r.orderIDs[i/len(statuses)]
		e := order.OrderEvent{OrderID: id, CustomerID: r.customer, Seq: i%len(statuses) + 1, Status: statuses[i%len(statuses)],
			TotalCents: 1000, OccurredAt: time.Now()}.Complete()
		value, _ := json.Marshal(e)
		wg.Add(1)
		p.Produce(ctx, &kgo.Record{Key: []byte(id.String()), Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
		r.produced.Add(1)
	}
	wg.Wait()
	return int(failed.Load())
}

// drain waits until every client still connected has every event, or
// the drain time has passed.
func (r *fanoutRun) drain(ctx context.Context, clients int) {
	deadline := time.Now().Add(r.cfg.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if r.complete.Load()+r.dropped.Load() >= int64(clients) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *fanoutRun) summarize(res *FanoutResult, clients []*fanoutClient) {
	h := newHistogram()
	for i := range r.delays {
		h.Merge(r.delays[i].h)
	}
	res.Delay = latencies(h)
	res.End = res.Start
	for _, c := range clients {
		<-c.finished
		res.Deliveries += c.received.Load()
		res.Duplicates += c.duplicates
		res.OutOfOrder += c.outOfOrder
		res.ErrorFrames += c.errorFrames
		res.Foreign += c.foreign
		if c.closedBy != "" {
			res.Dropped[c.closedBy]++
		} else {
			res.Missed += int64(r.events) - c.received.Load()
		}
		if c.last.After(res.End) {
			res.End = c.last
		}
	}
}

// every writes line to the progress writer every two seconds until stop
// is called.
func (r *fanoutRun) every(ctx context.Context, line func() string) (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fmt.Fprintln(r.cfg.Progress, line())
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

func (r *fanoutRun) showProgress(ctx context.Context, clients []*fanoutClient) (stop func()) {
	began := time.Now()
	var lastN int64
	lastAt := began
	return r.every(ctx, func() string {
		var n int64
		for _, c := range clients {
			n += c.received.Load()
		}
		now := time.Now()
		rate := float64(n-lastN) / now.Sub(lastAt).Seconds()
		lastN, lastAt = n, now
		return fmt.Sprintf("%s: %d of %d events produced, %d deliveries (%.0f/s), %d of %d clients have every event, %d dropped",
			now.Sub(began).Round(time.Second), r.produced.Load(), r.events, n, rate, r.complete.Load(), len(clients), r.dropped.Load())
	})
}

// Print writes the run's figures for a person to read, then one line of
// key=value figures for scripts (deploy/loadtest/fanout.sh takes the
// medians of three runs from it).
func (r *FanoutResult) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	cfg := r.Config
	fmt.Fprintf(tw, "fan-out: %d clients on \"all\" at %s, %g events/s for %s (%d events) to topic %s\n",
		cfg.Clients, cfg.HubURL, cfg.Rate, cfg.Duration, r.Events, cfg.Topic)
	fmt.Fprintf(tw, "connect\t%d clients subscribed in %s\n", r.Clients, r.ConnectTime.Round(10*time.Millisecond))
	fmt.Fprintf(tw, "produce→client\t%s\n", r.Delay)
	fmt.Fprintf(tw, "deliveries/s\t%.0f (%d of %d expected, over %s)\n", r.DeliveriesPerSecond(), r.Deliveries,
		int64(r.Events)*int64(r.Clients), r.End.Sub(r.Start).Round(10*time.Millisecond))
	fmt.Fprintf(tw, "missed\t%d (by clients still connected), duplicated %d, out of order %d\n", r.Missed, r.Duplicates, r.OutOfOrder)
	if r.DroppedClients() == 0 {
		fmt.Fprintln(tw, "dropped clients\tnone")
	} else {
		fmt.Fprintf(tw, "dropped clients\t%d, by close code\n", r.DroppedClients())
		writeCounts(tw, r.Dropped, 0)
	}
	if r.ProduceErrors+int(r.ErrorFrames) > 0 {
		fmt.Fprintf(tw, "errors\t%d events Kafka refused, %d error frames from the hub\n", r.ProduceErrors, r.ErrorFrames)
	}
	if r.Foreign > 0 {
		fmt.Fprintf(tw, "ignored\t%d events of other runs\n", r.Foreign)
	}
	rss, heap := 0.0, 0.0
	if h := r.Hub; h != nil {
		rss, heap = h.PerConnection(r.Clients)
		gc := ""
		if !h.Connected.Collected {
			gc = " (the hub serves no pprof: its heap includes garbage)"
		}
		fmt.Fprintf(tw, "hub memory\tbefore: RSS %s, heap+stacks %s; subscribed: RSS %s, heap+stacks %s; after the events: RSS %s\n",
			mib(h.Before.RSS), mib(h.Before.Heap+h.Before.Stacks), mib(h.Connected.RSS), mib(h.Connected.Heap+h.Connected.Stacks), mib(h.After.RSS))
		fmt.Fprintf(tw, "hub memory per connection\tRSS %.1f KiB, heap+stacks %.1f KiB%s\n", rss/1024, heap/1024, gc)
		if mean, p99, ok := h.DispatchDelay(); ok {
			bound := "≤ " + roundDuration(p99).String()
			if p99 == time.Duration(math.MaxInt64) {
				bound = "past the last bucket"
			}
			fmt.Fprintf(tw, "produce→hub dispatch	mean %s, p99 %s (the hub's own histogram: the Kafka part of the delay)\n", roundDuration(mean), bound)
		}
		cpu := h.After.CPU - h.Connected.CPU
		span := h.After.At.Sub(h.Connected.At)
		fmt.Fprintf(tw, "hub CPU\t%.1f s over %s (%.2f cores), %.2f µs per delivery\n", cpu, span.Round(100*time.Millisecond),
			cpu/span.Seconds(), cpu*1e6/float64(max(r.Deliveries, 1)))
		if fpw := h.FramesPerWrite(); fpw > 0 {
			fmt.Fprintf(tw, "hub socket writes\t%.0f, %.2f frames each\n", h.After.Writes-h.Connected.Writes, fpw)
		}
	}
	if r.ClientCPU > 0 {
		fmt.Fprintf(tw, "client CPU\t%.1f s (this process, from the first event to the end), %.2f µs per delivery\n",
			r.ClientCPU.Seconds(), float64(r.ClientCPU.Microseconds())/float64(max(r.Deliveries, 1)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	var dispatch time.Duration
	var hubCPU, framesPerWrite float64
	if h := r.Hub; h != nil {
		dispatch, _, _ = h.DispatchDelay()
		hubCPU = (h.After.CPU - h.Connected.CPU) * 1e6 / float64(max(r.Deliveries, 1))
		framesPerWrite = h.FramesPerWrite()
	}
	_, err := fmt.Fprintf(w, "fanout-result clients=%d events=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f deliveries_per_s=%.0f "+
		"missed=%d duplicated=%d out_of_order=%d dropped=%d rss_kib_per_conn=%.1f heap_kib_per_conn=%.1f "+
		"hub_dispatch_mean_ms=%.2f hub_cpu_us_per_delivery=%.2f client_cpu_us_per_delivery=%.2f frames_per_write=%.2f\n",
		r.Clients, r.Events, ms(r.Delay.P50), ms(r.Delay.P90), ms(r.Delay.P99), ms(r.Delay.Max), r.DeliveriesPerSecond(),
		r.Missed, r.Duplicates, r.OutOfOrder, r.DroppedClients(), rss/1024, heap/1024,
		ms(dispatch), hubCPU, float64(r.ClientCPU.Microseconds())/float64(max(r.Deliveries, 1)), framesPerWrite)
	return err
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
