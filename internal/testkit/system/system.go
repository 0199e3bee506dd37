// Package system starts the whole of ordersaga for a test, through the
// services' own constructors (the same ones `ordersaga <service>` and
// `ordersaga dev` call): the three workers with the starter, the outbox
// relay, the gateway and the websocket hub, on the servers of
// internal/testkit, each test with its own database, Temporal namespace
// and Kafka topic, each service on a port of its own.
package system

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/gateway"
	"github.com/ordersaga/ordersaga/internal/accounts"
	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/kafkaclient"
	"github.com/ordersaga/ordersaga/internal/logging"
	"github.com/ordersaga/ordersaga/internal/metrics"
	"github.com/ordersaga/ordersaga/internal/outbox"
	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workers"
	"github.com/ordersaga/ordersaga/workflows/order"
	"github.com/ordersaga/ordersaga/ws"
)

// Secret signs the test system's tokens.
const Secret = "systemtest-secret-systemtest-secret!"

// System is a running ordersaga.
type System struct {
	T    testing.TB
	Pool *pgxpool.Pool
	// Store is the orders schema.
	Store *orders.Store
	// Temporal is the workers' client: it encrypts payloads with the test
	// keys, or writes them in clear with Options.PlainPayloads.
	Temporal  client.Client
	Brokers   []string
	Topic     string
	Namespace string
	// Gateway is the running gateway; its Handler is the engine it serves,
	// for tests that add a route.
	Gateway    *gateway.Server
	GatewayURL string
	Hub        *ws.Hub
	HubURL     string
	// HubOpsURL is the hub's ops address (/status, /metrics), apart from HubURL.
	HubOpsURL  string
	Tokens     *authn.Tokens
	AdminToken string
	// Registry is the one metrics registry of the system's services, as
	// `ordersaga dev` shares one: the gateway's, the hub's, the relay's and
	// the workers' metrics, and the Temporal SDK's, which the clients
	// report through one metrics.TemporalSDK handler.
	Registry *prometheus.Registry

	opt      Options
	provider payment.Provider
	users    atomic.Int64
}

// Options change what Start builds.
type Options struct {
	// SendBuffer is the hub's per-client buffer (default 256).
	SendBuffer int
	// SlowDelay is how long tok_slow authorizes (default 3 s).
	SlowDelay time.Duration
	// Provider replaces the payment simulator, to hold an authorization
	// at a chosen moment.
	Provider func(sim *payment.Simulator) payment.Provider
	// NoWorkers leaves the workers out, for tests of the gateway alone.
	NoWorkers bool
	// NoOrderWorker leaves the order worker out: workflows wait until the
	// test calls StartWorker("order").
	NoOrderWorker bool
	// Starter runs beside the order worker; nil runs none, for tests that
	// drive a starter of their own.
	Starter *orders.StarterSettings
	// PlainPayloads has the workers' client write payloads in clear, for
	// histories that replay without keys.
	PlainPayloads bool
	// TemporalAddress and Namespace name a Temporal server of the test's
	// own (default: a fresh namespace on the harness's server).
	TemporalAddress, Namespace string
	// StartTimeout bounds the gateway's workflow start (default 3 s).
	StartTimeout time.Duration
	// StepTimeout bounds each saga step of the orders the gateway starts
	// (default 1 min).
	StepTimeout time.Duration
	// CatalogFeed tunes the gateway's feed of the catalogue's changes,
	// which keeps its product cache fresh (default: as in production).
	CatalogFeed inventory.FeedOptions
	// Env adds configuration variables (TRUSTED_PROXIES,
	// CORS_ALLOWED_ORIGINS, TEMPORAL_UI_URL, …), read as `ordersaga
	// gateway` reads them.
	Env map[string]string
}

// WorkerOptions are the test workers' options: a short stop, so that a
// test that stops a worker does not wait for the production grace.
var WorkerOptions = worker.Options{WorkerStopTimeout: 2 * time.Second}

// Start runs a whole system for t and stops it when t ends.
func Start(t testing.TB, opt Options) *System {
	t.Helper()
	addr, ns := opt.TemporalAddress, opt.Namespace
	if addr == "" {
		addr, ns = testkit.NewNamespace(t)
	}
	if opt.StepTimeout == 0 {
		opt.StepTimeout = time.Minute
	}
	pool := testkit.NewPool(t)
	log := testkit.Logger()
	s := &System{T: t, Pool: pool, Store: orders.NewStore(pool), Brokers: testkit.KafkaBrokers(t),
		Topic: "order-events-" + uuid.NewString()[:8], Namespace: ns, Tokens: authn.New(Secret, time.Hour, time.Now), opt: opt,
		Registry: metrics.NewRegistry()}
	sdkMetrics := metrics.TemporalSDK(s.Registry)
	wopts := testkit.ClientOptions(addr, ns)
	if opt.PlainPayloads {
		wopts = testkit.PlainClientOptions(addr, ns)
	}
	wopts.MetricsHandler = sdkMetrics
	s.Temporal = testkit.Dial(t, wopts)
	sim := payment.NewSimulator(pool)
	sim.SlowDelay = 3 * time.Second
	if opt.SlowDelay > 0 {
		sim.SlowDelay = opt.SlowDelay
	}
	s.provider = sim
	if opt.Provider != nil {
		s.provider = opt.Provider(sim)
	}
	if !opt.NoWorkers {
		s.StartWorker("product")
		s.StartWorker("payment")
		if !opt.NoOrderWorker {
			s.StartWorker("order")
		}
	}

	producer, err := kafkaclient.Producer(s.Brokers, s.Topic, 10*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	relay := outbox.New(pool, producer, outbox.Options{Topic: s.Topic, Partitions: 3, Idle: 200 * time.Millisecond, CheckInterval: 200 * time.Millisecond, CheckTimeout: 500 * time.Millisecond}, s.Registry, log)
	s.run("outbox relay", relay.Run)

	consumer, err := ws.Consumer(s.Brokers, s.Topic, time.Now(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(consumer.Close)
	// Created before the hub runs, so that it consumes from the first event.
	if err := kafkaclient.EnsureTopic(context.Background(), consumer, s.Topic, 3); err != nil {
		t.Fatal(err)
	}
	hubLn, opsLn := listen(t), listen(t)
	// The hub profiles on its loopback ops port, as `ordersaga dev` does:
	// the fan-out tool reads its live heap there.
	s.Hub = ws.New(ws.Deps{Events: outbox.NewLog(pool), Tokens: s.Tokens, Kafka: consumer, Listener: hubLn, OpsListener: opsLn,
		Registry: s.Registry, Log: log}, ws.Settings{Topic: s.Topic, Partitions: 3, SendBuffer: opt.SendBuffer, Profiling: true})
	s.HubURL, s.HubOpsURL = "ws://"+hubLn.Addr().String()+"/ws", "http://"+opsLn.Addr().String()
	s.run("ws hub", s.Hub.Run)

	// The gateway's client is lazy and encrypts with the test keys, as
	// production's does.
	topts := testkit.ClientOptions(addr, ns)
	topts.Logger = logging.Temporal(log)
	topts.MetricsHandler = sdkMetrics
	tc, err := client.NewLazyClient(topts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	gwLn := listen(t)
	env := map[string]string{
		"JWT_SECRET": Secret, "ORDER_STEP_TIMEOUT": opt.StepTimeout.String(), "TEMPORAL_ADDRESS": addr, "TEMPORAL_NAMESPACE": ns,
		"TEMPORAL_UI_URL": "http://" + addr, "WS_PUBLIC_URL": s.HubURL, "WS_OPS_URL": s.HubOpsURL,
	}
	for k, v := range opt.Env {
		env[k] = v
	}
	cfg, err := config.LoadFrom(env)
	if err != nil {
		t.Fatal(err)
	}
	settings := gateway.SettingsFrom(cfg)
	settings.StartTimeout = opt.StartTimeout
	settings.CatalogFeed = opt.CatalogFeed
	s.Gateway = gateway.New(gateway.Deps{
		Accounts: accounts.NewStore(pool), Catalog: inventory.NewCatalog(pool), Orders: s.Store, Outbox: outbox.NewLog(pool), Temporal: tc,
		OrdersStats: postgres.NewStats(pool, log), Tokens: s.Tokens, Log: log, Registry: s.Registry, Now: time.Now, Codec: testkit.Codec(), Listener: gwLn,
	}, settings)
	s.GatewayURL = "http://" + gwLn.Addr().String()
	s.run("gateway", s.Gateway.Run)

	if _, err := accounts.NewStore(pool).Create(context.Background(), "root@example.com", "Root", "admin-password", order.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	s.AdminToken = s.Login("root@example.com", "admin-password")
	return s
}

// StartWorker runs one worker ("order", "product" or "payment") built by
// its constructor in package workers, until the test ends or the returned
// stop is called (which waits for it to stop).
func (s *System) StartWorker(which string) (stop func()) {
	s.T.Helper()
	log := testkit.Logger()
	var w *workers.Worker
	switch which {
	case "order":
		w = workers.NewOrder(workers.OrderDeps{Temporal: s.Temporal, Orders: s.Store, Registry: s.Registry, Log: log},
			workers.OrderSettings{Worker: WorkerOptions, Starter: s.opt.Starter})
	case "product":
		w = workers.NewProduct(s.Temporal, s.Pool, WorkerOptions, log)
	case "payment":
		w = workers.NewPayment(s.Temporal, s.Pool, s.provider, WorkerOptions, log)
	default:
		s.T.Fatalf("no worker %q", which)
	}
	return s.run(which+" worker", w.Run)
}

// run runs a service until the test ends or stop is called, and reports
// an error it stops with.
func (s *System) run(name string, run func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := run(ctx); err != nil && ctx.Err() == nil {
			s.T.Errorf("%s stopped: %v", name, err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	s.T.Cleanup(stop)
	return stop
}

// listen opens a listener on a free loopback port.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// StockProduct creates a product priced price with on-hand stock per
// warehouse, through the product service, as an admin would.
func (s *System) StockProduct(sku string, price int64, stock map[string]int) {
	s.T.Helper()
	n := inventory.NewProduct{SKU: sku, Name: sku, Brand: "Test", PriceCents: price, Currency: "USD"}
	for wh, units := range stock {
		n.Stock = append(n.Stock, inventory.InitialStock{Warehouse: wh, OnHand: units})
	}
	if _, err := inventory.NewCatalog(s.Pool).Create(context.Background(), n, "test"); err != nil {
		s.T.Fatal(err)
	}
}

// NewOrder is an order of a new customer paying with token, not yet recorded.
func NewOrder(token string, lines ...order.Line) orders.NewOrder {
	return orders.NewOrder{ID: uuid.New(), CustomerID: uuid.New(), Lines: lines, PaymentMethod: token, Currency: "USD"}
}

// Record records n as the gateway does and, if start, starts its workflow;
// an order left unstarted waits for a starter.
func (s *System) Record(n orders.NewOrder, start bool) {
	s.T.Helper()
	ctx := context.Background()
	if err := s.Store.CreatePending(ctx, n); err != nil {
		s.T.Fatal(err)
	}
	if !start {
		return
	}
	if err := order.Start(ctx, s.Temporal, n.Input(order.Timeouts{Step: s.opt.StepTimeout})); err != nil {
		s.T.Fatal(err)
	}
	if err := s.Store.MarkStarted(ctx, n.ID.String()); err != nil {
		s.T.Fatal(err)
	}
}

// Outcome is the order's status as the read model shows it, with its
// reason if any: "REJECTED(out_of_stock)".
func (s *System) Outcome(id uuid.UUID) string {
	s.T.Helper()
	o, err := s.Store.Get(context.Background(), id)
	if err != nil {
		s.T.Fatal(err)
	}
	if o.Reason != "" {
		return string(o.Status) + "(" + string(o.Reason) + ")"
	}
	return string(o.Status)
}

// Do sends a JSON request to the gateway and returns the status and body.
func (s *System) Do(method, path, token string, body any) (int, []byte) {
	s.T.Helper()
	var auth []string
	if token != "" {
		auth = []string{"Authorization", "Bearer " + token}
	}
	status, _, b := testkit.Exchange(s.T, http.DefaultClient, method, s.GatewayURL+path, body, auth...)
	return status, b
}

// Login returns a token for the account.
func (s *System) Login(email, password string) string {
	s.T.Helper()
	status, body := s.Do("POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": password})
	var out struct{ Token string }
	if status != 200 || json.Unmarshal(body, &out) != nil {
		s.T.Fatalf("login %s: %d %s", email, status, body)
	}
	return out.Token
}

// Customer registers a new customer and returns their token and id.
func (s *System) Customer() (token string, id uuid.UUID) {
	s.T.Helper()
	email := fmt.Sprintf("c%d-%s@example.com", s.users.Add(1), uuid.NewString()[:6])
	status, body := s.Do("POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": "password123", "name": "C"})
	var u struct{ ID uuid.UUID }
	if status != 201 || json.Unmarshal(body, &u) != nil {
		s.T.Fatalf("register: %d %s", status, body)
	}
	return s.Login(email, "password123"), u.ID
}

// Product creates a product with stock in warehouse east.
func (s *System) Product(sku string, price int64, onHand int) {
	s.T.Helper()
	status, body := s.Do("POST", "/api/v1/products", s.AdminToken, map[string]any{"sku": sku, "name": sku, "brand": "B", "price_cents": price,
		"stock": []map[string]any{{"warehouse": "east", "on_hand": onHand}}})
	if status != 201 {
		s.T.Fatalf("create %s: %d %s", sku, status, body)
	}
}

// PlaceOrder places an order of qty units of sku and returns its id.
func (s *System) PlaceOrder(token, sku string, qty int, method string) uuid.UUID {
	s.T.Helper()
	status, body := s.Do("POST", "/api/v1/orders", token, map[string]any{"items": []map[string]any{{"sku": sku, "quantity": qty}}, "payment_method": method})
	var o struct{ ID uuid.UUID }
	if status != 202 || json.Unmarshal(body, &o) != nil {
		s.T.Fatalf("place order: %d %s", status, body)
	}
	return o.ID
}

// WaitStatus waits until the order's status is one of want and returns it.
func (s *System) WaitStatus(token string, id uuid.UUID, within time.Duration, want ...string) string {
	s.T.Helper()
	deadline := time.Now().Add(within)
	for {
		_, body := s.Do("GET", "/api/v1/orders/"+id.String(), token, nil)
		var o struct{ Status string }
		_ = json.Unmarshal(body, &o)
		for _, w := range want {
			if o.Status == w {
				return o.Status
			}
		}
		if time.Now().After(deadline) {
			s.T.Fatalf("order %s is %q after %s, want %v", id, o.Status, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
