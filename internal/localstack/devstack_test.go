package localstack_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/localstack"
	"github.com/ordersaga/ordersaga/internal/localstack/ports"
	"github.com/ordersaga/ordersaga/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// syncBuffer collects the banner, which Run writes from its own goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func freePort(t *testing.T) int {
	t.Helper()
	p, err := ports.Free()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDevStackRunsAndKeepsData is `make dev` twice on free ports: the
// first run brings up PostgreSQL, the broker and Temporal, migrates, seeds
// and prints the URLs; cancelling stops everything; the second run finds
// the data and creates no second admin.
func TestDevStackRunsAndKeepsData(t *testing.T) {
	testkit.TemporalAddress(t) // builds/locates the CLI once, like the other tests
	dataDir := t.TempDir()
	vars := map[string]string{
		"ORDERSAGA_DATA_DIR":   dataDir,
		"DEV_POSTGRES_PORT":    fmt.Sprint(freePort(t)),
		"DEV_KAFKA_PORT":       fmt.Sprint(freePort(t)),
		"DEV_TEMPORAL_PORT":    fmt.Sprint(freePort(t)),
		"DEV_TEMPORAL_UI_PORT": fmt.Sprint(freePort(t)),
		"METRICS_ADDR":         fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
	cfg, err := config.LoadFrom(vars)
	if err != nil {
		t.Fatal(err)
	}

	first := runUntilBanner(t, cfg, func(banner string) {
		dsn := field(t, banner, "PostgreSQL")
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatalf("psql cannot connect to %s: %v", dsn, err)
		}
		defer conn.Close(context.Background())
		var products, stockRows int
		if err := conn.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM catalog.products), (SELECT count(*) FROM catalog.stock)`).Scan(&products, &stockRows); err != nil {
			t.Fatal(err)
		}
		if products < 24 || stockRows != 2*products {
			t.Errorf("demo catalogue: %d products, %d stock rows", products, stockRows)
		}
		if _, err := conn.Exec(context.Background(), `CREATE TABLE public.marker (x int)`); err != nil {
			t.Fatal(err)
		}

		cl, err := kgo.NewClient(kgo.SeedBrokers(field(t, banner, "Kafka")))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.Ping(context.Background()); err != nil {
			t.Errorf("broker does not answer: %v", err)
		}

		tc, err := client.Dial(client.Options{HostPort: field(t, banner, "Temporal")})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		sa, err := tc.OperatorService().ListSearchAttributes(context.Background(), &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"OrderStatus", "CustomerId", "OrderTotal"} {
			if _, ok := sa.GetCustomAttributes()[name]; !ok {
				t.Errorf("search attribute %s missing", name)
			}
		}
		for _, want := range []string{"Temporal UI", "Metrics"} {
			if !strings.Contains(banner, want) {
				t.Errorf("banner lacks %s:\n%s", want, banner)
			}
		}
	})
	if !strings.Contains(first, "Admin account created: admin@ordersaga.local / ") {
		t.Errorf("first run should print the admin's credentials:\n%s", first)
	}

	// Everything stopped: every port is free again.
	for _, name := range []string{"DEV_POSTGRES_PORT", "DEV_KAFKA_PORT", "DEV_TEMPORAL_PORT", "DEV_TEMPORAL_UI_PORT"} {
		ln, err := net.Listen("tcp", "127.0.0.1:"+vars[name])
		if err != nil {
			t.Errorf("%s still taken after stop: %v", name, err)
			continue
		}
		ln.Close()
	}

	second := runUntilBanner(t, cfg, func(banner string) {
		conn, err := pgx.Connect(context.Background(), field(t, banner, "PostgreSQL"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var marker, admins int
		if err := conn.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM information_schema.tables WHERE table_name = 'marker'),
			(SELECT count(*) FROM auth.users WHERE role = 'admin')`).Scan(&marker, &admins); err != nil {
			t.Fatal(err)
		}
		if marker != 1 || admins != 1 {
			t.Errorf("second run lost data: marker table %d, admins %d", marker, admins)
		}
	})
	if strings.Contains(second, "Admin account created") {
		t.Errorf("second run created another admin:\n%s", second)
	}
}

func TestPortTakenIsAClearError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg, err := config.LoadFrom(map[string]string{
		"ORDERSAGA_DATA_DIR": t.TempDir(),
		"DEV_POSTGRES_PORT":  fmt.Sprint(ln.Addr().(*net.TCPAddr).Port),
	})
	if err != nil {
		t.Fatal(err)
	}
	err = localstack.Run(context.Background(), cfg, zap.NewNop(), &syncBuffer{}, nil)
	if err == nil || !strings.Contains(err.Error(), "already taken") || !strings.Contains(err.Error(), "DEV_POSTGRES_PORT") {
		t.Errorf("want a port-taken error naming DEV_POSTGRES_PORT, got %v", err)
	}
}

func runUntilBanner(t *testing.T, cfg config.Config, check func(banner string)) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- localstack.Run(ctx, cfg, zap.NewNop(), out, func(config.Config, *prometheus.Registry) []localstack.Service { return nil })
	}()
	deadline := time.After(2 * time.Minute)
	for !strings.Contains(out.String(), "ordersaga is running") {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("dev stopped before it was up: %v\n%s", err, out)
		case <-deadline:
			cancel()
			t.Fatalf("dev not up within 2 minutes:\n%s", out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	check(out.String())
	cancel()
	if err := <-done; err != nil {
		t.Errorf("dev returned %v after cancel", err)
	}
	return out.String()
}

// field reads one URL line of the banner.
func field(t *testing.T, banner, name string) string {
	t.Helper()
	for _, line := range strings.Split(banner, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.HasPrefix(strings.TrimSpace(line), name+" ") {
			return f[len(f)-1]
		}
	}
	t.Fatalf("banner has no %s line:\n%s", name, banner)
	return ""
}
