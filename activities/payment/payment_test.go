package payment_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/internal/testenv"
	"github.com/ordersaga/ordersaga/workflows/order"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// countingProvider counts what reached the provider.
type countingProvider struct {
	payment.Provider
	authorizes, captures, voids atomic.Int64
}

func (c *countingProvider) Authorize(ctx context.Context, r payment.AuthorizeRequest) (string, error) {
	c.authorizes.Add(1)
	return c.Provider.Authorize(ctx, r)
}
func (c *countingProvider) Capture(ctx context.Context, id string, amt int64) error {
	c.captures.Add(1)
	return c.Provider.Capture(ctx, id, amt)
}
func (c *countingProvider) Void(ctx context.Context, id string) error {
	c.voids.Add(1)
	return c.Provider.Void(ctx, id)
}

type fixture struct {
	pool *pgxpool.Pool
	acts *payment.Activities
	prov *countingProvider
	logs *observer.ObservedLogs
}

func setup(t *testing.T) *fixture {
	t.Helper()
	sim := payment.NewSimulator()
	sim.SlowDelay = 500 * time.Millisecond
	core, logs := observer.New(zapcore.DebugLevel)
	f := &fixture{pool: testenv.NewPool(t), prov: &countingProvider{Provider: sim}, logs: logs}
	f.acts = payment.New(f.pool, f.prov, zap.New(core))
	t.Cleanup(func() { f.checkNoTokenStored(t) })
	return f
}

func (f *fixture) status(t *testing.T, id string) string {
	t.Helper()
	var s string
	if err := f.pool.QueryRow(context.Background(), `SELECT status FROM payments.payments WHERE order_id = $1`, id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkNoTokenStored: neither a payments row nor a log line holds a payment token.
func (f *fixture) checkNoTokenStored(t *testing.T) {
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM payments.payments p WHERE p::text LIKE '%tok\_%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d payments rows hold a payment token", n)
	}
	for _, e := range f.logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + strings.TrimSpace(strings.ReplaceAll(toString(v), "\n", " "))
		}
		if strings.Contains(line, "tok_") {
			t.Errorf("log line leaks a payment token: %s", line)
		}
		if _, ok := e.ContextMap()["order_id"]; !ok {
			t.Errorf("log line without order_id: %s", line)
		}
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if e, ok := v.(error); ok {
		return e.Error()
	}
	return ""
}

func req(id, token string) order.PaymentRequest {
	return order.PaymentRequest{OrderID: id, PaymentMethod: token, AmountCents: 2599, Currency: "USD"}
}

func errType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		if appErr.NonRetryable() {
			return appErr.Type()
		}
		return "retryable:" + appErr.Type()
	}
	if err != nil {
		return "other:" + err.Error()
	}
	return ""
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		token, authErr, captureErr, finalStatus string
	}{
		{payment.TokenOK, "", "", "CAPTURED"},
		{payment.TokenDeclined, order.ErrPaymentDeclined, "", "DECLINED"},
		{payment.TokenInsufficientFunds, order.ErrInsufficientFunds, "", "DECLINED"},
		{payment.TokenCaptureFails, "", order.ErrCaptureDeclined, "AUTHORIZED"},
		{payment.TokenSlow, "", "", "CAPTURED"},
	} {
		t.Run(tc.token, func(t *testing.T) {
			f := setup(t)
			id := uuid.NewString()
			_, err := f.acts.AuthorizePayment(ctx, req(id, tc.token))
			if errType(err) != tc.authErr {
				t.Fatalf("authorize: got %q (%v), want %q", errType(err), err, tc.authErr)
			}
			if err == nil {
				if got := errType(f.acts.CapturePayment(ctx, req(id, ""))); got != tc.captureErr {
					t.Fatalf("capture: got %q, want %q", got, tc.captureErr)
				}
			}
			if s := f.status(t, id); s != tc.finalStatus {
				t.Errorf("payment is %s, want %s", s, tc.finalStatus)
			}
		})
	}
}

func TestTransientErrorsAreRetryableThenSucceed(t *testing.T) {
	f := setup(t)
	id := uuid.NewString()
	for i := 1; i <= 2; i++ {
		_, err := f.acts.AuthorizePayment(context.Background(), req(id, payment.TokenTransientError))
		if got := errType(err); got != "retryable:ProviderError" {
			t.Fatalf("attempt %d: want a retryable provider error, got %q", i, got)
		}
		if s := f.status(t, id); s != "PENDING" {
			t.Errorf("after a provider error the payment is %s", s)
		}
	}
	if _, err := f.acts.AuthorizePayment(context.Background(), req(id, payment.TokenTransientError)); err != nil {
		t.Fatalf("third attempt: %v", err)
	}
	if s := f.status(t, id); s != "AUTHORIZED" {
		t.Errorf("payment is %s", s)
	}
}

func TestEachActivityTwiceChangesNothingTheSecondTime(t *testing.T) {
	ctx := context.Background()
	f := setup(t)
	id := uuid.NewString()
	a1, err := f.acts.AuthorizePayment(ctx, req(id, payment.TokenOK))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := f.acts.AuthorizePayment(ctx, req(id, payment.TokenOK))
	if err != nil || a2 != a1 {
		t.Fatalf("second authorize: %+v, %v; first %+v", a2, err, a1)
	}
	if f.prov.authorizes.Load() != 1 {
		t.Errorf("provider authorized %d times", f.prov.authorizes.Load())
	}
	for i := 0; i < 2; i++ {
		if err := f.acts.CapturePayment(ctx, req(id, "")); err != nil {
			t.Fatal(err)
		}
	}
	if f.prov.captures.Load() != 1 || f.status(t, id) != "CAPTURED" {
		t.Errorf("captures %d, status %s", f.prov.captures.Load(), f.status(t, id))
	}
	// A captured payment is never voided: that would need a refund.
	if got := errType(f.acts.VoidPayment(ctx, req(id, ""))); got != order.ErrInvalidRequest {
		t.Errorf("void of a captured payment: %q", got)
	}
	if f.status(t, id) != "CAPTURED" {
		t.Error("void changed a captured payment")
	}

	id2 := uuid.NewString()
	if _, err := f.acts.AuthorizePayment(ctx, req(id2, payment.TokenCaptureFails)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := f.acts.VoidPayment(ctx, req(id2, "")); err != nil {
			t.Fatal(err)
		}
	}
	if f.prov.voids.Load() != 1 || f.status(t, id2) != "VOIDED" {
		t.Errorf("voids %d, status %s", f.prov.voids.Load(), f.status(t, id2))
	}
	// A declined payment answers the same decline again without asking the provider.
	id3 := uuid.NewString()
	before := f.prov.authorizes.Load()
	for i := 0; i < 2; i++ {
		if _, err := f.acts.AuthorizePayment(ctx, req(id3, payment.TokenInsufficientFunds)); errType(err) != order.ErrInsufficientFunds {
			t.Fatalf("decline %d: %v", i, err)
		}
	}
	if f.prov.authorizes.Load()-before != 1 {
		t.Errorf("a repeated decline asked the provider again")
	}
}

func TestVoidBeforeAuthorizationRefusesTheLateOne(t *testing.T) {
	ctx := context.Background()
	f := setup(t)
	id := uuid.NewString()
	if err := f.acts.VoidPayment(ctx, req(id, "")); err != nil {
		t.Fatal(err)
	}
	if f.prov.voids.Load() != 0 {
		t.Error("void of a payment never authorized reached the provider")
	}
	_, err := f.acts.AuthorizePayment(ctx, req(id, payment.TokenOK))
	if errType(err) != order.ErrPaymentVoided {
		t.Errorf("late authorize: %v", err)
	}
	if f.prov.authorizes.Load() != 0 || f.status(t, id) != "VOIDED" {
		t.Errorf("late authorize reached the provider (%d) or changed status (%s)", f.prov.authorizes.Load(), f.status(t, id))
	}
}

// TestVoidOvertakesSlowAuthorization is cancel-while-authorizing: the
// void lands while tok_slow is still at the provider; when the provider
// answers, the authorization is voided there too and nothing stays held.
func TestVoidOvertakesSlowAuthorization(t *testing.T) {
	ctx := context.Background()
	f := setup(t)
	id := uuid.NewString()
	done := make(chan error, 1)
	go func() {
		_, err := f.acts.AuthorizePayment(ctx, req(id, payment.TokenSlow))
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for f.prov.authorizes.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := f.acts.VoidPayment(ctx, req(id, "")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; errType(err) != order.ErrPaymentVoided {
		t.Errorf("slow authorize after void: %v", err)
	}
	if f.prov.voids.Load() != 1 {
		t.Errorf("the late authorization was voided at the provider %d times, want 1", f.prov.voids.Load())
	}
	if s := f.status(t, id); s != "VOIDED" {
		t.Errorf("payment is %s", s)
	}
}

func TestUnknownTokenIsADecline(t *testing.T) {
	f := setup(t)
	_, err := f.acts.AuthorizePayment(context.Background(), req(uuid.NewString(), "tok_nope"))
	if errType(err) != order.ErrPaymentDeclined {
		t.Errorf("got %v", err)
	}
}
