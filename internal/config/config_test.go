package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadDefaults(t *testing.T) {
	c, err := LoadFrom(map[string]string{"DATABASE_URL": "postgres://u@h:5432/db"})
	if err != nil {
		t.Fatal(err)
	}
	if c.OrdersDatabaseURL != "postgres://u@h:5432/db" || c.CatalogDatabaseURL != c.DatabaseURL {
		t.Errorf("per-service DSNs should default to DATABASE_URL, got %+v", c)
	}
	if c.StepTimeout != 5*time.Minute || c.TemporalNamespace != "default" || c.KafkaTopic != "order-events" {
		t.Errorf("unexpected defaults: %+v", c)
	}
}

func TestPerServiceDSNOverrides(t *testing.T) {
	c, err := LoadFrom(map[string]string{
		"DATABASE_URL":        "postgres://a/db",
		"ORDERS_DATABASE_URL": "postgres://b/orders",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.OrdersDatabaseURL != "postgres://b/orders" || c.PaymentsDatabaseURL != "postgres://a/db" {
		t.Errorf("got orders=%s payments=%s", c.OrdersDatabaseURL, c.PaymentsDatabaseURL)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"ORDER_STEP_TIMEOUT", "soon"},
		{"ORDER_STEP_TIMEOUT", "10ms"},
		{"LOG_LEVEL", "loud"},
		{"DATABASE_URL", "mysql://x"},
		{"KAFKA_BROKERS", "nohostport"},
		{"DEV_POSTGRES_PORT", "70000"},
		{"DEV_KAFKA_PORT", "abc"},
		{"JWT_SECRET", "short"},
		{"DATABASE_MAX_CONNS", "0"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			_, err := LoadFrom(map[string]string{tc.name: tc.value})
			if err == nil {
				t.Fatalf("want an error for %s=%q", tc.name, tc.value)
			}
			if !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error %q does not name %s", err, tc.name)
			}
		})
	}
}

func TestRequire(t *testing.T) {
	c, err := LoadFrom(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Require("ORDERS_DATABASE_URL", "TEMPORAL_ADDRESS")
	if err == nil || !strings.Contains(err.Error(), "ORDERS_DATABASE_URL") || !strings.Contains(err.Error(), "TEMPORAL_ADDRESS") {
		t.Errorf("Require should name both missing variables, got %v", err)
	}
}
