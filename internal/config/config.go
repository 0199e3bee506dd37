// Package config reads ordersaga's configuration from the environment, once,
// into a typed and validated struct. Nothing else in the project reads the
// environment.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"go.uber.org/zap/zapcore"

	"github.com/ordersaga/ordersaga/internal/codec"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// Config is the whole configuration of every ordersaga service. Each service
// reads the fields it needs; `ordersaga dev` fills in the addresses of the
// servers it starts where the environment left them empty.
type Config struct {
	// DatabaseURL is the default PostgreSQL DSN for every schema.
	DatabaseURL string `env:"DATABASE_URL"`
	// Per-service DSNs let each schema live in its own database.
	AuthDatabaseURL     string `env:"AUTH_DATABASE_URL"`
	CatalogDatabaseURL  string `env:"CATALOG_DATABASE_URL"`
	OrdersDatabaseURL   string `env:"ORDERS_DATABASE_URL"`
	PaymentsDatabaseURL string `env:"PAYMENTS_DATABASE_URL"`
	// DatabaseMaxConns bounds each service's connection pool.
	DatabaseMaxConns int32 `env:"DATABASE_MAX_CONNS" envDefault:"16"`

	KafkaBrokers []string `env:"KAFKA_BROKERS" envSeparator:","`
	KafkaTopic   string   `env:"KAFKA_TOPIC" envDefault:"order-events"`
	// KafkaPartitions is the partition count the topic is created with.
	KafkaPartitions int32 `env:"KAFKA_TOPIC_PARTITIONS" envDefault:"6"`
	// OutboxBatchSize is how many events the relay publishes per round.
	OutboxBatchSize int `env:"OUTBOX_BATCH_SIZE" envDefault:"500"`

	// WSAllowedOrigins lists the Origin headers the hub accepts; empty
	// accepts same-host origins and clients that send none.
	WSAllowedOrigins []string `env:"WS_ALLOWED_ORIGINS" envSeparator:","`
	// WSSendBuffer is how many events may wait for a slow client before it is dropped.
	WSSendBuffer int `env:"WS_SEND_BUFFER" envDefault:"256"`

	TemporalAddress   string `env:"TEMPORAL_ADDRESS"`
	TemporalNamespace string `env:"TEMPORAL_NAMESPACE" envDefault:"default"`
	TemporalUIURL     string `env:"TEMPORAL_UI_URL"`
	// TemporalCodecKeys is the payload codec's keyring: comma-separated
	// id:base64key entries of 32 random bytes each; the first encrypts and
	// every one decrypts (see internal/codec). Empty: payloads are not
	// encrypted.
	TemporalCodecKeys string `env:"TEMPORAL_CODEC_KEYS"`
	// TemporalTLS says how to reach a Temporal frontend over TLS (Temporal
	// Cloud, or a self-hosted server with mTLS). The variables are those
	// of the Temporal CLI and SDK environment configuration, so one
	// environment serves `temporal` and ordersaga alike.
	TemporalTLS TemporalTLS

	GatewayAddr string `env:"GATEWAY_ADDR" envDefault:"127.0.0.1:8080"`
	WSAddr      string `env:"WS_ADDR" envDefault:"127.0.0.1:8081"`
	MetricsAddr string `env:"METRICS_ADDR" envDefault:"127.0.0.1:9464"`
	// WSOpsAddr is where the hub serves /metrics and /status: apart from
	// WS_ADDR, which browsers reach, so that neither is public.
	WSOpsAddr string `env:"WS_OPS_ADDR" envDefault:"127.0.0.1:9465"`
	// WSOpsURL is the hub's ops address as the gateway reaches it; empty
	// derives it from WS_OPS_ADDR.
	WSOpsURL string `env:"WS_OPS_URL"`
	// DebugPprof serves Go's profiles at /debug/pprof/ on the private
	// listeners (METRICS_ADDR, WS_OPS_ADDR). Off by default: in compose and
	// Kubernetes those listen on every interface of the network, and a
	// profile shows the program's internals and costs CPU while it runs.
	// `ordersaga dev` serves them on its loopback metrics listener always.
	DebugPprof bool `env:"DEBUG_PPROF" envDefault:"false"`

	// TrustedProxies are the addresses (IPs or CIDRs) of the reverse
	// proxies in front of the gateway, whose X-Forwarded-For it believes;
	// empty believes nobody's, and a client's address is its connection's.
	TrustedProxies []string `env:"TRUSTED_PROXIES" envSeparator:","`
	// CORSAllowedOrigins are the browser origins (scheme://host[:port], or
	// `*`) other than the gateway's own that may call the API; empty allows
	// the same origin only.
	CORSAllowedOrigins []string `env:"CORS_ALLOWED_ORIGINS" envSeparator:","`

	JWTSecret string        `env:"JWT_SECRET"`
	JWTTTL    time.Duration `env:"JWT_TTL" envDefault:"24h"`
	// WSPublicURL is the hub's URL as browsers reach it; empty derives it from WS_ADDR.
	WSPublicURL string        `env:"WS_PUBLIC_URL"`
	LogLevel    zapcore.Level `env:"LOG_LEVEL" envDefault:"info"`

	// StepTimeout bounds each saga step (schedule to close); past it the
	// order is compensated and REJECTED(timeout).
	StepTimeout time.Duration `env:"ORDER_STEP_TIMEOUT" envDefault:"5m"`
	// UndoTimeout bounds how long an undo (release stock, void payment)
	// retries transient errors before the order ends FAILED: an outage
	// shorter than this fails no order.
	UndoTimeout time.Duration `env:"ORDER_UNDO_TIMEOUT" envDefault:"24h"`
	// StarterInterval is how often the order worker looks for accepted
	// orders whose workflow was never started.
	StarterInterval time.Duration `env:"ORDER_STARTER_INTERVAL" envDefault:"5s"`
	// StarterGrace is how old a PENDING order without a workflow must be
	// before the starter takes it over from the gateway.
	StarterGrace time.Duration `env:"ORDER_STARTER_GRACE" envDefault:"10s"`

	Worker Worker

	Dev Dev
}

// TemporalTLS is the transport security of the Temporal connection. With
// none of it set the connection is in clear, as to a local dev server.
type TemporalTLS struct {
	// APIKey authenticates to Temporal Cloud; setting it turns TLS on.
	APIKey string `env:"TEMPORAL_API_KEY"`
	// Enabled turns TLS on with the system's roots (or CACertPath).
	Enabled bool `env:"TEMPORAL_TLS"`
	// CertPath and KeyPath are the client certificate for mTLS.
	CertPath string `env:"TEMPORAL_TLS_CLIENT_CERT_PATH"`
	KeyPath  string `env:"TEMPORAL_TLS_CLIENT_KEY_PATH"`
	// CACertPath overrides the roots the server's certificate is checked against.
	CACertPath string `env:"TEMPORAL_TLS_SERVER_CA_CERT_PATH"`
	// ServerName overrides the name checked in the server's certificate (SNI).
	ServerName string `env:"TEMPORAL_TLS_SERVER_NAME"`
}

// Worker holds the tuning knobs of a Temporal worker. Zero means the SDK's default.
type Worker struct {
	MaxConcurrentActivities    int           `env:"WORKER_MAX_CONCURRENT_ACTIVITIES" envDefault:"0"`
	MaxConcurrentWorkflowTasks int           `env:"WORKER_MAX_CONCURRENT_WORKFLOW_TASKS" envDefault:"0"`
	ActivityPollers            int           `env:"WORKER_ACTIVITY_POLLERS" envDefault:"0"`
	WorkflowPollers            int           `env:"WORKER_WORKFLOW_POLLERS" envDefault:"0"`
	ShutdownTimeout            time.Duration `env:"WORKER_SHUTDOWN_TIMEOUT" envDefault:"30s"`
}

// Dev holds the settings of the local stack that `ordersaga dev` starts.
type Dev struct {
	DataDir        string `env:"ORDERSAGA_DATA_DIR" envDefault:".data"`
	PostgresPort   int    `env:"DEV_POSTGRES_PORT" envDefault:"55432"`
	KafkaPort      int    `env:"DEV_KAFKA_PORT" envDefault:"9092"`
	TemporalPort   int    `env:"DEV_TEMPORAL_PORT" envDefault:"7233"`
	TemporalUIPort int    `env:"DEV_TEMPORAL_UI_PORT" envDefault:"8233"`
	// TemporalCLI is the path of the Temporal CLI; empty means the one the
	// tools module pins, built on first use.
	TemporalCLI string `env:"TEMPORAL_CLI"`
}

// Load reads the configuration from the process environment.
func Load() (Config, error) { return parse(env.Options{}) }

// LoadFrom reads the configuration from the given variables only; tests use it.
func LoadFrom(vars map[string]string) (Config, error) {
	return parse(env.Options{Environment: vars})
}

func parse(opts env.Options) (Config, error) {
	var c Config
	if err := env.ParseWithOptions(&c, opts); err != nil {
		return Config{}, namedError(err)
	}
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c *Config) applyDefaults() {
	for _, dsn := range []*string{&c.AuthDatabaseURL, &c.CatalogDatabaseURL, &c.OrdersDatabaseURL, &c.PaymentsDatabaseURL} {
		if *dsn == "" {
			*dsn = c.DatabaseURL
		}
	}
}

// FillDatabase points every DSN that is still empty at dsn; `dev` calls it
// with the server it started.
func (c *Config) FillDatabase(dsn string) {
	if c.DatabaseURL == "" {
		c.DatabaseURL = dsn
	}
	c.applyDefaults()
}

func (c *Config) validate() error {
	var errs []error
	bad := func(name, why string) { errs = append(errs, fmt.Errorf("%s: %s", name, why)) }
	for name, dsn := range map[string]string{
		"DATABASE_URL": c.DatabaseURL, "AUTH_DATABASE_URL": c.AuthDatabaseURL,
		"CATALOG_DATABASE_URL": c.CatalogDatabaseURL, "ORDERS_DATABASE_URL": c.OrdersDatabaseURL,
		"PAYMENTS_DATABASE_URL": c.PaymentsDatabaseURL,
	} {
		if dsn != "" && !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
			bad(name, "must be a postgres:// URL")
		}
	}
	if c.DatabaseMaxConns < 1 {
		bad("DATABASE_MAX_CONNS", "must be at least 1")
	}
	for _, b := range c.KafkaBrokers {
		if !strings.Contains(b, ":") {
			bad("KAFKA_BROKERS", fmt.Sprintf("%q is not host:port", b))
		}
	}
	if c.KafkaPartitions < 1 {
		bad("KAFKA_TOPIC_PARTITIONS", "must be at least 1")
	}
	if c.OutboxBatchSize < 1 {
		bad("OUTBOX_BATCH_SIZE", "must be at least 1")
	}
	if c.WSSendBuffer < 1 {
		bad("WS_SEND_BUFFER", "must be at least 1")
	}
	if _, _, err := net.SplitHostPort(c.WSOpsAddr); err != nil {
		bad("WS_OPS_ADDR", "must be host:port")
	} else if c.WSOpsAddr == c.WSAddr && !strings.HasSuffix(c.WSOpsAddr, ":0") {
		bad("WS_OPS_ADDR", "must differ from WS_ADDR: /metrics and /status are not for the public port")
	}
	if u, err := url.Parse(c.WSOpsURL); c.WSOpsURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		bad("WS_OPS_URL", "must be an http:// or https:// URL")
	}
	for _, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			bad("TRUSTED_PROXIES", fmt.Sprintf("%q is neither an IP address nor a CIDR", p))
		}
	}
	for _, o := range c.CORSAllowedOrigins {
		if !validOrigin(o) {
			bad("CORS_ALLOWED_ORIGINS", fmt.Sprintf("%q is not an origin like https://shop.example.com (or *)", o))
		}
	}
	if c.KafkaTopic == "" {
		bad("KAFKA_TOPIC", "must not be empty")
	}
	if c.TemporalAddress != "" && !strings.Contains(c.TemporalAddress, ":") {
		bad("TEMPORAL_ADDRESS", "must be host:port")
	}
	if c.TemporalNamespace == "" {
		bad("TEMPORAL_NAMESPACE", "must not be empty")
	}
	if (c.TemporalTLS.CertPath == "") != (c.TemporalTLS.KeyPath == "") {
		bad("TEMPORAL_TLS_CLIENT_CERT_PATH", "and TEMPORAL_TLS_CLIENT_KEY_PATH must be set together")
	}
	if c.StepTimeout < time.Second {
		bad("ORDER_STEP_TIMEOUT", "must be at least 1s")
	}
	if c.UndoTimeout < time.Minute {
		bad("ORDER_UNDO_TIMEOUT", "must be at least 1m")
	}
	if c.StarterInterval <= 0 {
		bad("ORDER_STARTER_INTERVAL", "must be positive")
	}
	if c.StarterGrace < 0 {
		bad("ORDER_STARTER_GRACE", "must not be negative")
	}
	if c.JWTTTL < time.Minute {
		bad("JWT_TTL", "must be at least 1m")
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		bad("JWT_SECRET", "must be at least 32 characters")
	}
	if _, err := codec.ParseKeys(c.TemporalCodecKeys); err != nil {
		bad("TEMPORAL_CODEC_KEYS", err.Error()) // names entries, never keys
	}
	for name, p := range map[string]int{
		"DEV_POSTGRES_PORT": c.Dev.PostgresPort, "DEV_KAFKA_PORT": c.Dev.KafkaPort,
		"DEV_TEMPORAL_PORT": c.Dev.TemporalPort, "DEV_TEMPORAL_UI_PORT": c.Dev.TemporalUIPort,
	} {
		if p < 1 || p > 65535 {
			bad(name, "must be a port number (1-65535)")
		}
	}
	return errors.Join(errs...)
}

// WSURL is the websocket hub's URL for clients.
// OrderTimeouts are the bounds handed to each order's workflow.
func (c *Config) OrderTimeouts() order.Timeouts {
	return order.Timeouts{Step: c.StepTimeout, Undo: c.UndoTimeout}
}

func (c *Config) WSURL() string {
	if c.WSPublicURL != "" {
		return c.WSPublicURL
	}
	return "ws://" + c.WSAddr + "/ws"
}

// HubStatusURL is the hub's /status as the gateway fetches it: WS_OPS_URL,
// or else WS_OPS_ADDR, where a listener on every interface is reached
// through the loopback.
func (c *Config) HubStatusURL() string {
	if c.WSOpsURL != "" {
		return strings.TrimSuffix(c.WSOpsURL, "/") + "/status"
	}
	host, port, err := net.SplitHostPort(c.WSOpsAddr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/status"
}

// validOrigin says whether o is `*` or a browser origin: http or https,
// a host, an optional port, and nothing after it, lower case as browsers
// send it.
func validOrigin(o string) bool {
	if o == "*" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Hostname() != "" &&
		u.User == nil && u.Path == "" && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery && o == strings.ToLower(o)
}

// knownJWTPlaceholders are the JWT secrets that docker-compose.yml and
// deploy/k8s once shipped as defaults: known to anyone who read them.
var knownJWTPlaceholders = []string{
	"change-me-change-me-change-me-change-me",
	"CHANGE-ME-TO-32-OR-MORE-RANDOM-CHARACTERS",
}

// placeholderWords are found in values written by people to be replaced
// or remembered, and (at these lengths) practically never in random ones.
var placeholderWords = []string{"changeme", "change-me", "change_me", "replaceme", "replace-me", "placeholder", "example", "secret", "password",
	// Words of a phrase someone made up for this system: the estimate
	// below overrates such text, and a guesser tries these first.
	// (Long words only: a short one would turn up in random base64.)
	"ordersaga", "signing", "production"}

// MinJWTSecretBits is the least estimated entropy (see SecretBits) of a
// JWT secret outside `ordersaga dev`.
const MinJWTSecretBits = 128

// CheckSecrets refuses a JWT_SECRET that someone could guess: a default
// this repository shipped, a value with a placeholder word in it, or one
// whose estimated entropy is below MinJWTSecretBits. Every command but
// `ordersaga dev` calls it at startup (dev makes its own random secret).
// An empty secret passes here; Require refuses it where it is needed.
func (c *Config) CheckSecrets() error {
	s := c.JWTSecret
	if s == "" {
		return nil
	}
	lower := strings.ToLower(s)
	for _, p := range knownJWTPlaceholders {
		if lower == strings.ToLower(p) {
			return errors.New("JWT_SECRET: is the placeholder that docker-compose.yml or deploy/k8s shipped; set 32 random bytes, e.g. openssl rand -hex 32")
		}
	}
	for _, w := range placeholderWords {
		if strings.Contains(lower, w) {
			return fmt.Errorf("JWT_SECRET: contains %q, so it looks like a placeholder or a phrase; set 32 random bytes, e.g. openssl rand -hex 32", w)
		}
	}
	if bits := SecretBits(s); bits < MinJWTSecretBits {
		return fmt.Errorf("JWT_SECRET: has about %.0f bits of entropy, fewer than %d; set 32 random bytes, e.g. openssl rand -hex 32", bits, MinJWTSecretBits)
	}
	return nil
}

// SecretBits estimates the entropy of s in bits, simply and on the safe
// side for the mistakes people make: its length times the Shannon entropy
// of the frequencies of its bytes (one repeated character: 0; a few
// characters in turn: few bits each), or of the steps between consecutive
// bytes when that is lower (so that runs like abcdef… or 0123… count for
// little). 32 random bytes written as hex or base64 estimate at well over
// 200 bits; 16 random bytes as hex, at about 120, too few.
func SecretBits(s string) float64 {
	if len(s) < 2 {
		return 0
	}
	chars := make(map[byte]int)
	steps := make(map[byte]int)
	for i := 0; i < len(s); i++ {
		chars[s[i]]++
		if i > 0 {
			steps[s[i]-s[i-1]]++
		}
	}
	return float64(len(s)) * min(shannon(chars, len(s)), shannon(steps, len(s)-1))
}

// shannon is the entropy, in bits per symbol, of n symbols with counts.
func shannon(counts map[byte]int, n int) float64 {
	var h float64
	for _, k := range counts {
		p := float64(k) / float64(n)
		h -= p * math.Log2(p)
	}
	return h
}

// Require names the variables that a service cannot run without.
func (c *Config) Require(names ...string) error {
	var errs []error
	for _, n := range names {
		var v string
		switch n {
		case "DATABASE_URL":
			v = c.DatabaseURL
		case "AUTH_DATABASE_URL":
			v = c.AuthDatabaseURL
		case "CATALOG_DATABASE_URL":
			v = c.CatalogDatabaseURL
		case "ORDERS_DATABASE_URL":
			v = c.OrdersDatabaseURL
		case "PAYMENTS_DATABASE_URL":
			v = c.PaymentsDatabaseURL
		case "TEMPORAL_ADDRESS":
			v = c.TemporalAddress
		case "KAFKA_BROKERS":
			v = strings.Join(c.KafkaBrokers, ",")
		case "JWT_SECRET":
			v = c.JWTSecret
		default:
			return fmt.Errorf("config: unknown variable %s", n)
		}
		if v == "" {
			errs = append(errs, fmt.Errorf("%s: must be set", n))
		}
	}
	return errors.Join(errs...)
}

// namedError rewrites the parser's errors, which name Go fields, so that they
// name the environment variable the operator has to fix.
func namedError(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	vars := envNames(reflect.TypeOf(Config{}), map[string]string{})
	var out []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if v, ok := vars[pe.Name]; ok {
				out = append(out, fmt.Errorf("%s: invalid value: %v", v, pe.Err))
				continue
			}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

func envNames(t reflect.Type, into map[string]string) map[string]string {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Tag.Get("env") == "" {
			envNames(f.Type, into)
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" {
			into[f.Name] = name
		}
	}
	return into
}
