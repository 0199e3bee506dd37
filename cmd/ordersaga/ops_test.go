package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/localstack/ports"
	"github.com/ordersaga/ordersaga/internal/metrics"
	"github.com/ordersaga/ordersaga/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// freeAddr is a loopback address with a free port.
func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := ports.Free()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// TestOpsEndpointsAreNotPublic runs `ordersaga ws` as production does
// (runHub, on addresses from the configuration): the
// websocket port answers /ws and the probes, and 404 for /metrics and
// /status, which only the ops address (WS_OPS_ADDR) serves. The gateway
// finds /status from the configuration.
func TestOpsEndpointsAreNotPublic(t *testing.T) {
	cfg, err := config.LoadFrom(map[string]string{
		"ORDERS_DATABASE_URL": testkit.NewDatabase(t),
		"KAFKA_BROKERS":       strings.Join(testkit.KafkaBrokers(t), ","),
		"KAFKA_TOPIC":         "order-events-" + uuid.NewString()[:8],
		"JWT_SECRET":          strings.Repeat("s", 32),
		"WS_ADDR":             freeAddr(t),
		"WS_OPS_ADDR":         freeAddr(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runHub(ctx, cfg, testkit.Logger(), metrics.NewRegistry()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	a := struct{ ws, ops string }{cfg.WSAddr, cfg.WSOpsAddr}
	public, ops := "http://"+a.ws, "http://"+a.ops
	testkit.WaitFor(t, "the hub to listen", 30*time.Second, func() bool {
		resp, err := http.Get(ops + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})

	for _, path := range []string{"/metrics", "/status"} {
		if status, body := get(t, public+path); status != http.StatusNotFound {
			t.Errorf("websocket port %s: %d %.80s", path, status, body)
		}
	}
	if status, _ := get(t, public+"/healthz"); status != http.StatusOK {
		t.Errorf("websocket port /healthz: %d", status)
	}
	if status, body := get(t, public+"/ws"); status != http.StatusUnauthorized {
		t.Errorf("websocket port /ws without a token: %d %s", status, body)
	}

	if status, body := get(t, ops+"/metrics"); status != http.StatusOK || !strings.Contains(body, "ordersaga_ws_connections") {
		t.Errorf("ops /metrics: %d %.200s", status, body)
	}
	if status, _ := get(t, ops+"/healthz"); status != http.StatusOK {
		t.Errorf("ops /healthz: %d", status)
	}
	// Readiness needs the broker; it answers on both ports alike.
	testkit.WaitFor(t, "readiness", 30*time.Second, func() bool {
		s1, _ := get(t, public+"/readyz")
		s2, _ := get(t, ops+"/readyz")
		return s1 == http.StatusOK && s2 == http.StatusOK
	})

	// What the gateway fetches: WS_OPS_ADDR as given, or on every
	// interface (reached through the loopback), or WS_OPS_URL.
	port := a.ops[strings.LastIndex(a.ops, ":")+1:]
	for _, vars := range []map[string]string{
		{"WS_OPS_ADDR": a.ops},
		{"WS_OPS_ADDR": "0.0.0.0:" + port},
		{"WS_OPS_ADDR": "0.0.0.0:1", "WS_OPS_URL": ops + "/"},
	} {
		gw, err := config.LoadFrom(vars)
		if err != nil {
			t.Fatal(err)
		}
		status, body := get(t, gw.HubStatusURL())
		var st struct {
			Connections *int64 `json:"connections"`
			Lag         *int64 `json:"kafka_consumer_lag"`
		}
		if status != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.Connections == nil || st.Lag == nil {
			t.Errorf("%v: GET %s: %d %s", vars, gw.HubStatusURL(), status, body)
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOpsAddressMustBeItsOwn: the configuration refuses to put the ops
// endpoints on the websocket port, and names the variable.
func TestOpsAddressMustBeItsOwn(t *testing.T) {
	for _, vars := range []map[string]string{
		{"WS_ADDR": "0.0.0.0:8081", "WS_OPS_ADDR": "0.0.0.0:8081"},
		{"WS_OPS_ADDR": "nonsense"},
		{"WS_OPS_URL": "ftp://hub:9465"},
	} {
		if _, err := config.LoadFrom(vars); err == nil || !strings.Contains(err.Error(), "WS_OPS_") {
			t.Errorf("%v: %v", vars, err)
		}
	}
}
