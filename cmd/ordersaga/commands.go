package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/activities/inventory"
	"github.com/ordersaga/ordersaga/activities/orders"
	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/internal/accounts"
	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/localstack"
	"github.com/ordersaga/ordersaga/internal/logging"
	"github.com/ordersaga/ordersaga/internal/migrate"
	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/internal/replay"
	"github.com/ordersaga/ordersaga/internal/temporalclient"
	"github.com/ordersaga/ordersaga/internal/temporalsetup"
	"github.com/ordersaga/ordersaga/workflows/order"
	"github.com/ordersaga/ordersaga/workflows/order/saga"
)

func runDev(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	return localstack.Run(ctx, cfg, log, os.Stdout, func(cfg config.Config, reg *prometheus.Registry) []localstack.Service {
		return services(cfg, log, reg)
	})
}

func runMigrate(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	return migrate.Run(ctx, cfg, log)
}

func runAdminCreate(ctx context.Context, cfg config.Config, log *zap.Logger, email, password, name string) error {
	if email == "" || len(password) < 8 {
		return usageError{"admin create needs --email and a --password of at least 8 characters"}
	}
	if err := cfg.Require("AUTH_DATABASE_URL"); err != nil {
		return err
	}
	pool, err := postgres.Open(ctx, cfg.AuthDatabaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	u, err := accounts.NewStore(pool).Create(ctx, email, name, password, order.RoleAdmin)
	if errors.Is(err, accounts.ErrEmailTaken) {
		return fmt.Errorf("an account with email %s exists already", email)
	}
	if err != nil {
		return err
	}
	log.Info("admin created", zap.String("user_id", u.ID.String()))
	return nil
}

func runTemporalSetup(ctx context.Context, cfg config.Config, log *zap.Logger) error {
	if err := cfg.Require("TEMPORAL_ADDRESS"); err != nil {
		return err
	}
	// A server that is still starting (as in docker compose) is waited for.
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := dialTemporal(dctx, cfg, log, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := temporalsetup.EnsureNamespace(ctx, c, cfg.TemporalNamespace); err != nil {
		return err
	}
	if err := temporalsetup.EnsureSearchAttributes(ctx, c, cfg.TemporalNamespace); err != nil {
		return err
	}
	log.Info("temporal namespace ready", zap.String("namespace", cfg.TemporalNamespace))
	return nil
}

// runReplay replays histories against the current OrderWorkflow and fails
// naming each workflow that no longer replays.
func runReplay(ctx context.Context, cfg config.Config, log *zap.Logger, query string, limit int, paths []string) error {
	// Encrypted histories replay with the keys of TEMPORAL_CODEC_KEYS;
	// histories in clear replay with or without them.
	payloadCodec, err := temporalclient.Codec(cfg)
	if err != nil {
		return err
	}
	var histories []replay.History
	if query != "" {
		if err := cfg.Require("TEMPORAL_ADDRESS"); err != nil {
			return err
		}
		// A tester's command: an unreachable server is an answer, not a wait.
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c, err := dialTemporal(dctx, cfg, log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)), nil)
		if err != nil {
			return err
		}
		defer c.Close()
		if histories, err = replay.Fetch(ctx, c, query, limit); err != nil {
			return err
		}
		if len(histories) == 0 {
			return fmt.Errorf("no workflow matches %q", query)
		}
	} else {
		files, err := replay.Files(paths)
		if err != nil {
			return err
		}
		for _, f := range files {
			h, err := replay.Load(f)
			if err != nil {
				return err
			}
			histories = append(histories, h)
		}
	}
	// The replayer logs each replayed command at info; only problems matter here.
	quiet := logging.Temporal(log.WithOptions(zap.IncreaseLevel(zap.ErrorLevel)))
	return replay.New(saga.OrderWorkflow, quiet, replay.WithDataConverter(payloadCodec.DataConverter())).Report(histories, os.Stdout)
}

func runRepair(ctx context.Context, cfg config.Config, log *zap.Logger, raw string) error {
	id, err := uuid.Parse(raw)
	if err != nil {
		return usageError{"repair needs an order id (a UUID)"}
	}
	if err := cfg.Require("ORDERS_DATABASE_URL", "CATALOG_DATABASE_URL", "PAYMENTS_DATABASE_URL", "TEMPORAL_ADDRESS"); err != nil {
		return err
	}
	pools := postgres.NewPools(2)
	defer pools.Close()
	ordersDB, err := pools.Open(ctx, cfg.OrdersDatabaseURL)
	if err != nil {
		return err
	}
	catalogDB, err := pools.Open(ctx, cfg.CatalogDatabaseURL)
	if err != nil {
		return err
	}
	paymentsDB, err := pools.Open(ctx, cfg.PaymentsDatabaseURL)
	if err != nil {
		return err
	}
	// The codec's client: repair reads the order's workflow and its inputs.
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c, err := dialTemporal(dctx, cfg, log, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	rep, err := orders.Repair(ctx, id, orders.NewStore(ordersDB), payment.NewOperator(paymentsDB, payment.NewProvider(paymentsDB), log), inventory.New(catalogDB, log), c, log)
	if err != nil {
		return fmt.Errorf("repair %s: %w", id, err)
	}
	fmt.Printf("order %s (was %s, workflow %s): stock released, authorization voided", id, rep.Status, rep.Workflow)
	if rep.MarkedFailed {
		fmt.Print(", recorded FAILED(operator_repair)")
	}
	fmt.Println()
	return nil
}
