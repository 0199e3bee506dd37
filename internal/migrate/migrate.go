// Package migrate applies every schema's migrations to the database its
// service is configured with.
package migrate

import (
	"context"

	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/schema"
)

// DSNs maps each schema to the DSN of the service that owns it.
func DSNs(cfg config.Config) map[string]string {
	return map[string]string{
		"auth":     cfg.AuthDatabaseURL,
		"catalog":  cfg.CatalogDatabaseURL,
		"orders":   cfg.OrdersDatabaseURL,
		"payments": cfg.PaymentsDatabaseURL,
	}
}

// Run migrates the auth, catalog, orders and payments schemas, each on its
// own DSN. It is the body of `ordersaga migrate`.
func Run(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	if err := cfg.Require("AUTH_DATABASE_URL", "CATALOG_DATABASE_URL", "ORDERS_DATABASE_URL", "PAYMENTS_DATABASE_URL"); err != nil {
		return err
	}
	dsns := DSNs(cfg)
	for _, name := range schema.Names {
		pool, err := postgres.Open(ctx, dsns[name], 2)
		if err != nil {
			return err
		}
		res, err := schema.Migrate(ctx, pool, name)
		pool.Close()
		if err != nil {
			return err
		}
		log.Info("schema migrated", zap.String("schema", name), zap.Int("applied", res.Applied), zap.Int64("version", res.Version))
	}
	return nil
}
