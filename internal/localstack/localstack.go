// Package localstack is `ordersaga dev`: it starts PostgreSQL, a Kafka-protocol
// broker and the Temporal dev server on this machine (each unless the
// environment names a running one), migrates, seeds, runs every service in
// this one process, and stops everything on cancellation.
package localstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/ordersaga/ordersaga/internal/accounts"
	"github.com/ordersaga/ordersaga/internal/codec"
	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/localstack/kafkabroker"
	"github.com/ordersaga/ordersaga/internal/localstack/pgserver"
	"github.com/ordersaga/ordersaga/internal/localstack/seed"
	"github.com/ordersaga/ordersaga/internal/localstack/temporalserver"
	"github.com/ordersaga/ordersaga/internal/logging"
	"github.com/ordersaga/ordersaga/internal/metrics"
	"github.com/ordersaga/ordersaga/internal/migrate"
	"github.com/ordersaga/ordersaga/internal/postgres"
	"github.com/ordersaga/ordersaga/internal/serve"
	"github.com/ordersaga/ordersaga/internal/temporalsetup"
)

// AdminEmail is the account the local stack creates for the admin.
const AdminEmail = "admin@ordersaga.local"

// Service is one long-running part of the system that dev runs.
type Service struct {
	Name string
	Run  func(ctx context.Context) error
	// Links are (label, URL) lines for the banner.
	Links [][2]string
}

// Services builds the services to run once the servers are up and cfg
// points at them. The binary's main supplies it, so this package does not
// depend on every service.
type Services func(cfg config.Config, reg *prometheus.Registry) []Service

// Stack is the running local stack.
type Stack struct {
	cfg   config.Config
	log   *zap.Logger
	out   io.Writer
	stops []func()
	urls  [][2]string
}

// Run brings the stack up, runs the services until ctx ends, then stops
// everything it started, in reverse order. out receives the banner.
func Run(ctx context.Context, cfg config.Config, log *zap.Logger, out io.Writer, services Services) error {
	s := &Stack{cfg: cfg, log: log, out: out}
	defer s.stop()
	if err := s.start(ctx); err != nil {
		return err
	}
	reg := metrics.NewRegistry()
	g, gctx := errgroup.WithContext(ctx)
	// One /metrics for every service of this process.
	metricsLn, err := net.Listen("tcp", s.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (set METRICS_ADDR): %w", s.cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(reg))
	mux.HandleFunc("/healthz", serve.Healthz)
	serve.Profiling(mux)
	g.Go(func() error { return serve.Run(gctx, serve.NewServer(mux), metricsLn) })
	s.urls = append(s.urls, [2]string{"Metrics", "http://" + metricsLn.Addr().String() + "/metrics"})
	for _, svc := range services(s.cfg, reg) {
		s.urls = append(s.urls, svc.Links...)
		g.Go(func() error {
			if err := svc.Run(gctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", svc.Name, err)
			}
			return nil
		})
	}
	s.banner()
	return g.Wait()
}

func (s *Stack) start(ctx context.Context) error {
	dataDir, err := filepath.Abs(s.cfg.Dev.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dataDir, err)
	}

	if s.cfg.DatabaseURL == "" {
		s.log.Info("starting PostgreSQL", zap.Int("port", s.cfg.Dev.PostgresPort))
		pg, err := pgserver.Start(ctx, pgserver.Options{
			DataDir: filepath.Join(dataDir, "postgres"), Port: s.cfg.Dev.PostgresPort, Database: "ordersaga", Logger: s.log,
		})
		if err != nil {
			return err
		}
		s.stops = append(s.stops, pg.Stop)
		s.cfg.FillDatabase(pg.DSN())
	}
	s.urls = append(s.urls, [2]string{"PostgreSQL", RedactDSN(s.cfg.DatabaseURL)})

	if len(s.cfg.KafkaBrokers) == 0 {
		s.log.Info("starting the Kafka broker (kfake)", zap.Int("port", s.cfg.Dev.KafkaPort))
		b, err := kafkabroker.Start(ctx, kafkabroker.Options{Port: s.cfg.Dev.KafkaPort, DataDir: filepath.Join(dataDir, "kafka")})
		if err != nil {
			return err
		}
		s.stops = append(s.stops, b.Stop)
		s.cfg.KafkaBrokers = b.Addrs()
	} else if err := kafkabroker.Ping(ctx, s.cfg.KafkaBrokers); err != nil {
		return err
	}
	s.urls = append(s.urls, [2]string{"Kafka", strings.Join(s.cfg.KafkaBrokers, ",")})

	if s.cfg.TemporalAddress == "" {
		s.log.Info("starting the Temporal dev server", zap.Int("port", s.cfg.Dev.TemporalPort))
		ts, err := temporalserver.Start(ctx, temporalserver.Options{
			CLI: s.cfg.Dev.TemporalCLI, DBFile: filepath.Join(dataDir, "temporal.db"),
			Port: s.cfg.Dev.TemporalPort, UIPort: s.cfg.Dev.TemporalUIPort,
			LogFile: filepath.Join(dataDir, "temporal.log"), Logger: s.log,
		})
		if err != nil {
			return err
		}
		s.stops = append(s.stops, ts.Stop)
		s.cfg.TemporalAddress = ts.Addr()
		if s.cfg.TemporalUIURL == "" {
			s.cfg.TemporalUIURL = ts.UIURL()
		}
	}
	s.urls = append(s.urls, [2]string{"Temporal", s.cfg.TemporalAddress})
	if s.cfg.TemporalUIURL != "" {
		s.urls = append(s.urls, [2]string{"Temporal UI", s.cfg.TemporalUIURL})
	}

	if s.cfg.JWTSecret == "" {
		secret, err := devSecret(filepath.Join(dataDir, "jwt-secret"))
		if err != nil {
			return err
		}
		s.cfg.JWTSecret = secret
	}

	s.urls = append(s.urls, s.payloadsLine())

	if err := migrate.Run(ctx, s.cfg, s.log); err != nil {
		return err
	}
	if err := s.setupTemporal(ctx); err != nil {
		return err
	}
	return s.seed(ctx, dataDir)
}

func (s *Stack) setupTemporal(ctx context.Context) error {
	c, err := client.DialContext(ctx, client.Options{
		HostPort: s.cfg.TemporalAddress, Namespace: s.cfg.TemporalNamespace, Logger: logging.Temporal(s.log),
	})
	if err != nil {
		return fmt.Errorf("dial temporal %s: %w", s.cfg.TemporalAddress, err)
	}
	defer c.Close()
	if err := temporalsetup.EnsureNamespace(ctx, c, s.cfg.TemporalNamespace); err != nil {
		return err
	}
	return temporalsetup.EnsureSearchAttributes(ctx, c, s.cfg.TemporalNamespace)
}

func (s *Stack) seed(ctx context.Context, dataDir string) error {
	cat, err := postgres.Open(ctx, s.cfg.CatalogDatabaseURL, 2)
	if err != nil {
		return err
	}
	defer cat.Close()
	n, err := seed.Catalogue(ctx, cat)
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Info("demo catalogue seeded", zap.Int("products", n))
	}
	auth, err := postgres.Open(ctx, s.cfg.AuthDatabaseURL, 2)
	if err != nil {
		return err
	}
	defer auth.Close()
	password, err := accounts.NewStore(auth).EnsureAdmin(ctx, AdminEmail)
	if err != nil {
		return err
	}
	credFile := filepath.Join(dataDir, "admin-credentials.txt")
	if password != "" {
		// Printed once; kept beside the data (mode 0600) so it can be found again.
		fmt.Fprintf(s.out, "\nAdmin account created: %s / %s  (also in %s)\n", AdminEmail, password, credFile)
		if err := os.WriteFile(credFile, []byte(AdminEmail+" "+password+"\n"), 0o600); err != nil {
			return err
		}
	} else {
		s.urls = append(s.urls, [2]string{"Admin", AdminEmail + " (password in " + credFile + ")"})
	}
	return nil
}

// payloadsLine says in the banner whether Temporal payloads are encrypted.
// They are not by default, so that the Temporal UI shows orders without
// more setup; TEMPORAL_CODEC_KEYS alone turns encryption on, and the UI and
// CLI then decode through the gateway's codec endpoint (docs/operators.md).
func (s *Stack) payloadsLine() [2]string {
	keys, _ := codec.ParseKeys(s.cfg.TemporalCodecKeys) // validated by config
	if len(keys) == 0 {
		return [2]string{"Payloads", "in clear (TEMPORAL_CODEC_KEYS=id:$(openssl rand -base64 32) encrypts them)"}
	}
	return [2]string{"Payloads", fmt.Sprintf("encrypted with key %s; codec endpoint (admin token) http://%s/api/v1/codec", keys[0].ID, s.cfg.GatewayAddr)}
}

// RedactDSN hides the password of a PostgreSQL URL, in its user info or in
// a password query parameter, for the banner and logs; a DSN that does not
// parse is hidden whole.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(a DATABASE_URL that does not parse)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

func (s *Stack) banner() {
	fmt.Fprintln(s.out, "\nordersaga is running (Ctrl-C stops everything):")
	for _, u := range s.urls {
		fmt.Fprintf(s.out, "  %-12s %s\n", u[0], u[1])
	}
	fmt.Fprintln(s.out)
}

func (s *Stack) stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
}

// devSecret returns the local stack's JWT secret, made once and kept in
// path (mode 0600), so that tokens survive a restart of `make dev`.
func devSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	secret := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keep the dev JWT secret: %w", err)
	}
	return secret, nil
}
