// Package systemtest starts the whole of ordersaga for a test: the three
// workers with the starter and the outbox relay, the gateway and the
// websocket hub, on the servers of internal/testenv, each test with its own
// database, Temporal namespace and Kafka topic.
package systemtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/gateway"
	"github.com/ordersaga/ordersaga/internal/accounts"
	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/catalog"
	"github.com/ordersaga/ordersaga/internal/kafkaclient"
	"github.com/ordersaga/ordersaga/internal/logging"
	"github.com/ordersaga/ordersaga/internal/outbox"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workers"
	"github.com/ordersaga/ordersaga/workflows/order"
	"github.com/ordersaga/ordersaga/ws"
)

// Secret signs the test system's tokens.
const Secret = "systemtest-secret-systemtest-secret!"

// System is a running ordersaga.
type System struct {
	T          testing.TB
	Pool       *pgxpool.Pool
	Store      *orders.Store
	Temporal   client.Client
	Brokers    []string
	Topic      string
	GatewayURL string
	// Gateway is the gateway's router, for tests that add a route.
	Gateway *gin.Engine
	HubURL  string
	// HubOpsURL is the hub's ops address (/status, /metrics), apart from HubURL.
	HubOpsURL  string
	Hub        *ws.Hub
	Tokens     *authn.Tokens
	AdminToken string
	users      atomic.Int64
}

// Options change what Start builds.
type Options struct {
	// SendBuffer is the hub's per-client buffer (default 256).
	SendBuffer int
	// SlowDelay is how long tok_slow authorizes (default 3 s).
	SlowDelay time.Duration
	// NoWorkers leaves the workers out, for tests of the gateway alone.
	NoWorkers bool
	// TemporalAddress and Namespace name a Temporal server of the test's
	// own (default: a fresh namespace on the harness's server).
	TemporalAddress, Namespace string
	// StartTimeout bounds the gateway's workflow start (default 3 s).
	StartTimeout time.Duration
}

// Start runs a whole system for t and stops it when t ends.
func Start(t testing.TB, opt Options) *System {
	t.Helper()
	addr, ns := opt.TemporalAddress, opt.Namespace
	if addr == "" {
		addr, ns = testkit.NewNamespace(t)
	}
	pool := testkit.NewPool(t)
	brokers := testkit.KafkaBrokers(t)
	topic := "order-events-" + uuid.NewString()[:8]
	log := testkit.Logger()
	ctx, cancel := context.WithCancel(context.Background())

	wc := testkit.TemporalClient(t, addr, ns)
	store := orders.NewStore(pool)
	sim := payment.NewSimulator(pool)
	sim.SlowDelay = 3 * time.Second
	if opt.SlowDelay > 0 {
		sim.SlowDelay = opt.SlowDelay
	}
	wopts := worker.Options{WorkerStopTimeout: 2 * time.Second}
	for _, w := range []worker.Worker{
		workers.NewOrder(wc, store, wopts, log),
		workers.NewProduct(wc, pool, wopts, log),
		workers.NewPayment(wc, pool, sim, wopts, log),
	} {
		if opt.NoWorkers {
			break
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Stop)
	}

	producer, err := kafkaclient.Producer(brokers, topic, 10*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	relay := outbox.New(pool, producer, outbox.Options{Topic: topic, Partitions: 3, Idle: 200 * time.Millisecond, CheckInterval: 200 * time.Millisecond, CheckTimeout: 500 * time.Millisecond}, prometheus.NewRegistry(), log)
	relayDone := make(chan struct{})
	go func() { _ = relay.Run(ctx); close(relayDone) }()

	tokens := authn.New(Secret, time.Hour, time.Now)
	// Encrypting with the test keys, as the workers' client does.
	topts := testkit.ClientOptions(addr, ns)
	topts.Logger = logging.Temporal(log)
	tc, err := client.NewLazyClient(topts)
	if err != nil {
		t.Fatal(err)
	}
	s := &System{T: t, Pool: pool, Store: store, Temporal: tc, Brokers: brokers, Topic: topic, Tokens: tokens}

	started := time.Now()
	consumer, err := ws.Consumer(brokers, topic, started, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := kafkaclient.EnsureTopic(ctx, consumer, topic, 3); err != nil {
		t.Fatal(err)
	}
	hub := ws.New(outbox.NewLog(pool), tokens, ws.Settings{Topic: topic, SendBuffer: opt.SendBuffer}, prometheus.NewRegistry(), log)
	hubDone := make(chan struct{})
	go func() { hub.Consume(ctx, consumer); close(hubDone) }()
	hubServer := httptest.NewServer(hub.Handler(consumer))
	hubOps := httptest.NewServer(hub.OpsHandler(nil, consumer))
	s.Hub, s.HubURL, s.HubOpsURL = hub, "ws"+strings.TrimPrefix(hubServer.URL, "http")+"/ws", hubOps.URL

	gw := gateway.New(gateway.Deps{
		Accounts: accounts.NewStore(pool), Catalog: catalog.New(pool), Orders: store, Outbox: outbox.NewLog(pool), Temporal: tc,
		Tokens: tokens, Log: log, Registry: prometheus.NewRegistry(), Now: time.Now, Codec: testkit.Codec(),
	}, gateway.Settings{Timeouts: order.Timeouts{Step: time.Minute}, CursorKey: gateway.CursorKey(Secret), WSURL: s.HubURL, HubStatusURL: s.HubOpsURL + "/status", Namespace: ns,
		TemporalUIURL: "http://" + addr, StartTimeout: opt.StartTimeout})
	s.Gateway = gw.Handler()
	gwServer := httptest.NewServer(s.Gateway)
	s.GatewayURL = gwServer.URL

	t.Cleanup(func() {
		gwServer.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		hub.Shutdown(sctx)
		scancel()
		hubServer.Close()
		hubOps.Close()
		cancel()
		<-hubDone
		<-relayDone
		consumer.Close()
		producer.Close()
		tc.Close()
	})
	if _, err := accounts.NewStore(pool).Create(context.Background(), "root@example.com", "Root", "admin-password", order.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	s.AdminToken = s.Login("root@example.com", "admin-password")
	return s
}

// Do sends a JSON request to the gateway and returns the status and body.
func (s *System) Do(method, path, token string, body any) (int, []byte) {
	s.T.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.GatewayURL+path, rd)
	if err != nil {
		s.T.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
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
