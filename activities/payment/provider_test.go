package payment_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersaga/ordersaga/activities/payment"
	"github.com/ordersaga/ordersaga/internal/testkit"
)

// ledger reads the simulator's ledger as a fault run's checker does.
type ledger struct {
	pool *pgxpool.Pool
}

func (l ledger) hold(t *testing.T, key string) providerHold {
	t.Helper()
	f := fixture{pool: l.pool}
	return f.hold(t, key)
}

// ops lists the key's operations as "op amount detail", oldest first.
func (l ledger) ops(t *testing.T, key string) []string {
	t.Helper()
	rows, err := l.pool.Query(context.Background(), `SELECT op, amount_cents, detail FROM paysim.operations WHERE idempotency_key = $1 ORDER BY id`, key)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var op, detail string
		var amount int64
		if err := rows.Scan(&op, &amount, &detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.TrimSpace(op+" "+strconv.FormatInt(amount, 10)+" "+detail))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func declineCode(err error) string {
	var d *payment.DeclineError
	if errors.As(err, &d) {
		return d.Code
	}
	if err != nil {
		return "error"
	}
	return ""
}

// TestSimulatorAnswersLikeAProviderWithIdempotencyKeys drives the
// simulator call by call and checks each answer and its ledger.
func TestSimulatorAnswersLikeAProviderWithIdempotencyKeys(t *testing.T) {
	ctx := context.Background()
	pool := testkit.NewPool(t)
	sim := payment.NewSimulator(pool)
	l := ledger{pool}
	authorize := func(key, token string, amount int64) (string, error) {
		return sim.Authorize(ctx, payment.AuthorizeRequest{IdempotencyKey: key, Token: token, AmountCents: amount, Currency: "EUR"})
	}
	type step struct {
		call string // authorize, capture or void
		want string // "" for success, a decline code, or "error"
	}
	for _, tc := range []struct {
		name  string
		token string
		steps []step
		hold  providerHold
		ops   []string
	}{
		{
			name:  "authorize twice holds once, capture twice captures once",
			token: payment.TokenOK,
			steps: []step{{"authorize", ""}, {"authorize", ""}, {"capture", ""}, {"capture", ""}, {"void", payment.DeclineAlreadyCaptured}},
			hold:  providerHold{state: "CAPTURED", captures: 1, capturedCents: 700},
			ops: []string{"authorize 700", "authorize 0 replay: hold is AUTHORIZED", "capture 700", "capture 0 replay: already captured",
				"decline 0 void: already_captured"},
		},
		{
			name:  "a voided key never holds again nor captures",
			token: payment.TokenOK,
			steps: []step{{"authorize", ""}, {"void", ""}, {"void", ""}, {"authorize", payment.DeclineVoided}, {"capture", payment.DeclineVoided}},
			hold:  providerHold{state: "VOIDED"},
			ops: []string{"authorize 700", "void 700", "void 0 replay: already voided", "decline 700 authorize: authorization_voided",
				"decline 700 capture: authorization_voided"},
		},
		{
			name:  "a void before any hold is a logged no-op that binds the key",
			token: payment.TokenOK,
			steps: []step{{"void", ""}, {"authorize", payment.DeclineVoided}},
			ops:   []string{"void 0 no hold", "decline 700 authorize: authorization_voided"},
		},
		{
			name:  "capture without a hold",
			token: payment.TokenOK,
			steps: []step{{"capture", payment.DeclineUnknownAuthorization}},
			ops:   []string{"decline 700 capture: unknown_authorization"},
		},
		{
			name:  "tok_capture_fails declines the capture and keeps the hold for a void",
			token: payment.TokenCaptureFails,
			steps: []step{{"authorize", ""}, {"capture", payment.DeclineCaptureDeclined}, {"void", ""}},
			hold:  providerHold{state: "VOIDED"},
			ops:   []string{"authorize 700", "decline 700 capture: capture_declined", "void 700"},
		},
		{
			name:  "tok_declined holds nothing",
			token: payment.TokenDeclined,
			steps: []step{{"authorize", payment.DeclineCardDeclined}, {"void", ""}},
			ops:   []string{"decline 700 authorize: card_declined", "void 0 no hold"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := uuid.NewString()
			var firstID string
			for i, s := range tc.steps {
				var err error
				switch s.call {
				case "authorize":
					var id string
					id, err = authorize(key, tc.token, 700)
					if err == nil && firstID != "" && id != firstID {
						t.Errorf("step %d: a second authorization id %q, first %q", i, id, firstID)
					}
					if firstID == "" {
						firstID = id
					}
				case "capture":
					err = sim.Capture(ctx, key, 700)
				case "void":
					err = sim.Void(ctx, key)
				}
				if got := declineCode(err); got != s.want {
					t.Fatalf("step %d (%s): got %q (%v), want %q", i, s.call, got, err, s.want)
				}
			}
			if h := l.hold(t, key); h != tc.hold {
				t.Errorf("hold %+v, want %+v", h, tc.hold)
			}
			if got := l.ops(t, key); strings.Join(got, "|") != strings.Join(tc.ops, "|") {
				t.Errorf("operations:\n got %q\nwant %q", got, tc.ops)
			}
		})
	}
}

// TestSimulatorLedgerSurvivesARestart: a new simulator on the same
// database (the payment worker after kill -9) knows every hold, and
// tok_transient_error's attempt count.
func TestSimulatorLedgerSurvivesARestart(t *testing.T) {
	ctx := context.Background()
	pool := testkit.NewPool(t)
	key := uuid.NewString()
	req := payment.AuthorizeRequest{IdempotencyKey: key, Token: payment.TokenTransientError, AmountCents: 900, Currency: "USD"}
	for i := 1; i <= 2; i++ {
		if _, err := payment.NewSimulator(pool).Authorize(ctx, req); !errors.Is(err, payment.ErrProviderUnavailable) {
			t.Fatalf("attempt %d on a fresh simulator: got %v, want the provider unavailable", i, err)
		}
	}
	id, err := payment.NewSimulator(pool).Authorize(ctx, req)
	if err != nil {
		t.Fatalf("third attempt: %v", err)
	}
	again, err := payment.NewSimulator(pool).Authorize(ctx, req)
	if err != nil || again != id {
		t.Errorf("authorization after a restart: %q, %v; first %q", again, err, id)
	}
	if err := payment.NewSimulator(pool).Capture(ctx, key, 900); err != nil {
		t.Fatal(err)
	}
	if err := payment.NewSimulator(pool).Capture(ctx, key, 900); err != nil {
		t.Fatal(err)
	}
	if h := (ledger{pool}).hold(t, key); h != (providerHold{state: "CAPTURED", captures: 1, capturedCents: 900}) {
		t.Errorf("hold %+v", h)
	}
}
