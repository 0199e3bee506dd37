// Package ws is the websocket hub: it consumes the order-events topic and
// pushes each event to the connections subscribed to its order, its
// customer ("mine") or everything ("all", admins), exactly once per
// connection and in seq order per order. A subscription with after_seq is
// first replayed from the outbox (Events), so a client that reconnects
// misses nothing. Events are the contract's order.OrderEvent; the hub
// knows no database.
package ws

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/metrics"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// Events is what the hub reads of the orders' events (an *outbox.Log).
type Events interface {
	// Events returns the order's events after afterSeq, in seq order.
	Events(ctx context.Context, orderID uuid.UUID, afterSeq int) ([]order.OrderEvent, error)
	// Owner returns the customer who placed the order; an unknown order
	// is an apperr.NotFound.
	Owner(ctx context.Context, orderID uuid.UUID) (uuid.UUID, error)
	// Ping checks the database behind the events, for /readyz.
	Ping(ctx context.Context) error
}

// Settings tune the hub.
type Settings struct {
	Topic string
	// Partitions is how many partitions the topic is created with when the
	// hub comes first.
	Partitions int32
	// SendBuffer is how many messages may wait for one client; a client
	// that falls further behind is disconnected (it resumes with after_seq).
	SendBuffer int
	// PingInterval is how often the hub pings each client.
	PingInterval time.Duration
	// AllowedOrigins lists accepted Origin headers; "*" accepts any; empty
	// accepts the hub's own host and clients that send no Origin.
	AllowedOrigins []string
	// Profiling serves Go's profiles at /debug/pprof/ on the ops port
	// (DEBUG_PPROF).
	Profiling bool
}

// Hub routes events to connections. Build it with New.
type Hub struct {
	events   Events
	tokens   *authn.Tokens
	settings Settings
	log      *zap.Logger
	m        *hubMetrics

	kafka                 *kgo.Client
	listener, opsListener net.Listener
	reg                   *prometheus.Registry

	mu      sync.RWMutex
	conns   map[*conn]struct{}
	byOrder map[uuid.UUID]map[*conn]struct{}
	// ordersOf is byOrder turned around: the orders each connection
	// follows, so that a connection that goes leaves in its own time.
	ordersOf   map[*conn]map[uuid.UUID]struct{}
	byCustomer map[uuid.UUID]map[*conn]struct{}
	all        map[*conn]struct{}
	closing    bool
	writers    sync.WaitGroup
	// lag is the consumer lag seen at the last fetch, for /status.
	lag atomic.Int64
	// sequence admits each event once, for every connection.
	sequence sequencer
	// writeBuffers is gorilla's write-buffer pool, which no connection
	// draws from: the hub writes events itself, and gorilla only control
	// frames, which need no buffer. batches lends the slices that gather
	// a writer's frames, so that an idle connection holds none.
	writeBuffers, batches sync.Pool
}

// Deps are what the hub runs on.
type Deps struct {
	// Events replays an order's events after a seq, for after_seq.
	Events Events
	Tokens *authn.Tokens
	// Kafka consumes the topic (Consumer); nil leaves the hub to route only
	// what its caller dispatches, as in unit tests.
	Kafka *kgo.Client
	// Listener serves /ws and the probes; OpsListener serves /metrics and
	// /status. Either may be nil when a test serves the handlers itself.
	Listener, OpsListener net.Listener
	Registry              *prometheus.Registry
	Log                   *zap.Logger
}

// New returns a hub over d.
func New(d Deps, s Settings) *Hub {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if s.SendBuffer <= 0 {
		s.SendBuffer = 256
	}
	if s.PingInterval <= 0 {
		s.PingInterval = 30 * time.Second
	}
	if s.Partitions <= 0 {
		s.Partitions = 1
	}
	var reg prometheus.Registerer
	if d.Registry != nil {
		reg = d.Registry
	}
	return &Hub{
		events: d.Events, tokens: d.Tokens, settings: s, log: d.Log.With(zap.String("service", "ws hub")), m: newHubMetrics(reg),
		kafka: d.Kafka, listener: d.Listener, opsListener: d.OpsListener, reg: d.Registry,
		conns: map[*conn]struct{}{}, byOrder: map[uuid.UUID]map[*conn]struct{}{}, ordersOf: map[*conn]map[uuid.UUID]struct{}{},
		byCustomer: map[uuid.UUID]map[*conn]struct{}{}, all: map[*conn]struct{}{},
	}
}

// Consume reads every partition of the topic (no consumer group: each hub
// replica sees every event) from the records stamped after start, and
// dispatches them until ctx ends.
func (h *Hub) Consume(ctx context.Context, cl *kgo.Client) {
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			h.log.Warn("kafka fetch failed; retrying", zap.String("topic", topic), zap.Int32("partition", p), zap.Error(err))
		})
		var lag int64
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				lag += p.HighWatermark - p.Records[n-1].Offset - 1
			}
			for _, rec := range p.Records {
				h.dispatchRecord(rec)
			}
		})
		h.m.kafkaLag.Set(float64(lag))
		h.lag.Store(lag)
	}
}

func (h *Hub) dispatchRecord(rec *kgo.Record) {
	var e order.OrderEvent
	if err := json.Unmarshal(rec.Value, &e); err != nil || e.OrderID == uuid.Nil || e.Seq < 1 {
		h.log.Warn("skipping a record that is not an order event", zap.Int64("offset", rec.Offset), zap.Int32("partition", rec.Partition))
		return
	}
	h.m.delay.Observe(time.Since(rec.Timestamp).Seconds())
	// The record's value is the OrderEvent JSON clients receive, as is.
	h.Dispatch(e, rec.Value)
}

// Dispatch hands one event, and its JSON, to every connection subscribed
// to it, unless the hub has dispatched it (or a later event of its order)
// before. The hub's Kafka consumer calls it from one goroutine, which
// keeps each order's events in seq order.
func (h *Hub) Dispatch(e order.OrderEvent, data []byte) {
	if !h.sequence.admit(e) {
		return
	}
	f := textFrame(data)
	h.mu.RLock()
	byOrder, byCustomer := h.byOrder[e.OrderID], h.byCustomer[e.CustomerID]
	targets := make([]*conn, 0, len(h.all)+len(byOrder)+len(byCustomer))
	for c := range h.all {
		targets = append(targets, c)
	}
	// A connection in two sets gets the event once: a connection that
	// follows only scopes keeps no seqs to drop a second copy with.
	for c := range byOrder {
		if _, dup := h.all[c]; !dup {
			targets = append(targets, c)
		}
	}
	for c := range byCustomer {
		_, inAll := h.all[c]
		_, inOrder := byOrder[c]
		if !inAll && !inOrder {
			targets = append(targets, c)
		}
	}
	h.mu.RUnlock()
	for _, c := range targets {
		c.deliver(e, f)
	}
}

// Stats counts connections and subscriptions, for status pages and tests.
type Stats struct {
	Connections   int
	OrderSubs     int
	CustomerSubs  int
	AllSubs       int
	Subscriptions int
}

// KafkaLag is how many records the hub had not yet read at its last fetch.
func (h *Hub) KafkaLag() int64 { return h.lag.Load() }

// Stats returns the hub's current counts.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	defer h.mu.RUnlock()
	s := Stats{Connections: len(h.conns), AllSubs: len(h.all)}
	for _, cs := range h.byOrder {
		s.OrderSubs += len(cs)
	}
	for _, cs := range h.byCustomer {
		s.CustomerSubs += len(cs)
	}
	s.Subscriptions = s.OrderSubs + s.CustomerSubs + s.AllSubs
	return s
}

func (h *Hub) register(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.conns[c] = struct{}{}
	h.writers.Add(1)
	h.m.connections.Inc()
	return true
}

func (h *Hub) unregister(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.conns[c]; !ok {
		return
	}
	delete(h.conns, c)
	delete(h.all, c)
	// Only the orders this connection follows: a scan of every order
	// under the hub's lock would stall every delivery while thousands of
	// connections come and go.
	for id := range h.ordersOf[c] {
		removeFrom(h.byOrder, id, c)
	}
	delete(h.ordersOf, c)
	if cs := h.byCustomer[c.claims.UserID]; cs != nil {
		delete(cs, c)
		if len(cs) == 0 {
			delete(h.byCustomer, c.claims.UserID)
		}
	}
	h.m.connections.Dec()
}

// followOrder subscribes c to order id; the caller holds h.mu. A
// connection that has gone already is not subscribed again.
func (h *Hub) followOrder(id uuid.UUID, c *conn) {
	if _, ok := h.conns[c]; !ok {
		return
	}
	addTo(h.byOrder, id, c)
	ids := h.ordersOf[c]
	if ids == nil {
		ids = map[uuid.UUID]struct{}{}
		h.ordersOf[c] = ids
	}
	ids[id] = struct{}{}
}

// unfollowOrder ends c's subscription to order id; the caller holds h.mu.
func (h *Hub) unfollowOrder(id uuid.UUID, c *conn) {
	removeFrom(h.byOrder, id, c)
	if ids := h.ordersOf[c]; ids != nil {
		delete(ids, id)
	}
}

func addTo(m map[uuid.UUID]map[*conn]struct{}, id uuid.UUID, c *conn) {
	cs := m[id]
	if cs == nil {
		cs = map[*conn]struct{}{}
		m[id] = cs
	}
	cs[c] = struct{}{}
}

func removeFrom(m map[uuid.UUID]map[*conn]struct{}, id uuid.UUID, c *conn) {
	if cs := m[id]; cs != nil {
		delete(cs, c)
		if len(cs) == 0 {
			delete(m, id)
		}
	}
}

// Shutdown sends every client a going-away close frame and waits (up to
// ctx) for their writers to finish.
func (h *Hub) Shutdown(ctx context.Context) {
	h.mu.Lock()
	h.closing = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.close(closeGoingAway, "server shutting down; reconnect and resubscribe with after_seq")
	}
	done := make(chan struct{})
	go func() { h.writers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

type hubMetrics struct {
	connections prometheus.Gauge
	delivered   prometheus.Counter
	writes      prometheus.Counter
	dropped     prometheus.Counter
	delay       prometheus.Histogram
	kafkaLag    prometheus.Gauge
}

func newHubMetrics(reg prometheus.Registerer) *hubMetrics {
	m := &hubMetrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ordersaga_ws_connections", Help: "Open websocket connections."}),
		delivered:   prometheus.NewCounter(prometheus.CounterOpts{Name: "ordersaga_ws_events_delivered_total", Help: "Events queued to clients."}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{Name: "ordersaga_ws_socket_writes_total",
			Help: "Writes of queued frames to clients' sockets, each one system call for all that a client had queued."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "ordersaga_ws_slow_clients_dropped_total", Help: "Clients disconnected for falling behind."}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ordersaga_ws_kafka_to_hub_seconds", Help: "From produce to the hub's dispatch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		kafkaLag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ordersaga_ws_kafka_consumer_lag", Help: "Records on the topic the hub has not read yet."}),
	}
	metrics.Register(reg, m.connections, m.delivered, m.writes, m.dropped, m.delay, m.kafkaLag)
	return m
}
