package gateway

import (
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/apperr"
	"github.com/ordersaga/ordersaga/internal/authn"
	"github.com/ordersaga/ordersaga/internal/metrics"
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
	if claimsOf(c).Role != "admin" {
		s.fail(c, apperr.New(apperr.Forbidden, "this needs an admin"))
		return
	}
	c.Next()
}

func (s *Server) customer(c *gin.Context) {
	if claimsOf(c).Role != "customer" {
		s.fail(c, apperr.New(apperr.Forbidden, "only customers place orders"))
		return
	}
	c.Next()
}

// httpMetrics are the gateway's request metrics.
type httpMetrics struct {
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	m := &httpMetrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ordersaga_http_request_duration_seconds",
		Help:    "Gateway request latency by route and status.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"method", "route", "status"})}
	if reg != nil { // a nil *Registry would be a non-nil Registerer
		metrics.Register(reg, m.duration)
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

func metricsHandler(reg *prometheus.Registry) http.Handler {
	if reg == nil {
		return promhttp.Handler()
	}
	return metrics.Handler(reg)
}
