package schema_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/schema"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestMigrateTwiceIsANoOp(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testkit.EmptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, name := range schema.Names {
		first, err := schema.Migrate(ctx, pool, name)
		if err != nil {
			t.Fatalf("first migrate %s: %v", name, err)
		}
		if first.Applied == 0 || first.Version == 0 {
			t.Errorf("%s: first run applied nothing: %+v", name, first)
		}
		second, err := schema.Migrate(ctx, pool, name)
		if err != nil {
			t.Fatalf("second migrate %s: %v", name, err)
		}
		if second.Applied != 0 || second.Version != first.Version {
			t.Errorf("%s: second run should change nothing, got %+v after %+v", name, second, first)
		}
	}
	rows, err := pool.Query(ctx, `SELECT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_schema IN ('auth','catalog','orders','payments') AND table_name <> 'goose_db_version'
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"auth.users",
		"catalog.changes", "catalog.products", "catalog.reservation_lines", "catalog.reservations", "catalog.stock", "catalog.stock_movements",
		"orders.idempotency_keys", "orders.order_events", "orders.order_lines", "orders.orders",
		"payments.payments",
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("tables:\n got %v\nwant %v", got, want)
	}
}

func TestStockCheckRefusesOverReservation(t *testing.T) {
	ctx := context.Background()
	pool := testkit.NewPool(t)
	mustExec(t, pool, `INSERT INTO catalog.products (sku, name, brand, price_cents) VALUES ('WATCH-42', 'Watch', 'Acme', 1000)`)
	mustExec(t, pool, `INSERT INTO catalog.stock (sku, warehouse, on_hand, reserved) VALUES ('WATCH-42', 'east', 5, 0)`)

	for _, tc := range []struct {
		name, sql string
	}{
		{"reserved above on_hand", `UPDATE catalog.stock SET reserved = 6 WHERE sku = 'WATCH-42'`},
		{"negative reserved", `UPDATE catalog.stock SET reserved = -1 WHERE sku = 'WATCH-42'`},
		{"on_hand below reserved", `UPDATE catalog.stock SET reserved = 3, on_hand = 2 WHERE sku = 'WATCH-42'`},
	} {
		_, err := pool.Exec(ctx, tc.sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.ConstraintName != "stock_reserved_within_on_hand" {
			t.Errorf("%s: want a stock_reserved_within_on_hand violation, got %v", tc.name, err)
		}
	}
	var onHand, reserved int
	if err := pool.QueryRow(ctx, `SELECT on_hand, reserved FROM catalog.stock WHERE sku = 'WATCH-42'`).Scan(&onHand, &reserved); err != nil {
		t.Fatal(err)
	}
	if onHand != 5 || reserved != 0 {
		t.Errorf("refused updates changed the row: on_hand=%d reserved=%d", onHand, reserved)
	}
	mustExec(t, pool, `UPDATE catalog.stock SET reserved = 5 WHERE sku = 'WATCH-42'`) // exactly full is allowed
}

func TestSkuFormatIsEnforced(t *testing.T) {
	pool := testkit.NewPool(t)
	_, err := pool.Exec(context.Background(), `INSERT INTO catalog.products (sku, name, brand, price_cents) VALUES ('bad sku', 'x', 'y', 1)`)
	if err == nil {
		t.Error("a lower-case sku with a space was accepted")
	}
}

func mustExec(t *testing.T, pool *pgxpool.Pool, sql string) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
