package gateway

import "github.com/ordersaga/ordersaga/internal/config"

// SettingsFrom reads the gateway's settings from the configuration, the
// same way for `ordersaga gateway`, `ordersaga dev` and the test harness.
func SettingsFrom(cfg config.Config) Settings {
	return Settings{
		Timeouts: cfg.OrderTimeouts(), CursorKey: CursorKey(cfg.JWTSecret), WSURL: cfg.WSURL(), HubStatusURL: cfg.HubStatusURL(),
		TemporalUIURL: cfg.TemporalUIURL, Namespace: cfg.TemporalNamespace,
		TrustedProxies: cfg.TrustedProxies, CORSOrigins: cfg.CORSAllowedOrigins,
	}
}
