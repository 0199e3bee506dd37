package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestTransientSQLStates(t *testing.T) {
	for _, tc := range []struct {
		code string
		want bool
	}{
		{"08000", true},  // connection_exception
		{"08006", true},  // connection_failure
		{"08P01", true},  // protocol_violation
		{"53000", true},  // insufficient_resources
		{"53100", true},  // disk_full
		{"53200", true},  // out_of_memory
		{"53300", true},  // too_many_connections
		{"57000", true},  // operator_intervention
		{"57014", true},  // query_canceled: statement_timeout
		{"57P01", true},  // admin_shutdown
		{"57P02", true},  // crash_shutdown
		{"57P03", true},  // cannot_connect_now: starting up, in recovery
		{"57P05", true},  // idle_session_timeout
		{"40001", true},  // serialization_failure
		{"40P01", true},  // deadlock_detected
		{"40003", true},  // statement_completion_unknown
		{"55P03", true},  // lock_not_available
		{"58030", true},  // io_error
		{"25006", true},  // read_only_sql_transaction: a standby
		{"23505", false}, // unique_violation
		{"23503", false}, // foreign_key_violation
		{"23514", false}, // check_violation
		{"22P02", false}, // invalid_text_representation
		{"42P01", false}, // undefined_table
		{"42601", false}, // syntax_error
		{"28P01", false}, // invalid_password
		{"3D000", false}, // invalid_catalog_name
		{"40002", false}, // transaction_integrity_constraint_violation
		{"XX000", false}, // internal_error
		{"P0001", false}, // raise_exception
	} {
		err := fmt.Errorf("record order: %w", &pgconn.PgError{Severity: "ERROR", Code: tc.code})
		if got := postgres.Transient(err); got != tc.want {
			t.Errorf("SQLSTATE %s: Transient = %v, want %v", tc.code, got, tc.want)
		}
	}
}

// timeoutErr is a net.Error that timed out, as a stalled socket reports.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestTransientOtherErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"socket timeout", timeoutErr{}, true},
		{"unexpected EOF", fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF), true},
		{"conn closed", fmt.Errorf("load orders: %w", pgconn.ErrConnClosed), true},
		{"deadline", fmt.Errorf("load orders: %w", context.DeadlineExceeded), true},
		{"caller cancelled", fmt.Errorf("load orders: %w", context.Canceled), false},
		{"no rows", pgx.ErrNoRows, false},
		{"plain bug", errors.New("scan: cannot assign"), false},
	} {
		if got := postgres.Transient(tc.err); got != tc.want {
			t.Errorf("%s: Transient = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestTransientOnARealServer: what a real server answers. A port nobody
// listens on, a backend terminated by an operator (57P01) and a statement
// timeout (57014) are transient; a constraint violation is not.
func TestTransientOnARealServer(t *testing.T) {
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nobody listens there now
	if conn, err := pgx.Connect(ctx, "postgres://nobody@"+addr+"/none?connect_timeout=2&sslmode=disable"); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a closed port")
	} else if !postgres.Transient(err) {
		t.Errorf("connection refused is not transient: %v", err)
	}

	dsn := testkit.EmptyDatabase(t)
	connect := func() *pgx.Conn {
		t.Helper()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	victim, operator := connect(), connect()
	var pid int
	if err := victim.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := operator.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	_, err = victim.Exec(ctx, `SELECT 1`)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57P01" || !postgres.Transient(err) {
		t.Errorf("a terminated backend: %v, transient %v", err, postgres.Transient(err))
	}
	if _, err := victim.Exec(ctx, `SELECT 1`); !postgres.Transient(err) {
		t.Errorf("the closed connection after it is not transient: %v", err)
	}

	_, err = operator.Exec(ctx, `SET statement_timeout = '50ms'; SELECT pg_sleep(1)`)
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" || !postgres.Transient(err) {
		t.Errorf("statement timeout: %v, transient %v", err, postgres.Transient(err))
	}
	_, err = operator.Exec(ctx, `RESET statement_timeout; CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (1)`)
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" || postgres.Transient(err) {
		t.Errorf("unique violation: %v, transient %v", err, postgres.Transient(err))
	}
}
