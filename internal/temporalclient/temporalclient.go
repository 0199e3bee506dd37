// Package temporalclient is the one way ordersaga dials Temporal: every
// service, command and test harness builds its client options here, from
// the configuration (address, namespace, TLS and API key for Temporal
// Cloud, through the SDK's contrib/envconfig), with the project's logger
// and the payload codec of TEMPORAL_CODEC_KEYS, so that workers, the
// gateway, the starter, replay and repair all read and write the same
// encrypted payloads.
package temporalclient

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/codec"
	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/logging"
	"github.com/ordersaga/ordersaga/internal/retry"
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

// WorkerHeartbeatInterval is how often each worker tells the Temporal
// server that it is running (the server's ListWorkers answers from these
// heartbeats). The system status calls a worker down once three in a row
// are missing, so a stopped worker shows within 15 s.
const WorkerHeartbeatInterval = 5 * time.Second

// Options are the client options of every ordersaga client of cfg's
// Temporal: address, namespace, TLS and API key, logger, the data
// converter with the payload codec, worker heartbeats every
// WorkerHeartbeatInterval, and sdkMetrics, through which the SDK reports
// its own metrics (metrics.TemporalSDK; nil reports none). The codec is
// returned too, for the gateway's codec endpoints.
func Options(cfg config.Config, log *zap.Logger, sdkMetrics client.MetricsHandler) (client.Options, *codec.Codec, error) {
	c, err := Codec(cfg)
	if err != nil {
		return client.Options{}, nil, err
	}
	if c.Encrypting() {
		log.Info("temporal payloads are encrypted", zap.String("key_id", c.KeyID()))
	} else {
		log.Warn("temporal payloads are NOT encrypted: set TEMPORAL_CODEC_KEYS (see docs/operators.md)")
	}
	opts, err := connection(cfg)
	if err != nil {
		return client.Options{}, nil, err
	}
	opts.Logger = logging.Temporal(log)
	opts.DataConverter = c.DataConverter()
	opts.MetricsHandler = sdkMetrics
	// Experimental in SDK 1.50: a server without heartbeat support is
	// told nothing and the status falls back to the task queues' pollers.
	opts.WorkerHeartbeatInterval = WorkerHeartbeatInterval
	// No gzip on requests (the SDK's default): payloads are encrypted, so
	// they do not compress, and gzip cost about 6% of the services' CPU
	// per order (issue 13's profile), and as much again on the server,
	// which answers in the compression it was asked in.
	opts.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	return opts, c, nil
}

// connection turns the address, namespace and TEMPORAL_TLS settings into
// client options with envconfig's profile, which knows how Temporal Cloud
// wants an API key and mTLS presented (TLS on with a key, the key as
// bearer credentials, certificates loaded from their paths).
func connection(cfg config.Config) (client.Options, error) {
	t := cfg.TemporalTLS
	profile := envconfig.ClientConfigProfile{Address: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace, APIKey: t.APIKey}
	if t.Enabled || t.CertPath != "" || t.CACertPath != "" || t.ServerName != "" {
		profile.TLS = &envconfig.ClientConfigTLS{
			ClientCertPath: t.CertPath, ClientKeyPath: t.KeyPath, ServerCACertPath: t.CACertPath, ServerName: t.ServerName,
		}
	}
	opts, err := profile.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		// The error names a path or a setting, never the key itself.
		return client.Options{}, fmt.Errorf("temporal connection settings: %w", err)
	}
	return opts, nil
}

// Connect dials with opts, retrying with backoff until the server answers
// or ctx ends: a service that starts before Temporal (as in docker compose)
// waits for it.
func Connect(ctx context.Context, opts client.Options, log *zap.Logger) (client.Client, error) {
	var c client.Client
	err := retry.Do(ctx, 200*time.Millisecond, 5*time.Second, func(ctx context.Context) error {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var err error
		c, err = client.DialContext(dctx, opts)
		return err
	}, func(err error, _ time.Duration) {
		log.Warn("temporal not reachable yet", zap.String("address", opts.HostPort), zap.Error(err))
	})
	if err != nil {
		return nil, fmt.Errorf("dial temporal %s: %w", opts.HostPort, err)
	}
	return c, nil
}

// Lazy returns a client with opts that connects on first use, so that its
// owner (the gateway) starts, and keeps serving, while Temporal is down.
func Lazy(opts client.Options) (client.Client, error) {
	tc, err := client.NewLazyClient(opts)
	if err != nil {
		return nil, fmt.Errorf("temporal client: %w", err)
	}
	return tc, nil
}
