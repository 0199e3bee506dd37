// Package postgres opens the pgx pools the services use.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersaga/ordersaga/internal/retry"
)

// Open returns a pool on dsn with at most maxConns connections, once the
// server answers. It retries until ctx is done, so a service that starts
// before its database waits instead of crashing.
func Open(ctx context.Context, dsn string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parser's message can echo the password; say only what is wrong.
		return nil, errors.New("postgres: cannot parse the DSN")
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := WaitReady(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// WaitReady pings pool until it answers or ctx ends.
func WaitReady(ctx context.Context, pool *pgxpool.Pool) error {
	err := retry.Do(ctx, 50*time.Millisecond, time.Second, func(ctx context.Context) error {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return pool.Ping(pctx)
	}, nil)
	if err != nil {
		return fmt.Errorf("postgres %s:%d did not answer: %w", pool.Config().ConnConfig.Host, pool.Config().ConnConfig.Port, err)
	}
	return nil
}

// Pools opens one pool per distinct DSN, so that services whose schemas
// share a database share its connections.
type Pools struct {
	maxConns int32
	pools    map[string]*pgxpool.Pool
}

// NewPools returns an empty set of pools of at most maxConns connections each.
func NewPools(maxConns int32) *Pools {
	return &Pools{maxConns: maxConns, pools: map[string]*pgxpool.Pool{}}
}

// Open returns the pool on dsn, opening it (and waiting for the server) the first time.
func (p *Pools) Open(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	if pool, ok := p.pools[dsn]; ok {
		return pool, nil
	}
	pool, err := Open(ctx, dsn, p.maxConns)
	if err != nil {
		return nil, err
	}
	p.pools[dsn] = pool
	return pool, nil
}

// Close closes every pool.
func (p *Pools) Close() {
	for _, pool := range p.pools {
		pool.Close()
	}
}
