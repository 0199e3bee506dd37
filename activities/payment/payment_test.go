package payment_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// countingProvider counts what reached the provider.
type countingProvider struct {
	payment.Provider
	authorizes, captures, voids atomic.Int64
}

func (c *countingProvider) Authorize(ctx context.Context, r payment.AuthorizeRequest) (string, error) {
	c.authorizes.Add(1)
	return c.Provider.Authorize(ctx, r)
}
func (c *countingProvider) Capture(ctx context.Context, key string, amt int64) error {
	c.captures.Add(1)
	return c.Provider.Capture(ctx, key, amt)
}
func (c *countingProvider) Void(ctx context.Context, key string) error {
	c.voids.Add(1)
	return c.Provider.Void(ctx, key)
}

type fixture struct {
	pool *pgxpool.Pool
	sim  *payment.Simulator
	acts *payment.Activities
	prov *countingProvider
	logs *observer.ObservedLogs
}

func setup(t *testing.T) *fixture {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	f := &fixture{pool: testkit.NewPool(t), logs: logs}
	f.sim = payment.NewSimulator(f.pool)
	f.sim.SlowDelay = 500 * time.Millisecond
	f.prov = &countingProvider{Provider: f.sim}
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

// checkNoTokenStored: neither a payments row, nor the provider's ledger,
// nor a log line holds a payment token.
func (f *fixture) checkNoTokenStored(t *testing.T) {
	for _, table := range []string{"payments.payments", "paysim.holds", "paysim.operations"} {
		var n int
		if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table+` p WHERE p::text LIKE '%tok\_%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d rows of %s hold a payment token", n, table)
		}
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
			// The provider's own ledger agrees.
			want := providerHold{state: tc.finalStatus}
			switch tc.finalStatus {
			case "DECLINED":
				want = providerHold{}
			case "CAPTURED":
				want.captures, want.capturedCents = 1, 2599
			}
			if h := f.hold(t, id); h != want {
				t.Errorf("provider hold %+v, want %+v", h, want)
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
	if h := f.hold(t, id); h.state == "AUTHORIZED" || h.state == "CAPTURED" {
		t.Errorf("the provider still holds the cancelled order's money: %+v", h)
	}
}

func TestUnknownTokenIsADecline(t *testing.T) {
	f := setup(t)
	_, err := f.acts.AuthorizePayment(context.Background(), req(uuid.NewString(), "tok_nope"))
	if errType(err) != order.ErrPaymentDeclined {
		t.Errorf("got %v", err)
	}
}

// providerHold is a row of the simulator's paysim.holds; state is empty
// when the provider holds nothing for the key.
type providerHold struct {
	state         string
	captures      int
	capturedCents int64
}

func (f *fixture) hold(t *testing.T, key string) providerHold {
	t.Helper()
	var h providerHold
	err := f.pool.QueryRow(context.Background(), `SELECT state, captures, captured_cents FROM paysim.holds WHERE idempotency_key = $1`, key).
		Scan(&h.state, &h.captures, &h.capturedCents)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	return h
}

// diesAfterAuthorizing is a payment worker killed between the provider's
// answer and the UPDATE that records it: the provider holds the money,
// payments.payments stays PENDING with no authorization id.
type diesAfterAuthorizing struct{ payment.Provider }

func (d diesAfterAuthorizing) Authorize(ctx context.Context, r payment.AuthorizeRequest) (string, error) {
	if _, err := d.Provider.Authorize(ctx, r); err != nil {
		return "", err
	}
	return "", errors.New("worker killed before it recorded the authorization")
}

// authorizedButNotRecorded leaves an order authorized at the provider and
// PENDING in payments.payments.
func (f *fixture) authorizedButNotRecorded(t *testing.T, token string) string {
	t.Helper()
	id := uuid.NewString()
	dying := payment.New(f.pool, diesAfterAuthorizing{f.sim}, zap.NewNop())
	if _, err := dying.AuthorizePayment(context.Background(), req(id, token)); err == nil {
		t.Fatal("the dying authorization succeeded")
	}
	if s, h := f.status(t, id), f.hold(t, id); s != "PENDING" || h.state != "AUTHORIZED" {
		t.Fatalf("setup: payment %s, provider hold %+v", s, h)
	}
	return id
}

// TestVoidReachesAHoldWhoseAuthorizationWasNeverRecorded: the worker died
// after the provider authorized; the order is then cancelled. The void
// must let go of the hold at the provider, keyed by the order id.
func TestVoidReachesAHoldWhoseAuthorizationWasNeverRecorded(t *testing.T) {
	ctx := context.Background()
	f := setup(t)
	id := f.authorizedButNotRecorded(t, payment.TokenOK)
	if err := f.acts.VoidPayment(ctx, req(id, "")); err != nil {
		t.Fatal(err)
	}
	if h := f.hold(t, id); h.state != "VOIDED" {
		t.Errorf("provider hold is %+v after the void, want VOIDED", h)
	}
	if s := f.status(t, id); s != "VOIDED" {
		t.Errorf("payment is %s", s)
	}
	// Temporal retries the authorization that died: it must not hold again.
	if _, err := f.acts.AuthorizePayment(ctx, req(id, payment.TokenOK)); errType(err) != order.ErrPaymentVoided {
		t.Errorf("retried authorization after the void: %v", err)
	}
	// Nor may the provider itself hold again for that key.
	var d *payment.DeclineError
	if _, err := f.sim.Authorize(ctx, payment.AuthorizeRequest{IdempotencyKey: id, Token: payment.TokenOK, AmountCents: 2599, Currency: "USD"}); !errors.As(err, &d) || d.Code != payment.DeclineVoided {
		t.Errorf("provider authorize of a voided key: %v", err)
	}
	if h := f.hold(t, id); h.state != "VOIDED" {
		t.Errorf("provider hold is %+v", h)
	}
}

// failingVoids fails the first n voids, as a provider that is down.
type failingVoids struct {
	payment.Provider
	n atomic.Int64
}

func (p *failingVoids) Void(ctx context.Context, key string) error {
	if p.n.Add(-1) >= 0 {
		return payment.ErrProviderUnavailable
	}
	return p.Provider.Void(ctx, key)
}

// TestVoidIsRetriedWhileTheProviderFails: a void whose provider call fails
// is a retryable error that leaves the payment as it was, so that the
// retry reaches the provider; it is never recorded as done.
func TestVoidIsRetriedWhileTheProviderFails(t *testing.T) {
	ctx := context.Background()
	f := setup(t)
	prov := &failingVoids{Provider: f.sim}
	prov.n.Store(2)
	acts := payment.New(f.pool, prov, zap.NewNop())
	for name, id := range map[string]string{
		"recorded":     f.mustAuthorize(t, payment.TokenOK),
		"not recorded": f.authorizedButNotRecorded(t, payment.TokenOK),
	} {
		prov.n.Store(2)
		before := f.status(t, id)
		for i := 1; i <= 2; i++ {
			if got := errType(acts.VoidPayment(ctx, req(id, ""))); got != "retryable:"+payment.ErrProvider {
				t.Fatalf("%s: void %d while the provider fails: got %q, want a retryable provider error", name, i, got)
			}
			if s, h := f.status(t, id), f.hold(t, id); s != before || h.state != "AUTHORIZED" {
				t.Errorf("%s: after a failed void the payment is %s (was %s) and the provider hold %+v", name, s, before, h)
			}
		}
		if err := acts.VoidPayment(ctx, req(id, "")); err != nil {
			t.Fatalf("%s: void once the provider is back: %v", name, err)
		}
		if s, h := f.status(t, id), f.hold(t, id); s != "VOIDED" || h.state != "VOIDED" {
			t.Errorf("%s: payment %s, provider hold %+v, want both VOIDED", name, s, h)
		}
	}
}

func (f *fixture) mustAuthorize(t *testing.T, token string) string {
	t.Helper()
	id := uuid.NewString()
	if _, err := f.acts.AuthorizePayment(context.Background(), req(id, token)); err != nil {
		t.Fatal(err)
	}
	return id
}

// rowChangesDuringCapture changes the payments row while the provider
// captures, as a racing writer (or a manual change) would.
type rowChangesDuringCapture struct {
	payment.Provider
	pool *pgxpool.Pool
	to   string
}

func (p rowChangesDuringCapture) Capture(ctx context.Context, key string, amt int64) error {
	if err := p.Provider.Capture(ctx, key, amt); err != nil {
		return err
	}
	_, err := p.pool.Exec(ctx, `UPDATE payments.payments SET status = $2 WHERE order_id = $1`, key, p.to)
	return err
}

// TestCaptureThatRecordsNothingIsNoticed: the provider captured, but the
// UPDATE to CAPTURED finds no AUTHORIZED row. Another capture recording it
// first is fine; a VOIDED row is money taken for an order the system
// thinks was let go: an error, logged at error level with the order id.
func TestCaptureThatRecordsNothingIsNoticed(t *testing.T) {
	ctx := context.Background()
	f := setup(t)

	id := f.mustAuthorize(t, payment.TokenOK)
	racing := payment.New(f.pool, rowChangesDuringCapture{f.sim, f.pool, "CAPTURED"}, zap.NewNop())
	if err := racing.CapturePayment(ctx, req(id, "")); err != nil {
		t.Errorf("capture recorded first by another attempt: %v", err)
	}

	id = f.mustAuthorize(t, payment.TokenOK)
	core, logs := observer.New(zapcore.DebugLevel)
	broken := payment.New(f.pool, rowChangesDuringCapture{f.sim, f.pool, "VOIDED"}, zap.New(core))
	err := broken.CapturePayment(ctx, req(id, ""))
	if got := errType(err); got != order.ErrInvalidRequest {
		t.Errorf("capture of a payment recorded VOIDED meanwhile: got %q (%v), want a non-retryable %s", got, err, order.ErrInvalidRequest)
	}
	if h := f.hold(t, id); h.state != "CAPTURED" || h.captures != 1 {
		t.Fatalf("setup: provider hold %+v", h)
	}
	var logged bool
	for _, e := range logs.FilterLevelExact(zapcore.ErrorLevel).All() {
		if e.ContextMap()["order_id"] == id {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no error-level log line with the order id; logs: %v", logs.All())
	}
}

// TestVoidOfAPaymentCapturedAtTheProvider: the capture reached the
// provider but its worker died before recording it; a void then learns
// from the provider that the money was taken, records it, and asks for a
// refund instead of claiming the payment voided.
func TestVoidOfAPaymentCapturedAtTheProvider(t *testing.T) {
	ctx := context.Background()
	f := setup(t)
	id := f.mustAuthorize(t, payment.TokenOK)
	if err := f.sim.Capture(ctx, id, 2599); err != nil {
		t.Fatal(err)
	}
	if got := errType(f.acts.VoidPayment(ctx, req(id, ""))); got != order.ErrInvalidRequest {
		t.Errorf("void of a payment captured at the provider: %q", got)
	}
	if s, h := f.status(t, id), f.hold(t, id); s != "CAPTURED" || h.state != "CAPTURED" || h.captures != 1 {
		t.Errorf("payment %s, provider hold %+v; want both CAPTURED once", s, h)
	}
}

// TestVoidWaitsForACaptureInFlight: while a capture call may still take
// effect at the provider, a void is a retryable refusal, not a race.
func TestVoidWaitsForACaptureInFlight(t *testing.T) {
	ctx := context.Background()
	f := setup(t)
	id := f.mustAuthorize(t, payment.TokenOK)
	blocked := &blockingCapture{Provider: f.sim, started: make(chan struct{}), release: make(chan struct{})}
	capturing := payment.New(f.pool, blocked, zap.NewNop())
	done := make(chan error, 1)
	go func() { done <- capturing.CapturePayment(ctx, req(id, "")) }()
	<-blocked.started
	rec, err := payment.Lookup(ctx, f.pool, uuid.MustParse(id))
	if err != nil || rec.Status != "AUTHORIZED" || rec.CaptureInFlightUntil.IsZero() {
		t.Errorf("lookup during the capture: %+v, %v; want AUTHORIZED with a capture in flight", rec, err)
	}
	if got := errType(f.acts.VoidPayment(ctx, req(id, ""))); got != "retryable:"+payment.ErrCaptureInFlight {
		t.Errorf("void during a capture: %q", got)
	}
	close(blocked.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s, h := f.status(t, id), f.hold(t, id); s != "CAPTURED" || h.state != "CAPTURED" {
		t.Errorf("payment %s, provider hold %+v", s, h)
	}
	if rec, err := payment.Lookup(ctx, f.pool, uuid.MustParse(id)); err != nil || !rec.CaptureInFlightUntil.IsZero() {
		t.Errorf("lookup after the capture: %+v, %v", rec, err)
	}
}

type blockingCapture struct {
	payment.Provider
	started, release chan struct{}
}

func (b *blockingCapture) Capture(ctx context.Context, key string, amt int64) error {
	close(b.started)
	<-b.release
	return b.Provider.Capture(ctx, key, amt)
}
