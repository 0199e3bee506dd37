package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/apperr"
	"github.com/ordersaga/ordersaga/internal/postgres"
)

// statusOf is the one place that maps error codes to HTTP statuses.
var statusOf = map[string]int{
	apperr.InvalidJSON:          http.StatusBadRequest,
	apperr.InvalidArgument:      http.StatusBadRequest,
	apperr.Unauthenticated:      http.StatusUnauthorized,
	apperr.Forbidden:            http.StatusForbidden,
	apperr.NotFound:             http.StatusNotFound,
	apperr.Conflict:             http.StatusConflict,
	apperr.PayloadTooLarge:      http.StatusRequestEntityTooLarge,
	apperr.IdempotencyKeyReused: http.StatusUnprocessableEntity,
	apperr.UnknownSKU:           http.StatusUnprocessableEntity,
	apperr.InactiveSKU:          http.StatusUnprocessableEntity,
	apperr.RateLimited:          http.StatusTooManyRequests,
	apperr.Unavailable:          http.StatusServiceUnavailable,
	apperr.Internal:             http.StatusInternalServerError,
}

// statusClientClosed is nginx's code for a request its client abandoned.
const statusClientClosed = 499

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"request_id"`
}

// fail answers err in API.md's error shape. An error that is not an
// *apperr.Error is logged and answered as a bare 500: its text stays here.
func (s *Server) fail(c *gin.Context, err error) {
	if c.Request.Context().Err() != nil && errors.Is(err, context.Canceled) {
		// The client went away; nobody reads an answer, and nothing is down.
		c.AbortWithStatus(statusClientClosed)
		return
	}
	var dep *dependencyError
	if errors.As(err, &dep) {
		s.log.Warn("dependency unavailable", append(requestFields(c), zap.String("dependency", dep.what), zap.Error(dep.cause))...)
		err = unavailable(dep.what)
	}
	e := apperr.As(err)
	if e == nil {
		s.log.Error("request failed", append(requestFields(c), zap.Error(err))...)
		e = apperr.New(apperr.Internal, "internal error; quote the request id when reporting it")
	}
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	c.AbortWithStatusJSON(status, errorBody{Error: errorDetail{Code: e.Code, Message: e.Message, Field: e.Field, RequestID: requestIDOf(c)}})
}

func notFound(msg string) error { return apperr.New(apperr.NotFound, "%s", msg) }

func unavailable(what string) error {
	return apperr.New(apperr.Unavailable, "%s is unavailable; retry (with the same Idempotency-Key for orders)", what)
}

// dependency classifies a store's error: a domain error passes through; an
// error the database answered stays internal (a bug), unless it says the
// database cannot serve now (postgres.Transient: starting up, shutting
// down, in recovery, out of connections, a timeout); that, and any failure
// to get an answer at all, means the dependency is down or slow, which the
// client may retry: 503.
func dependency(err error, what string) error {
	if apperr.As(err) != nil {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && !postgres.Transient(err) {
		return err
	}
	return &dependencyError{what: what, cause: err}
}

// dependencyError is an outage: answered 503, logged with its cause.
type dependencyError struct {
	what  string
	cause error
}

func (e *dependencyError) Error() string { return e.what + ": " + e.cause.Error() }
func (e *dependencyError) Unwrap() error { return e.cause }
