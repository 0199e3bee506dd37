package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/internal/testkit/system"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const secret = system.Secret

// stack is a client of the gateway of a whole running system.
type stack struct {
	t        testing.TB
	url      string
	pool     *pgxpool.Pool
	temporal client.Client
	engine   *gin.Engine
	store    *orders.Store
	admin    string
	users    *atomic.Int64
	// sys is the running system, for tests that stop and start its workers.
	sys *system.System
}

type options struct {
	temporalAddr, namespace string
	noWorkers               bool
	startTimeout            time.Duration
	catalogFeed             inventory.FeedOptions
}

func newStack(t testing.TB, opt options) *stack {
	t.Helper()
	sys := system.Start(t, system.Options{NoWorkers: opt.noWorkers, TemporalAddress: opt.temporalAddr,
		Namespace: opt.namespace, StartTimeout: opt.startTimeout, CatalogFeed: opt.catalogFeed})
	return &stack{t: t, url: sys.GatewayURL, pool: sys.Pool, temporal: sys.Temporal, engine: sys.Gateway.Handler(),
		store: sys.Store, admin: sys.AdminToken, users: new(atomic.Int64), sys: sys}
}

// response is what a client sees.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t testing.TB, into any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, into); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// errCode is the error code of an error response, "" otherwise.
func (r response) errCode() string {
	var e struct {
		Error struct {
			Code      string `json:"code"`
			Field     string `json:"field"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

func (r response) errField() string {
	var e struct {
		Error struct {
			Field string `json:"field"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Field
}

func (s *stack) do(method, path, token string, body any, headers ...string) response {
	s.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		raw, _ = json.Marshal(b)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 && resp.StatusCode != 503 {
		s.t.Errorf("%s %s answered %d: %s", method, path, resp.StatusCode, b)
	}
	if resp.Header.Get("X-Request-ID") == "" {
		s.t.Errorf("%s %s: no X-Request-ID", method, path)
	}
	// Every exchange is held to openapi.json (contract_test.go).
	checkContract(s.t, req, raw, resp.StatusCode, resp.Header, b)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func (s *stack) login(email, password string) string {
	s.t.Helper()
	r := s.do("POST", "/api/v1/auth/login", "", map[string]string{"email": email, "password": password})
	if r.Status != 200 {
		s.t.Fatalf("login %s: %d %s", email, r.Status, r.Body)
	}
	var out struct{ Token string }
	r.json(s.t, &out)
	return out.Token
}

// customer registers a new customer and returns their token and id.
func (s *stack) customer() (token, id string) {
	s.t.Helper()
	email := fmt.Sprintf("shopper%d@example.com", s.users.Add(1))
	r := s.do("POST", "/api/v1/auth/register", "", map[string]string{"email": email, "password": "password123", "name": "Shopper"})
	if r.Status != 201 {
		s.t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	var u struct{ ID string }
	r.json(s.t, &u)
	return s.login(email, "password123"), u.ID
}

func (s *stack) product(sku string, price int64, stock map[string]int) {
	s.t.Helper()
	var st []map[string]any
	for wh, n := range stock {
		st = append(st, map[string]any{"warehouse": wh, "on_hand": n})
	}
	r := s.do("POST", "/api/v1/products", s.admin, map[string]any{"sku": sku, "name": "Product " + sku, "brand": "Brand" + sku[:1],
		"description": "d", "price_cents": price, "stock": st})
	if r.Status != 201 {
		s.t.Fatalf("create %s: %d %s", sku, r.Status, r.Body)
	}
}

type orderJSON struct {
	ID         string `json:"id"`
	CustomerID string `json:"customer_id"`
	Status     string `json:"status"`
	Reason     string `json:"reason"`
	TotalCents int64  `json:"total_cents"`
	Currency   string `json:"currency"`
	Items      []struct {
		SKU            string `json:"sku"`
		Quantity       int    `json:"quantity"`
		UnitPriceCents int64  `json:"unit_price_cents"`
		LineTotalCents int64  `json:"line_total_cents"`
	} `json:"items"`
}

func (s *stack) placeOrder(token, token2 string, items ...any) response {
	s.t.Helper()
	var its []map[string]any
	for i := 0; i+1 < len(items); i += 2 {
		its = append(its, map[string]any{"sku": items[i], "quantity": items[i+1]})
	}
	return s.do("POST", "/api/v1/orders", token, map[string]any{"items": its, "payment_method": token2})
}

// waitStatus polls the order until it has one of the statuses.
func (s *stack) waitStatus(token, id string, within time.Duration, want ...string) orderJSON {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var o orderJSON
		r := s.do("GET", "/api/v1/orders/"+id, token, nil)
		r.json(s.t, &o)
		for _, w := range want {
			if o.Status == w {
				return o
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("order %s is %s after %s, want one of %v", id, o.Status, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// counts is how many rows the write tables hold, to prove a refused
// request wrote nothing.
func (s *stack) counts() string {
	s.t.Helper()
	var out string
	err := s.pool.QueryRow(context.Background(), `SELECT concat_ws(',',
		(SELECT count(*) FROM auth.users), (SELECT count(*) FROM catalog.products), (SELECT count(*) FROM catalog.stock),
		(SELECT count(*) FROM catalog.stock_movements), (SELECT count(*) FROM orders.orders), (SELECT count(*) FROM orders.order_lines),
		(SELECT count(*) FROM orders.order_events), (SELECT count(*) FROM orders.idempotency_keys),
		(SELECT sum(on_hand)::text || '/' || sum(reserved)::text FROM catalog.stock),
		(SELECT string_agg(sku || name || price_cents || active, ';' ORDER BY sku) FROM catalog.products))`).Scan(&out)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

func listRequest(workflowID string) *workflowservice.ListWorkflowExecutionsRequest {
	return &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = %q", workflowID)}
}

func bufCopy(dst io.Writer, resp *http.Response) (int64, error) { return io.Copy(dst, resp.Body) }
