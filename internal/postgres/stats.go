package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// Stats reads a database's own statistics, for the monitoring: the
// sessions on it, its size and its slowest statements. Build it with
// NewStats.
type Stats struct {
	db  *pgxpool.Pool
	log *zap.Logger

	mu sync.Mutex
	// extension is settled once CREATE EXTENSION pg_stat_statements has
	// succeeded or been refused; a connection error leaves it for the
	// next call.
	extension bool
}

// NewStats returns the statistics of the database behind db.
func NewStats(db *pgxpool.Pool, log *zap.Logger) *Stats {
	if log == nil {
		log = zap.NewNop()
	}
	return &Stats{db: db, log: log}
}

// Sessions are the connections to a database.
type Sessions struct {
	// Open is every session connected to the database; Active those
	// running a statement at that moment.
	Open, Active int64
}

// Sessions counts the sessions connected to the database (pg_stat_activity),
// this one included. Without the pg_read_all_stats role the state of other
// users' sessions is hidden, so Active counts only those of this user.
func (s *Stats) Sessions(ctx context.Context) (Sessions, error) {
	var out Sessions
	err := s.db.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'active')
		FROM pg_stat_activity WHERE datname = current_database()`).Scan(&out.Open, &out.Active)
	if err != nil {
		return Sessions{}, fmt.Errorf("count the database's sessions: %w", err)
	}
	return out, nil
}

// Size returns the database's size on disk in bytes (pg_database_size).
func (s *Stats) Size(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&n); err != nil {
		return 0, fmt.Errorf("measure the database's size: %w", err)
	}
	return n, nil
}

// Statement is one normalised statement of pg_stat_statements: its
// constants are replaced by $1, $2…, so that no value a client sent is in
// Query.
type Statement struct {
	Query   string
	Calls   int64
	MeanMS  float64
	TotalMS float64
}

// ErrNoStatementStats says that pg_stat_statements cannot be read: the
// server does not load it (shared_preload_libraries), or the extension is
// not created in this database and this user may not create it.
var ErrNoStatementStats = errors.New("pg_stat_statements is not available")

// maxQueryLen bounds the text of each statement returned: enough to
// recognise it, short enough for a dashboard.
const maxQueryLen = 300

// SlowStatements returns the n statements on this database with the
// highest mean execution time, from pg_stat_statements (PostgreSQL 13 or
// later). The first call creates the extension where this user may; where
// it may not, it logs why once and goes on, and SlowStatements returns
// ErrNoStatementStats until someone creates it.
func (s *Stats) SlowStatements(ctx context.Context, n int) ([]Statement, error) {
	s.createExtension(ctx)
	rows, err := s.db.Query(ctx, `SELECT left(regexp_replace(query, '\s+', ' ', 'g'), $2), calls, mean_exec_time, total_exec_time
		FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND query NOT LIKE '%pg_stat_statements%'
			-- Only the statements whose constants pg_stat_statements
			-- replaces with $n: utility statements (ALTER ROLE … PASSWORD,
			-- say) are kept verbatim on PostgreSQL 15 and must not reach
			-- a dashboard.
			AND toplevel
			AND query ~* '^\s*(select|insert|update|delete|with)\s'
		ORDER BY mean_exec_time DESC LIMIT $1`, n, maxQueryLen)
	if err != nil {
		if missing(err) {
			return nil, fmt.Errorf("%w: %w", ErrNoStatementStats, err)
		}
		return nil, fmt.Errorf("read the slowest statements: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Statement, error) {
		var st Statement
		err := r.Scan(&st.Query, &st.Calls, &st.MeanMS, &st.TotalMS)
		return st, err
	})
	if err != nil {
		if missing(err) {
			return nil, fmt.Errorf("%w: %w", ErrNoStatementStats, err)
		}
		return nil, fmt.Errorf("read the slowest statements: %w", err)
	}
	return out, nil
}

// createExtension creates pg_stat_statements in this database if it is
// missing, at most until the server has answered once: creating it needs
// a superuser (or the database's owner where an administrator has made
// it trusted), which production's user may well not be. It is optional,
// so a refusal is logged and the monitoring goes on without.
func (s *Stats) createExtension(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.extension {
		return
	}
	_, err := s.db.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		s.extension = true
	case errors.As(err, &pgErr):
		s.extension = true
		s.log.Info("cannot create the extension pg_stat_statements; the monitoring shows no slow statements until an administrator does",
			zap.String("code", pgErr.Code), zap.String("reason", pgErr.Message))
	}
}

// missing reports whether err says that pg_stat_statements is absent:
// the view does not exist (42P01), or the server did not load the library
// (55000, "must be loaded via shared_preload_libraries").
func missing(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "55000")
}
