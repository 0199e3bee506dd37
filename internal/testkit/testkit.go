// Package testkit gives integration tests real servers: a throwaway
// PostgreSQL (initdb in a temporary directory), a Kafka-protocol broker
// (kfake) and the Temporal dev server from the pinned CLI, each on a free
// port. Each is started at most once per test binary, on first use, and
// stopped by Main when the binary's tests are done.
//
// A server that cannot start fails the test with the reason; tests never skip.
package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/codec"
	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/localstack/kafkabroker"
	"github.com/ordersaga/ordersaga/internal/localstack/pgserver"
	"github.com/ordersaga/ordersaga/internal/localstack/ports"
	"github.com/ordersaga/ordersaga/internal/localstack/temporalserver"
	"github.com/ordersaga/ordersaga/internal/logging"
	"github.com/ordersaga/ordersaga/internal/temporalclient"
	"github.com/ordersaga/ordersaga/internal/temporalsetup"
	"github.com/ordersaga/ordersaga/schema"
)

const templateDB = "ordersaga_template"

// lazy starts one server on first use and remembers the outcome.
type lazy[T any] struct {
	once sync.Once
	val  T
	err  error
	stop func()
}

func (l *lazy[T]) get(t testing.TB, start func() (T, func(), error)) T {
	t.Helper()
	l.once.Do(func() { l.val, l.stop, l.err = start() })
	if l.err != nil {
		t.Fatalf("testkit: %v", l.err)
	}
	return l.val
}

var (
	pg       lazy[*pgserver.Server]
	kafka    lazy[*kafkabroker.Broker]
	temporal lazy[*temporalserver.Server]
	dbSeq    atomic.Int64
	nsSeq    atomic.Int64
)

// Main runs the package's tests, then stops every server they started.
// Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	for _, stop := range []func(){temporal.stop, kafka.stop, pg.stop} {
		if stop != nil {
			stop()
		}
	}
	os.Exit(code)
}

func startCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Minute)
}

func postgres(t testing.TB) *pgserver.Server {
	return pg.get(t, func() (*pgserver.Server, func(), error) {
		ctx, cancel := startCtx()
		defer cancel()
		dir, err := os.MkdirTemp("", "ordersaga-pg-")
		if err != nil {
			return nil, nil, err
		}
		port, err := ports.Free()
		if err != nil {
			return nil, nil, err
		}
		s, err := pgserver.Start(ctx, pgserver.Options{DataDir: dir + "/data", Port: port, Database: templateDB, Ephemeral: true})
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		stop := func() { s.Stop(); os.RemoveAll(dir) }
		if err := migrateTemplate(ctx, s.DSN()); err != nil {
			stop()
			return nil, nil, err
		}
		return s, stop, nil
	})
}

func migrateTemplate(ctx context.Context, dsn string) error {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	for _, name := range schema.Names {
		if _, err := schema.Migrate(ctx, pool, name); err != nil {
			return err
		}
	}
	return nil
}

// NewDatabase creates a fresh, fully migrated database for t and drops it
// when t ends. It returns the database's DSN.
func NewDatabase(t testing.TB) string {
	t.Helper()
	s := postgres(t)
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), dbSeq.Add(1))
	admin := s.DSN()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("testkit: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, templateDB)); err != nil {
		t.Fatalf("testkit: create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	cfg, _ := pgx.ParseConfig(admin)
	return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable", cfg.Host, cfg.Port, name)
}

// NewPool is NewDatabase with a pool on it, closed when t ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 32
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("testkit: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// EmptyDatabase creates a database with no schema at all, for migration tests.
func EmptyDatabase(t testing.TB) string {
	t.Helper()
	s := postgres(t)
	name := fmt.Sprintf("empty_%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		t.Fatalf("testkit: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testkit: create database: %v", err)
	}
	cfg, _ := pgx.ParseConfig(s.DSN())
	return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable", cfg.Host, cfg.Port, name)
}

// KafkaBrokers returns the seed addresses of the binary's broker.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	b := kafka.get(t, func() (*kafkabroker.Broker, func(), error) {
		ctx, cancel := startCtx()
		defer cancel()
		b, err := kafkabroker.Start(ctx, kafkabroker.Options{})
		if err != nil {
			return nil, nil, err
		}
		return b, b.Stop, nil
	})
	return b.Addrs()
}

// TemporalAddress returns the frontend address of the binary's Temporal dev server.
func TemporalAddress(t testing.TB) string {
	t.Helper()
	s := temporal.get(t, func() (*temporalserver.Server, func(), error) {
		ctx, cancel := startCtx()
		defer cancel()
		logFile := os.TempDir() + fmt.Sprintf("/ordersaga-temporal-%d.log", os.Getpid())
		s, err := temporalserver.Start(ctx, temporalserver.Options{LogFile: logFile})
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Stop(); os.Remove(logFile) }, nil
	})
	return s.Addr()
}

// NewNamespace registers a fresh Temporal namespace with ordersaga's search
// attributes, so that a test's task queues and workflows see no other
// test's. It returns the server address and the namespace.
func NewNamespace(t testing.TB) (addr, namespace string) {
	t.Helper()
	addr = TemporalAddress(t)
	namespace = fmt.Sprintf("test-%d-%d", os.Getpid(), nsSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: addr, Namespace: namespace})
	if err != nil {
		t.Fatalf("testkit: dial temporal: %v", err)
	}
	defer c.Close()
	if err := temporalsetup.EnsureNamespace(ctx, c, namespace); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	// A new namespace reaches the frontend's cache within seconds; wait for it.
	for {
		err := temporalsetup.EnsureSearchAttributes(ctx, c, namespace)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testkit: namespace %s not usable: %v", namespace, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return addr, namespace
}

// Logger is the logger for tests' Temporal clients and workers: warnings
// and errors only, so that a failing test's output is readable.
func Logger() *zap.Logger {
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	cfg.DisableStacktrace = true
	l, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return l
}

// CodecKeys is the TEMPORAL_CODEC_KEYS of every test's Temporal clients,
// so that the tests run with payload encryption on, as production does:
// "test-2" encrypts, and "test-1" is an older key still listed. The keys
// are fixed so that a history a test recorded can be decoded later; they
// protect nothing.
const CodecKeys = "test-2:9fmHlN2mmQe9rG52kO4j+1DsAwcmRCk3c6CnkOFFGLI=,test-1:6YmELiGPyu7FHre43xF6uaPhvFDODF7qe3hQ31DACAk="

// Config is the configuration of the test Temporal clients: addr,
// namespace and CodecKeys.
func Config(addr, namespace string) config.Config {
	cfg, err := config.LoadFrom(map[string]string{"TEMPORAL_ADDRESS": addr, "TEMPORAL_NAMESPACE": namespace, "TEMPORAL_CODEC_KEYS": CodecKeys})
	if err != nil {
		panic("testkit: " + err.Error()) // constants of this package
	}
	return cfg
}

// ClientOptions are the options of TemporalClient: the codec of CodecKeys
// and a quiet logger. A test that builds its own client (a lazy one, say)
// starts from these.
func ClientOptions(addr, namespace string) client.Options {
	opts, _, err := temporalclient.Options(Config(addr, namespace), Logger(), nil)
	if err != nil {
		panic("testkit: " + err.Error())
	}
	return opts
}

// Codec is the payload codec of CodecKeys, for the gateway's codec
// endpoint and for tests that decode payloads themselves.
func Codec() *codec.Codec {
	c, err := temporalclient.Codec(Config("", "default"))
	if err != nil {
		panic("testkit: " + err.Error())
	}
	return c
}

// TemporalClient dials the namespace of NewNamespace with ClientOptions
// (payloads encrypted with CodecKeys) and closes the client when t ends.
func TemporalClient(t testing.TB, addr, namespace string) client.Client {
	t.Helper()
	return Dial(t, ClientOptions(addr, namespace))
}

// PlainTemporalClient is TemporalClient without the payload codec: it
// reads histories as the Temporal server stores them (to check that they
// are encrypted), and it records histories in clear (the golden histories,
// which replay without keys).
func PlainTemporalClient(t testing.TB, addr, namespace string) client.Client {
	t.Helper()
	return Dial(t, PlainClientOptions(addr, namespace))
}

// PlainClientOptions are the options of PlainTemporalClient: no codec, and
// worker heartbeats as every ordersaga client sends them.
func PlainClientOptions(addr, namespace string) client.Options {
	return client.Options{HostPort: addr, Namespace: namespace, Logger: logging.Temporal(Logger()),
		WorkerHeartbeatInterval: temporalclient.WorkerHeartbeatInterval}
}

// Dial dials with opts and closes the client when t ends.
func Dial(t testing.TB, opts client.Options) client.Client {
	t.Helper()
	c, err := client.Dial(opts)
	if err != nil {
		t.Fatalf("testkit: dial temporal: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// WaitFor polls cond until it holds, and fails the test naming what it
// waited for if it does not within the given time.
func WaitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Exchange sends a request with body as JSON (none when nil) and the given
// headers (name, value pairs) through hc, and returns what came back. It
// fails the test when the request cannot be made or sent.
func Exchange(t testing.TB, hc *http.Client, method, url string, body any, headers ...string) (status int, header http.Header, respBody []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, b
}
