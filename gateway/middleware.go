package gateway

import (
	"net/http"
	"net/url"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/apperr"
	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/metrics"
	"github.com/ordersaga/ordersaga/workflows/order"
)

const (
	requestIDHeader = "X-Request-ID"
	maxBody         = 1 << 20
	keyRequestID    = "request_id"
	keyClaims       = "claims"
)

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestID echoes a sane X-Request-ID or makes one, on every response.
func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader(requestIDHeader)
	if !requestIDPattern.MatchString(id) {
		id = uuid.NewString()
	}
	c.Set(keyRequestID, id)
	c.Header(requestIDHeader, id)
	c.Next()
}

func requestIDOf(c *gin.Context) string { return c.GetString(keyRequestID) }

func requestFields(c *gin.Context) []zap.Field {
	f := []zap.Field{zap.String("request_id", requestIDOf(c)), zap.String("method", c.Request.Method), zap.String("route", c.FullPath())}
	if id := c.Param("id"); id != "" { // the order routes
		f = append(f, zap.String("order_id", id))
	}
	return f
}

// recovery turns a panic into a 500 with the request id and a log line;
// the stack goes to the log, never to the client.
func (s *Server) recovery(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.log.Error("panic in handler", append(requestFields(c), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))...)
			s.fail(c, apperr.New(apperr.Internal, "internal error; quote the request id when reporting it"))
		}
	}()
	c.Next()
}

// limitBody refuses bodies over 1 MiB: at once when Content-Length says
// so, else when reading passes the limit (see decode).
func (s *Server) limitBody(c *gin.Context) {
	if c.Request.ContentLength > maxBody {
		s.fail(c, apperr.New(apperr.PayloadTooLarge, "request bodies are limited to 1 MiB"))
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBody)
	c.Next()
}

// authenticated requires a valid bearer token and keeps its claims.
func (s *Server) authenticated(c *gin.Context) {
	h := c.GetHeader("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || h[:len(prefix)] != prefix {
		s.fail(c, apperr.New(apperr.Unauthenticated, "sign in and send the token as Authorization: Bearer TOKEN"))
		return
	}
	claims, err := s.tokens.Verify(h[len(prefix):])
	if err != nil {
		s.fail(c, apperr.New(apperr.Unauthenticated, "the token is invalid or expired; sign in again"))
		return
	}
	c.Set(keyClaims, claims)
	c.Next()
}

func claimsOf(c *gin.Context) authn.Claims {
	v, _ := c.Get(keyClaims)
	cl, _ := v.(authn.Claims)
	return cl
}

func (s *Server) admin(c *gin.Context) {
	if claimsOf(c).Role != order.RoleAdmin {
		s.fail(c, apperr.New(apperr.Forbidden, "this needs an admin"))
		return
	}
	c.Next()
}

func (s *Server) customer(c *gin.Context) {
	if claimsOf(c).Role != order.RoleCustomer {
		s.fail(c, apperr.New(apperr.Forbidden, "only customers place orders"))
		return
	}
	c.Next()
}

// httpMetrics are the gateway's request metrics.
type httpMetrics struct {
	duration *prometheus.HistogramVec
	// limited counts the requests a rate limit refused, by limit, so that
	// operators see guessing (or a limit too tight for real users).
	limited *prometheus.CounterVec
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	m := &httpMetrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ordersaga_http_request_duration_seconds",
		Help:    "Gateway request latency by route and status.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"method", "route", "status"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ordersaga_gateway_rate_limited_total",
			Help: "Requests the gateway refused with 429, by the limit that refused them.",
		}, []string{"limit"}),
	}
	if reg != nil { // a nil *Registry would be a non-nil Registerer
		metrics.Register(reg, m.duration, m.limited)
	}
	return m
}

// observe records each request's latency, and logs server errors.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	s.metrics.duration.WithLabelValues(c.Request.Method, route, strconv.Itoa(status)).Observe(time.Since(start).Seconds())
	if status >= 500 {
		s.log.Warn("server error", append(requestFields(c), zap.Int("status", status), zap.Duration("took", time.Since(start)))...)
	}
}

// securityHeaders sets the headers every response carries. The default
// Content-Security-Policy suits JSON and text, which load nothing; web
// pages replace it with their own (see web.go). nosniff keeps browsers
// from reading a JSON body that echoes client text as HTML or script.
func (s *Server) securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY") // frame-ancestors for browsers without CSP 2
	c.Next()
}

// cors lets the configured other origins call the API from a browser
// (gin-contrib/cors answers their preflights and adds the headers). A
// request from any other origin passes through untouched, with no
// Access-Control-Allow-Origin, so the browser keeps its response from the
// calling page: same origin only. It is not refused outright (the
// library's 403), because a proxy that rewrites Host would make the shop
// page's own requests look cross-origin.
//
// The codec endpoints have a policy of their own: the Temporal UI
// (TEMPORAL_UI_URL) calls them from the operator's browser with the codec
// session cookie, so its origin, and only its, may send credentials there.
func (s *Server) cors() gin.HandlerFunc {
	allowed := map[string]bool{}
	for _, o := range s.settings.CORSOrigins {
		allowed[strings.ToLower(o)] = true
	}
	var api gin.HandlerFunc
	if len(allowed) > 0 {
		api = cors.New(cors.Config{
			AllowOrigins: s.settings.CORSOrigins,
			AllowMethods: []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
			AllowHeaders: []string{"Authorization", "Content-Type", "Idempotency-Key", requestIDHeader},
			// Bearer tokens, not cookies: no credentials mode.
			ExposeHeaders: []string{requestIDHeader, "Retry-After"},
			MaxAge:        10 * time.Minute,
		})
	}
	uiOrigin := origin(s.settings.TemporalUIURL)
	var codecUI gin.HandlerFunc
	if uiOrigin != "" {
		codecUI = cors.New(cors.Config{
			AllowOrigins:     []string{uiOrigin},
			AllowMethods:     []string{http.MethodPost},
			AllowHeaders:     []string{"Content-Type", "X-Namespace", "Authorization"},
			AllowCredentials: true,
			ExposeHeaders:    []string{requestIDHeader},
			MaxAge:           10 * time.Minute,
		})
	}
	return func(c *gin.Context) {
		o := strings.ToLower(c.GetHeader("Origin"))
		codec := codecUI != nil && strings.HasPrefix(c.Request.URL.Path, codecPath+"/")
		var handle gin.HandlerFunc
		switch {
		case codec && o == uiOrigin:
			handle = codecUI
		case api != nil && o != "" && (allowed["*"] || allowed[o]):
			handle = api
		}
		if handle != nil {
			handle(c)
			if c.IsAborted() { // an answered preflight
				return
			}
		} else if codec || (api != nil && !allowed["*"]) {
			// The answer depends on Origin: a shared cache must not hand
			// this one, without CORS headers, to an allowed origin.
			c.Writer.Header().Add("Vary", "Origin")
		}
		c.Next()
	}
}

// origin is the scheme://host[:port] of an http(s) URL, in lower case as
// browsers send it in Origin; "" for anything else.
func origin(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	if reg == nil {
		return promhttp.Handler()
	}
	return metrics.Handler(reg)
}
