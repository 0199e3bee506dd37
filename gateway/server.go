// Package gateway is ordersaga's REST API (API.md), on gin: auth, the
// catalogue, admin inventory and orders. It writes new orders as PENDING
// and starts their workflows; everything it reads comes from the read model.
package gateway

import (
	"context"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/accounts"
	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/catalog"
	"github.com/ordersaga/ordersaga/internal/orderstore"
	"github.com/ordersaga/ordersaga/internal/ratelimit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// Settings are the gateway's tunables.
type Settings struct {
	// Timeouts are handed to each order's workflow.
	Timeouts order.Timeouts
	// StartTimeout bounds the call that starts an order's workflow; past it
	// the order is still accepted and the starter runs it.
	StartTimeout time.Duration
	// CancelTimeout bounds the cancel update.
	CancelTimeout time.Duration
	// CursorKey signs pagination cursors.
	CursorKey     []byte
	WSURL         string
	TemporalUIURL string
	// Namespace is the Temporal namespace, for task-queue status.
	Namespace string
}

// Server holds the gateway's dependencies. Build it with New.
type Server struct {
	accounts *accounts.Store
	catalog  *catalog.Store
	orders   *orderstore.Store
	temporal client.Client
	tokens   *authn.Tokens
	log      *zap.Logger
	reg      *prometheus.Registry
	now      func() time.Time
	settings Settings
	cursors  cursors

	loginByAddr  *ratelimit.Keyed
	loginByEmail *ratelimit.Keyed
	metrics      *httpMetrics
}

// Deps are what the gateway talks to.
type Deps struct {
	Accounts *accounts.Store
	Catalog  *catalog.Store
	Orders   *orderstore.Store
	Temporal client.Client
	Tokens   *authn.Tokens
	Log      *zap.Logger
	Registry *prometheus.Registry
	Now      func() time.Time
}

// New returns a gateway over deps.
func New(deps Deps, s Settings) *Server {
	if s.StartTimeout == 0 {
		s.StartTimeout = 3 * time.Second
	}
	if s.CancelTimeout == 0 {
		s.CancelTimeout = 15 * time.Second
	}
	return &Server{
		accounts: deps.Accounts, catalog: deps.Catalog, orders: deps.Orders, temporal: deps.Temporal,
		tokens: deps.Tokens, log: deps.Log, reg: deps.Registry, now: deps.Now, settings: s,
		cursors: cursors{key: s.CursorKey},
		// Logins: 10 at once, then one every 6 s per address, and 5 then one
		// every 12 s per email: enough for people, too few for guessing.
		loginByAddr:  ratelimit.New(6*time.Second, 10, deps.Now),
		loginByEmail: ratelimit.New(12*time.Second, 5, deps.Now),
		metrics:      newHTTPMetrics(deps.Registry),
	}
}

// Handler returns the gin engine with every route of API.md.
func (s *Server) Handler() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.ContextWithFallback = true
	r.Use(s.requestID, s.recovery, s.observe, s.limitBody)
	r.NoRoute(func(c *gin.Context) { s.fail(c, notFound("no such endpoint")) })

	r.GET("/", s.shop)
	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(metricsHandler(s.reg)))

	api := r.Group("/api/v1")
	api.GET("/config", s.config)
	api.GET("/openapi.json", s.openapi)

	api.POST("/auth/register", s.register)
	api.POST("/auth/login", s.login)
	api.GET("/me", s.authenticated, s.me)

	api.GET("/products", s.listProducts)
	api.GET("/products/:sku", s.getProduct)
	api.POST("/products", s.authenticated, s.admin, s.createProduct)
	api.PATCH("/products/:sku", s.authenticated, s.admin, s.updateProduct)
	api.DELETE("/products/:sku", s.authenticated, s.admin, s.deleteProduct)
	api.POST("/products/:sku/stock", s.authenticated, s.admin, s.adjustStock)

	api.POST("/orders", s.authenticated, s.customer, s.createOrder)
	api.GET("/orders", s.authenticated, s.listOrders)
	api.GET("/orders/:id", s.authenticated, s.getOrder)
	api.GET("/orders/:id/events", s.authenticated, s.orderEvents)
	api.POST("/orders/:id/cancel", s.authenticated, s.cancelOrder)

	api.GET("/system/status", s.authenticated, s.admin, s.systemStatus)
	return r
}

// ping is a dependency check for /readyz.
type ping struct {
	name  string
	check func(ctx context.Context) error
}
