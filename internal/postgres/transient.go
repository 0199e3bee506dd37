package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Transient reports whether err says that PostgreSQL could not serve the
// request now but may later: the server was unreachable, the connection
// broke, or the server was starting up, shutting down, in recovery, out of
// resources, or gave up on the statement (timeout, lock timeout, deadlock,
// serialization failure). Retrying the same request later is the remedy,
// and a client should be told "unavailable", not "internal error".
//
// It is false for nil, for context.Canceled (the caller gave up; nothing is
// down), and for every other error the server answered (a constraint, a
// syntax error, a missing table): those are bugs or business outcomes that
// no retry fixes.
//
// This is the one place that answers the question "is this database error
// an outage?"; the gateway (503 or 500) and the starter (warn and retry)
// ask it. Activities need not: Temporal retries every error they return
// that is not a business failure, which is right for an outage and, for a
// defect, ends at the step's or the undo's bound.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	// The server's own answer decides first, even inside a ConnectError: a
	// refused password (28P01) is not an outage, "the database system is
	// starting up" (57P03) is.
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return transientSQLState(pgErr.Code)
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr),
		pgconn.Timeout(err),
		// Failed before anything reached the server (e.g. a closed or busy connection).
		pgconn.SafeToRetry(err),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return true
	}
	return false
}

// transientSQLState reports whether an error the server answered with code
// (SQLSTATE, https://www.postgresql.org/docs/current/errcodes-appendix.html)
// goes away by itself.
func transientSQLState(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"): // connection exception
		return true
	case strings.HasPrefix(code, "53"): // insufficient resources: disk full, out of memory, too many connections
		return true
	case strings.HasPrefix(code, "57"): // operator intervention: query_canceled (statement_timeout), admin/crash shutdown, cannot_connect_now
		return true
	}
	switch code {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"40003", // statement_completion_unknown
		"55P03", // lock_not_available (lock_timeout)
		"58000", // system_error
		"58030", // io_error
		// read_only_sql_transaction: a write reached a standby, as right
		// after a failover while the old primary is being demoted.
		"25006":
		return true
	}
	return false
}
