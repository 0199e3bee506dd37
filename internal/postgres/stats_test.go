package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/internal/testkit"
)

// TestStats: the sessions, size and slowest statements of the database,
// with pg_stat_statements created on first use by a user who may.
func TestStats(t *testing.T) {
	ctx := context.Background()
	pool := testkit.NewPool(t)
	stats := postgres.NewStats(pool, testkit.Logger())

	s, err := stats.Sessions(ctx)
	if err != nil || s.Open < 1 || s.Active < 1 || s.Active > s.Open {
		t.Errorf("sessions %+v, %v; want this one at least, active", s, err)
	}
	if n, err := stats.Size(ctx); err != nil || n < 1<<20 {
		t.Errorf("size %d, %v; want a migrated database's megabytes", n, err)
	}

	// The first call creates the extension; then a slow statement shows.
	if _, err := stats.SlowStatements(ctx, 5); err != nil {
		t.Fatalf("slow statements: %v", err)
	}
	if _, err := pool.Exec(ctx, `SELECT pg_sleep(0.2), $1::text`, "secret-value"); err != nil {
		t.Fatal(err)
	}
	// A utility statement keeps its text in pg_stat_statements, password
	// and all; made slow, it would top the list if it were shown.
	role := "stats_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	if _, err := pool.Exec(ctx, `CREATE ROLE `+role+` PASSWORD 'role-secret-42'`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP ROLE IF EXISTS `+role) })
	if _, err := pool.Exec(ctx, `DO $$ BEGIN PERFORM pg_sleep(0.4); END $$`); err != nil {
		t.Fatal(err)
	}
	slow, err := stats.SlowStatements(ctx, 5)
	if err != nil || len(slow) == 0 {
		t.Fatalf("slow statements %v, %v", slow, err)
	}
	if !strings.Contains(slow[0].Query, "pg_sleep") || slow[0].MeanMS < 200 || slow[0].Calls != 1 || slow[0].TotalMS < slow[0].MeanMS {
		t.Errorf("slowest %+v, want the pg_sleep of 200 ms", slow[0])
	}
	for _, st := range slow {
		if strings.Contains(st.Query, "secret-value") || strings.Contains(st.Query, "role-secret") || strings.Contains(st.Query, "pg_stat_statements") ||
			strings.HasPrefix(st.Query, "DO ") {
			t.Errorf("statement %q", st.Query)
		}
	}
}

// TestStatsWithoutThePrivilegeToCreateTheExtension: a user who may not
// create pg_stat_statements gets ErrNoStatementStats, and the rest works.
func TestStatsWithoutThePrivilegeToCreateTheExtension(t *testing.T) {
	ctx := context.Background()
	dsn := testkit.EmptyDatabase(t)
	admin, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	role := "monitor_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN`, role)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), `DROP ROLE IF EXISTS `+role) })
	pool, err := pgxpool.New(ctx, strings.Replace(dsn, "postgres://postgres@", "postgres://"+role+"@", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	stats := postgres.NewStats(pool, testkit.Logger())

	for range 2 { // the refusal is settled on the first call
		if _, err := stats.SlowStatements(ctx, 5); !errors.Is(err, postgres.ErrNoStatementStats) {
			t.Fatalf("slow statements without the extension: %v, want ErrNoStatementStats", err)
		}
	}
	if n, err := stats.Size(ctx); err != nil || n <= 0 {
		t.Errorf("size %d, %v", n, err)
	}
	if s, err := stats.Sessions(ctx); err != nil || s.Open < 1 {
		t.Errorf("sessions %+v, %v", s, err)
	}
}
