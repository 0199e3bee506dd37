package faultrun

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ordersaga/ordersaga/internal/localstack/ports"
)

// Namespace is the Temporal namespace of the run: the dev server's own.
const Namespace = "default"

// Addrs are the addresses the services listen on.
type Addrs struct {
	Gateway, Hub string
	// Metrics is each service's METRICS_ADDR.
	Metrics map[string]string
}

// FreeAddrs picks a free port for every listener of the services.
func FreeAddrs() (Addrs, error) {
	a := Addrs{Metrics: map[string]string{}}
	next := func() (string, error) {
		p, err := ports.Free()
		if err != nil {
			return "", fmt.Errorf("find a free port: %w", err)
		}
		return fmt.Sprintf("127.0.0.1:%d", p), nil
	}
	var err error
	if a.Gateway, err = next(); err != nil {
		return a, err
	}
	if a.Hub, err = next(); err != nil {
		return a, err
	}
	for _, s := range []string{svcGateway, svcHub, svcOrder, svcProduct, svcPayment} {
		if a.Metrics[s], err = next(); err != nil {
			return a, err
		}
	}
	return a, nil
}

// Services are the five service processes, each with its readiness URL.
func (a Addrs) Services() []Service {
	metrics := func(name string) []string { return []string{"METRICS_ADDR=" + a.Metrics[name]} }
	return []Service{
		{Name: svcOrder, Args: []string{"worker", "order"}, Env: metrics(svcOrder), Ready: "http://" + a.Metrics[svcOrder] + "/healthz"},
		{Name: svcProduct, Args: []string{"worker", "product"}, Env: metrics(svcProduct), Ready: "http://" + a.Metrics[svcProduct] + "/healthz"},
		{Name: svcPayment, Args: []string{"worker", "payment"}, Env: metrics(svcPayment), Ready: "http://" + a.Metrics[svcPayment] + "/healthz"},
		// The hub's metrics and status are on its ops address.
		{Name: svcHub, Args: []string{"ws"}, Env: append(metrics(svcHub), "WS_OPS_ADDR="+a.Metrics[svcHub]), Ready: "http://" + a.Hub + "/healthz"},
		{Name: svcGateway, Args: []string{"gateway"}, Env: append(metrics(svcGateway), "WS_OPS_URL=http://"+a.Metrics[svcHub]), Ready: "http://" + a.Gateway + "/healthz"},
	}
}

// ServiceEnv is the environment every service gets: the machine's, less
// any ordersaga setting it may hold (a developer's DATABASE_URL must not
// point the run at their own database), plus the run's.
func ServiceEnv(s *Stack, a Addrs, jwtSecret, codecKeys string, stepTimeout time.Duration) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !isSetting(kv) {
			env = append(env, kv)
		}
	}
	return append(env,
		"DATABASE_URL="+s.DSN(),
		"KAFKA_BROKERS="+strings.Join(s.Brokers(), ","),
		"TEMPORAL_ADDRESS="+s.TemporalAddress(),
		"TEMPORAL_NAMESPACE="+Namespace,
		"GATEWAY_ADDR="+a.Gateway,
		"WS_ADDR="+a.Hub,
		"JWT_SECRET="+jwtSecret,
		// Payloads encrypted, as in production: the codec is on the path
		// of every start, update and activity of the run.
		"TEMPORAL_CODEC_KEYS="+codecKeys,
		"LOG_LEVEL=info",
		// Short enough that an order whose step is lost ends within the
		// run, long enough that no fault here makes a step time out.
		"ORDER_STEP_TIMEOUT="+stepTimeout.String(),
		"ORDER_STARTER_INTERVAL=2s",
		"ORDER_STARTER_GRACE=5s",
		"WORKER_SHUTDOWN_TIMEOUT=5s",
	)
}

// settingPrefixes are the prefixes of the variables internal/config reads.
var settingPrefixes = []string{
	"DATABASE_", "AUTH_DATABASE_", "CATALOG_DATABASE_", "ORDERS_DATABASE_", "PAYMENTS_DATABASE_",
	"KAFKA_", "OUTBOX_", "WS_", "TEMPORAL_", "GATEWAY_", "METRICS_", "JWT_", "LOG_LEVEL",
	"ORDER_", "WORKER_", "DEV_", "ORDERSAGA_",
}

func isSetting(kv string) bool {
	for _, p := range settingPrefixes {
		if strings.HasPrefix(kv, p) {
			return true
		}
	}
	return false
}

// waitFor polls cond every interval until it holds, ctx ends or bound passes.
func waitFor(ctx context.Context, bound, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(bound)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(interval):
		}
	}
}
