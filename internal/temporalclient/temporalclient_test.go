package temporalclient

import (
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/config"
)

// TestTemporalCloudSettings: an API key turns TLS on and is sent as
// credentials; mTLS certificates are loaded from their paths, and a path
// that does not exist stops startup naming it; with nothing set the
// connection is in clear, as to the dev server.
func TestTemporalCloudSettings(t *testing.T) {
	load := func(vars map[string]string) config.Config {
		t.Helper()
		vars["TEMPORAL_ADDRESS"] = "ns.acct.tmprl.cloud:7233"
		vars["TEMPORAL_NAMESPACE"] = "ns.acct"
		cfg, err := config.LoadFrom(vars)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	opts, _, err := Options(load(map[string]string{}), zap.NewNop(), nil)
	if err != nil || opts.ConnectionOptions.TLS != nil || opts.Credentials != nil {
		t.Fatalf("no settings: TLS %v, credentials %v, %v; want a connection in clear", opts.ConnectionOptions.TLS, opts.Credentials, err)
	}
	if opts.HostPort != "ns.acct.tmprl.cloud:7233" || opts.Namespace != "ns.acct" {
		t.Errorf("address %q, namespace %q", opts.HostPort, opts.Namespace)
	}
	// Requests go without gzip: the payloads are encrypted and would not
	// compress, and gzip was a measurable share of the CPU per order.
	if _, none := opts.ConnectionOptions.GrpcCompression.(*client.GrpcCompressionNone); !none {
		t.Errorf("gRPC compression %T, want none", opts.ConnectionOptions.GrpcCompression)
	}
	// Every client's workers heartbeat often enough for the status to see
	// a stopped one within 15 s, and report the SDK's metrics where asked.
	if opts.WorkerHeartbeatInterval != WorkerHeartbeatInterval || 3*WorkerHeartbeatInterval > 15*time.Second {
		t.Errorf("worker heartbeats every %s", opts.WorkerHeartbeatInterval)
	}
	sdkMetrics := &struct{ client.MetricsHandler }{client.MetricsNopHandler}
	if opts, _, _ := Options(load(map[string]string{}), zap.NewNop(), sdkMetrics); opts.MetricsHandler != sdkMetrics {
		t.Errorf("metrics handler %v, want the one given", opts.MetricsHandler)
	}

	opts, _, err = Options(load(map[string]string{"TEMPORAL_API_KEY": "key-123"}), zap.NewNop(), nil)
	if err != nil || opts.ConnectionOptions.TLS == nil || opts.Credentials == nil {
		t.Fatalf("API key: TLS %v, credentials %v, %v; want TLS on and the key as credentials", opts.ConnectionOptions.TLS, opts.Credentials, err)
	}

	opts, _, err = Options(load(map[string]string{"TEMPORAL_TLS": "true", "TEMPORAL_TLS_SERVER_NAME": "temporal.internal"}), zap.NewNop(), nil)
	if err != nil || opts.ConnectionOptions.TLS == nil || opts.ConnectionOptions.TLS.ServerName != "temporal.internal" {
		t.Fatalf("TLS with a server name: %+v, %v", opts.ConnectionOptions.TLS, err)
	}

	_, _, err = Options(load(map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": "/nonexistent/client.pem", "TEMPORAL_TLS_CLIENT_KEY_PATH": "/nonexistent/client.key"}), zap.NewNop(), nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/client") {
		t.Fatalf("missing certificate files: %v, want an error naming the path", err)
	}

	if _, err := config.LoadFrom(map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": "/etc/client.pem"}); err == nil || !strings.Contains(err.Error(), "TEMPORAL_TLS_CLIENT_CERT_PATH") {
		t.Errorf("a certificate without its key: %v, want a configuration error", err)
	}
}
