// Package gateway is ordersaga's REST API (API.md), on gin: auth, the
// catalogue, admin inventory and orders. It writes new orders as PENDING
// and starts their workflows; everything it reads comes from the read model.
package gateway

import (
	"net"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/internal/accounts"
	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/codec"
	"github.com/ordersaga/ordersaga/internal/metrics"
	"github.com/ordersaga/ordersaga/internal/monitor"
	"github.com/ordersaga/ordersaga/internal/outbox"
	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/internal/ratelimit"
	"github.com/ordersaga/ordersaga/internal/readcache"
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
	// HubStatusURL is the hub's /status on its ops address, for the
	// system status; the public websocket port does not serve it.
	HubStatusURL string
	// Namespace is the Temporal namespace, for task-queue status.
	Namespace string
	// TrustedProxies are the proxies (IPs or CIDRs) whose X-Forwarded-For
	// names the client; empty trusts none (TRUSTED_PROXIES).
	TrustedProxies []string
	// CORSOrigins are the other origins that may call the API from a
	// browser; empty allows the same origin only (CORS_ALLOWED_ORIGINS).
	CORSOrigins []string
	// CatalogFeed tunes the feed of the catalogue's changes that keeps the
	// product cache fresh; zero values take its defaults.
	CatalogFeed inventory.FeedOptions
}

// Server holds the gateway's dependencies. Build it with New.
type Server struct {
	accounts *accounts.Store
	catalog  *inventory.Catalog
	orders   *orders.Store
	outbox   *outbox.Log
	temporal client.Client
	codec    converter.PayloadCodec
	tokens   *authn.Tokens
	log      *zap.Logger
	reg      *prometheus.Registry
	now      func() time.Time
	settings Settings
	cursors  cursors

	logins        *ratelimit.Logins
	registrations *ratelimit.Keyed
	metrics       *httpMetrics
	monitor       *monitor.Monitor
	listener      net.Listener
	queues        queueCache
	beats         heartbeatClock
	status        shared[systemStatusBody]
	engineOnce    sync.Once
	engine        *gin.Engine
	// products caches product pages; changes keeps it fresh (products.go).
	products *readcache.Cache[[]byte]
	changes  *inventory.ChangeFeed
}

// Deps are what the gateway talks to.
type Deps struct {
	Accounts *accounts.Store
	Catalog  *inventory.Catalog
	Orders   *orders.Store
	// Outbox reads orders' events and the relay's progress.
	Outbox   *outbox.Log
	Temporal client.Client
	Tokens   *authn.Tokens
	Log      *zap.Logger
	Registry *prometheus.Registry
	Now      func() time.Time
	// Codec is the payload codec of the Temporal client, which the codec
	// endpoints use; nil decodes only payloads in clear.
	Codec converter.PayloadCodec
	// Listener is where Run serves; tests pass one on port 0.
	Listener net.Listener

	// OrdersStats reads the orders database's sessions, size and slowest
	// statements, for the monitoring; nil leaves those charts null.
	OrdersStats *postgres.Stats
}

// New returns a gateway over deps.
func New(deps Deps, s Settings) *Server {
	if s.StartTimeout == 0 {
		s.StartTimeout = 3 * time.Second
	}
	if s.CancelTimeout == 0 {
		s.CancelTimeout = 15 * time.Second
	}
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	if deps.Codec == nil {
		deps.Codec, _ = codec.New(nil) // no keys: cannot fail
	}
	srv := &Server{
		status:   shared[systemStatusBody]{ttl: statusTTL, timeout: 4 * time.Second},
		accounts: deps.Accounts, catalog: deps.Catalog, orders: deps.Orders, outbox: deps.Outbox, temporal: deps.Temporal, codec: deps.Codec,
		tokens: deps.Tokens, log: deps.Log.With(zap.String("service", "gateway")), listener: deps.Listener, reg: deps.Registry, now: deps.Now, settings: s,
		cursors: cursors{key: s.CursorKey},
		logins:  ratelimit.NewLogins(deps.Now),
		// Each registration costs a bcrypt hash: 10 at once per address,
		// then one every 10 s.
		registrations: ratelimit.New(10*time.Second, 10, deps.Now),
		metrics:       newHTTPMetrics(deps.Registry),
	}
	srv.monitor = srv.newMonitor(deps)
	srv.products = readcache.New(srv.productPage, readcache.Options{})
	srv.changes = deps.Catalog.Changes(s.CatalogFeed, srv.log)
	registerProductCache(deps.Registry, srv.products)
	if deps.Registry != nil { // a nil *Registry would be a non-nil Registerer
		metrics.Register(deps.Registry, newBacklogCollector(srv))
	}
	return srv
}

// Handler returns the gin engine with every route of API.md: the one that
// Run serves, built on first use.
func (s *Server) Handler() *gin.Engine {
	s.engineOnce.Do(func() { s.engine = s.routes() })
	return s.engine
}

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.ContextWithFallback = true
	// c.ClientIP() is the connection's address unless the connection comes
	// from a configured proxy: otherwise anyone could pick the address that
	// the login limits count by sending X-Forwarded-For.
	if err := r.SetTrustedProxies(s.settings.TrustedProxies); err != nil {
		s.log.Error("bad trusted proxies; trusting none", zap.Error(err))
		_ = r.SetTrustedProxies(nil)
	}
	r.Use(s.requestID, s.securityHeaders, s.cors(), s.recovery, s.observe, s.limitBody)
	r.NoRoute(func(c *gin.Context) { s.fail(c, notFound("no such endpoint")) })

	// The web app: three pages and the files they load (web.go, assets.go).
	r.GET("/", s.page(shopPage))
	r.GET("/admin", s.page(adminPage))
	r.GET("/admin/system", s.page(systemPage))
	files := newAssets(webFiles)
	r.GET("/assets/:file", s.serveAsset(files))
	r.GET("/assets/vendor/:lib/:file", s.serveAsset(files))
	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(metricsHandler(s.reg)))

	// checkStrings refuses bad text in any query, path parameter or
	// Idempotency-Key of the API, before a handler can pass it on.
	api := r.Group("/api/v1", s.checkStrings)
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
	api.GET("/products/:sku/movements", s.authenticated, s.admin, s.listMovements)

	api.POST("/orders", s.authenticated, s.customer, s.createOrder)
	api.GET("/orders", s.authenticated, s.listOrders)
	api.GET("/orders/:id", s.authenticated, s.getOrder)
	api.GET("/orders/:id/events", s.authenticated, s.orderEvents)
	api.POST("/orders/:id/cancel", s.authenticated, s.cancelOrder)

	api.GET("/system/status", s.authenticated, s.admin, s.systemStatus)
	api.GET("/system/metrics", s.authenticated, s.admin, s.systemMetrics)
	s.codecRoutes(api) // POST /codec/encode and /codec/decode (codec.go)
	return r
}
