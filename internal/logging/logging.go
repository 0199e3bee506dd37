// Package logging builds the one *zap.Logger a process uses and bridges it to
// the Temporal SDK, so SDK and application lines share fields and sinks.
package logging

import (
	"log/slog"

	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"go.uber.org/zap/zapcore"
)

// New returns a JSON logger for production, or a colourless console logger
// for the local stack, writing at level and above.
func New(level zapcore.Level, console bool) (*zap.Logger, error) {
	var cfg zap.Config
	if console {
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	} else {
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.TimeKey = "ts"
		cfg.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	}
	cfg.Level = zap.NewAtomicLevelAt(level)
	return cfg.Build()
}

// Temporal adapts l to the SDK's logger interface. The SDK's own key-value
// pairs become zap fields.
func Temporal(l *zap.Logger) log.Logger {
	return log.NewStructuredLogger(slog.New(orderIDHandler{Handler: zapslog.NewHandler(l.Core(), zapslog.WithCaller(false))}))
}
