// Package temporalclient dials the Temporal frontend the way every
// ordersaga service does: with the project's logger, with the payload codec
// of TEMPORAL_CODEC_KEYS (so that workers, the gateway, the starter, replay
// and repair all read and write the same encrypted payloads), waiting for a
// server that is still starting.
package temporalclient

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/codec"
	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/logging"
)

// Codec is the payload codec of cfg's TEMPORAL_CODEC_KEYS; with no keys it
// encrypts nothing and decodes payloads in clear only.
func Codec(cfg config.Config) (*codec.Codec, error) {
	keys, err := codec.ParseKeys(cfg.TemporalCodecKeys)
	if err != nil {
		return nil, fmt.Errorf("TEMPORAL_CODEC_KEYS: %w", err)
	}
	return codec.New(keys)
}

// Options are the client options of every ordersaga client of cfg's
// Temporal: address, namespace, logger, and the data converter with the
// payload codec. The codec is returned too, for the gateway's codec endpoint.
func Options(cfg config.Config, log *zap.Logger) (client.Options, *codec.Codec, error) {
	c, err := Codec(cfg)
	if err != nil {
		return client.Options{}, nil, err
	}
	if c.Encrypting() {
		log.Info("temporal payloads are encrypted", zap.String("key_id", c.KeyID()))
	} else {
		log.Warn("temporal payloads are NOT encrypted: set TEMPORAL_CODEC_KEYS (see docs/operators.md)")
	}
	return client.Options{
		HostPort:      cfg.TemporalAddress,
		Namespace:     cfg.TemporalNamespace,
		Logger:        logging.Temporal(log),
		DataConverter: c.DataConverter(),
	}, c, nil
}

// Connect dials cfg's Temporal with Options, retrying with backoff until
// the server answers or ctx ends.
func Connect(ctx context.Context, cfg config.Config, log *zap.Logger) (client.Client, error) {
	opts, _, err := Options(cfg, log)
	if err != nil {
		return nil, err
	}
	return DialOptions(ctx, opts, log)
}

// Dial connects to addr and namespace, retrying with backoff until the
// server answers or ctx ends. Its client has no payload codec: it is for
// callers that manage namespaces and search attributes only. Anything that
// starts, reads or runs workflows uses Connect.
func Dial(ctx context.Context, addr, namespace string, log *zap.Logger) (client.Client, error) {
	return DialOptions(ctx, client.Options{HostPort: addr, Namespace: namespace, Logger: logging.Temporal(log)}, log)
}

// DialOptions dials with opts, retrying with backoff until the server
// answers or ctx ends.
func DialOptions(ctx context.Context, opts client.Options, log *zap.Logger) (client.Client, error) {
	delay := 200 * time.Millisecond
	for {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := client.DialContext(dctx, opts)
		cancel()
		if err == nil {
			return c, nil
		}
		log.Warn("temporal not reachable yet", zap.String("address", opts.HostPort), zap.Error(err))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dial temporal %s: %w", opts.HostPort, err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// Lazy returns a client of cfg's Temporal with Options that connects on
// first use, so that its owner (the gateway) starts, and keeps serving,
// while Temporal is down. The codec is returned too.
func Lazy(cfg config.Config, log *zap.Logger) (client.Client, *codec.Codec, error) {
	opts, c, err := Options(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	tc, err := client.NewLazyClient(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("temporal client: %w", err)
	}
	return tc, c, nil
}
