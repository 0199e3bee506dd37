// Package schema holds ordersaga's SQL migrations, embedded, and applies them.
//
// Each Postgres schema (auth, catalog, orders, payments) is migrated on its own
// DSN with its own version table, so the schemas can share one database or
// live in four.
package schema

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed auth/*.sql catalog/*.sql orders/*.sql payments/*.sql
var migrations embed.FS

// Names lists the Postgres schemas in the order they are migrated.
var Names = []string{"auth", "catalog", "orders", "payments"}

// Result says how many migrations of one schema were applied.
type Result struct {
	Schema  string
	Applied int
	Version int64
}

// Migrate applies the pending migrations of schemaName to the database behind
// pool. It is safe to run concurrently from several processes (a session
// advisory lock serialises them) and a no-op when nothing is pending.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schemaName string) (Result, error) {
	sub, err := fs.Sub(migrations, schemaName)
	if err != nil {
		return Result{}, fmt.Errorf("migrate %s: %w", schemaName, err)
	}
	if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteIdent(schemaName)); err != nil {
		return Result{}, fmt.Errorf("migrate %s: create schema: %w", schemaName, err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID(schemaName)))
	if err != nil {
		return Result{}, fmt.Errorf("migrate %s: %w", schemaName, err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithTableName(schemaName+".goose_db_version"),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return Result{}, fmt.Errorf("migrate %s: %w", schemaName, err)
	}
	applied, err := p.Up(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("migrate %s: %w", schemaName, err)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("migrate %s: read version: %w", schemaName, err)
	}
	return Result{Schema: schemaName, Applied: len(applied), Version: v}, nil
}

// lockID gives each schema its own advisory lock, so migrations of different
// schemas in one database do not wait for each other.
func lockID(schemaName string) int64 {
	var h int64 = 0x6f72646572 // "order"
	for _, c := range schemaName {
		h = h*31 + int64(c)
	}
	return h
}

func quoteIdent(s string) string { return `"` + s + `"` }
