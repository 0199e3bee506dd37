package localstack_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/ordersaga/ordersaga/internal/config"
	"github.com/ordersaga/ordersaga/internal/localstack"
	"github.com/ordersaga/ordersaga/internal/testkit"
)

// TestBannerHidesTheDatabasePassword runs `ordersaga dev` against servers
// named by the environment, with a DATABASE_URL that holds a password: the
// banner shows the database without it, and says that payloads are
// encrypted without showing a key.
func TestBannerHidesTheDatabasePassword(t *testing.T) {
	const password = "Hunter2-banner-password"
	// The test server trusts local connections, so any password connects.
	u, err := url.Parse(testkit.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	addr, ns := testkit.NewNamespace(t)
	cfg, err := config.LoadFrom(map[string]string{
		"ORDERSAGA_DATA_DIR":  t.TempDir(),
		"DATABASE_URL":        u.String(),
		"KAFKA_BROKERS":       strings.Join(testkit.KafkaBrokers(t), ","),
		"TEMPORAL_ADDRESS":    addr,
		"TEMPORAL_NAMESPACE":  ns,
		"TEMPORAL_CODEC_KEYS": testkit.CodecKeys,
		"METRICS_ADDR":        fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	})
	if err != nil {
		t.Fatal(err)
	}
	banner := runUntilBanner(t, cfg, func(string) {})
	if strings.Contains(banner, password) {
		t.Errorf("the banner shows the database password:\n%s", banner)
	}
	if dsn := field(t, banner, "PostgreSQL"); !strings.Contains(dsn, "postgres:xxxxx@") {
		t.Errorf("PostgreSQL line %q, want the URL with the password redacted", dsn)
	}
	for _, entry := range strings.Split(testkit.CodecKeys, ",") {
		_, key, _ := strings.Cut(entry, ":")
		if strings.Contains(banner, key) {
			t.Errorf("the banner shows a codec key:\n%s", banner)
		}
	}
	if !strings.Contains(banner, "encrypted with key test-2") {
		t.Errorf("the banner does not say that payloads are encrypted:\n%s", banner)
	}
}

func TestRedactDSN(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://app:s3cret@db:5432/shop?sslmode=require": "postgres://app:xxxxx@db:5432/shop?sslmode=require",
		"postgres://app@db/shop?password=s3cret&sslmode=off": "postgres://app@db/shop?password=xxxxx&sslmode=off",
		"postgres://postgres@127.0.0.1:55432/ordersaga":      "postgres://postgres@127.0.0.1:55432/ordersaga",
		"postgres://app:s3cret@db:bad-port/shop":             "(a DATABASE_URL that does not parse)",
	} {
		if got := localstack.RedactDSN(dsn); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", dsn, got, want)
		}
	}
}
