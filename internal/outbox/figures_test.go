package outbox

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// place records an order placed at at (its row and the event of seq 1)
// and returns its id.
func place(t *testing.T, pool *pgxpool.Pool, at time.Time) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	id, customer := uuid.New(), uuid.New()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO orders.orders (id, customer_id, status, total_cents, currency, payment_method) VALUES ($1, $2, $3, 100, 'USD', 'tok_ok')`,
			id, customer, order.Pending); err != nil {
			return err
		}
		_, err := Append(ctx, tx, order.OrderEvent{OrderID: id, CustomerID: customer, Seq: 1, Status: order.Pending, TotalCents: 100, OccurredAt: at})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestOutcomesCountEndedOrdersByBucket(t *testing.T) {
	pool := testkit.NewPool(t)
	base := time.Unix(time.Now().Add(-time.Hour).Unix()/5*5, 0).UTC()
	at := func(secs float64) time.Time { return base.Add(time.Duration(secs * float64(time.Second))) }
	ends := []struct {
		placed, ended float64
		status        order.Status
		reason        order.Reason
	}{
		{0.5, 2.5, order.Confirmed, ""},                        // 2 s, bucket 0
		{0, 4, order.Confirmed, ""},                            // 4 s, bucket 0
		{3, 6, order.Rejected, order.ReasonPaymentDeclined},    // 3 s, bucket 5
		{5, 7, order.Cancelled, order.ReasonCustomer},          // 2 s, bucket 5
		{2, 12, order.Confirmed, ""},                           // after the range
		{-9, -1, order.Failed, order.ReasonCompensationFailed}, // before it
	}
	for _, e := range ends {
		id := place(t, pool, at(e.placed))
		appendEvent(t, pool, order.OrderEvent{OrderID: id, CustomerID: uuid.New(), Seq: 2, Status: order.Reserved, TotalCents: 100, OccurredAt: at(e.placed + 0.1)})
		appendEvent(t, pool, order.OrderEvent{OrderID: id, CustomerID: uuid.New(), Seq: 3, Status: e.status, Reason: e.reason, TotalCents: 100, OccurredAt: at(e.ended)})
	}
	place(t, pool, at(1)) // still PENDING: not an outcome

	ended, latency, err := NewLog(pool).Outcomes(context.Background(), base, base.Add(10*time.Second), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, e := range ended {
		got[fmt.Sprintf("%d %s %s", e.Bucket.Sub(base)/time.Second, e.Status, e.Reason)] = e.Orders
	}
	want := map[string]int64{
		"0 CONFIRMED ":                2,
		"5 REJECTED payment_declined": 1,
		"5 CANCELLED customer":        1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ended %v, want %v", got, want)
	}
	gotLatency := map[int64]string{}
	for _, l := range latency {
		gotLatency[int64(l.Bucket.Sub(base)/time.Second)] = fmt.Sprintf("%d p50=%s p99=%s", l.Orders, l.P50.Round(time.Millisecond), l.P99.Round(time.Millisecond))
	}
	wantLatency := map[int64]string{
		0: "2 p50=3s p99=3.98s",   // of 2 s and 4 s
		5: "2 p50=2.5s p99=2.99s", // of 3 s and 2 s
	}
	if fmt.Sprint(gotLatency) != fmt.Sprint(wantLatency) {
		t.Errorf("latency %v, want %v", gotLatency, wantLatency)
	}

	if _, _, err := NewLog(pool).Outcomes(context.Background(), base, base.Add(time.Minute), 1500*time.Millisecond); err == nil {
		t.Error("a step of 1.5 s was accepted")
	}
}

// TestPublishedCountsTheRecordsTheRelaySent: the bytes Published computes
// in SQL are those of the records a consumer receives, keys and values,
// for events whose variable parts vary in length.
func TestPublishedCountsTheRecordsTheRelaySent(t *testing.T) {
	pool := testkit.NewPool(t)
	brokers := testkit.KafkaBrokers(t)
	topic := "figures-" + uuid.NewString()[:8]
	start := time.Now()
	fractions := []time.Duration{0, 500 * time.Millisecond, 123456 * time.Microsecond, 120 * time.Millisecond, 7 * time.Microsecond}
	n := 0
	for i, total := range []int64{0, 7, 123456789} {
		id := place(t, pool, time.Unix(start.Unix(), 0).Add(fractions[i]))
		n++
		for seq := 2; seq <= 11; seq++ {
			st, reason := order.Reserved, order.ReasonNone
			if seq == 11 {
				st, reason = order.Rejected, order.ReasonInsufficientFunds
			}
			appendEvent(t, pool, order.OrderEvent{OrderID: id, CustomerID: uuid.New(), Seq: seq, Status: st, Reason: reason, TotalCents: total,
				OccurredAt: time.Unix(start.Unix()+int64(seq), 0).Add(fractions[seq%len(fractions)])})
			n++
		}
	}
	startRelay(t, pool, brokers, topic, nil)
	testkit.WaitFor(t, "the relay to publish every event", 30*time.Second, func() bool { return unpublished(t, pool) == 0 })

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var records, size int64
	for records < int64(n) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records of %d", records, n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			records++
			size += int64(len(r.Key) + len(r.Value))
		})
	}

	step := 5 * time.Second
	from := time.Unix(start.Add(-time.Minute).Unix()/5*5, 0)
	published, err := NewLog(pool).Published(context.Background(), from, from.Add(5*time.Minute), step)
	if err != nil {
		t.Fatal(err)
	}
	var events, bytes int64
	for _, p := range published {
		if p.Bucket.Unix()%5 != 0 {
			t.Errorf("bucket %v is not aligned on the step", p.Bucket)
		}
		events += p.Events
		bytes += p.Bytes
	}
	if events != records || bytes != size {
		t.Errorf("Published counts %d events of %d bytes; the consumer received %d records of %d bytes", events, bytes, records, size)
	}
}

// BenchmarkFigures measures the monitoring's reads of the last 15 minutes
// on an outbox of 100,000 events over a day (25,000 orders of four events
// each), about 1,000 of them in the window:
//
//	go test ./internal/outbox -run XXX -bench Figures -benchtime 20x
func BenchmarkFigures(b *testing.B) {
	pool := testkit.NewPool(b)
	ctx := context.Background()
	now := time.Now()
	_, err := pool.Exec(ctx, `WITH o AS (
			SELECT gen_random_uuid() AS id, gen_random_uuid() AS customer, $1::timestamptz - (i * interval '3.456 seconds') AS at
			FROM generate_series(1, 25000) i),
		ins AS (INSERT INTO orders.orders (id, customer_id, status, total_cents, currency, payment_method)
			SELECT id, customer, $2, 100, 'USD', 'tok_ok' FROM o)
		INSERT INTO orders.order_events (order_id, seq, customer_id, status, total_cents, occurred_at, published_at)
		SELECT o.id, s.seq, o.customer, (ARRAY[$3, $4, $5, $2])[s.seq], 100, o.at + s.seq * interval '200 ms', o.at + s.seq * interval '250 ms'
		FROM o, generate_series(1, 4) AS s(seq)`,
		now, order.Confirmed, order.Pending, order.Reserved, order.Authorized)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE orders.order_events`); err != nil {
		b.Fatal(err)
	}
	log := NewLog(pool)
	end := time.Unix(now.Unix()/5*5, 0)
	from := end.Add(-15 * time.Minute)
	b.ResetTimer()
	for range b.N {
		ended, _, err := log.Outcomes(ctx, from, end, 5*time.Second)
		if err != nil || len(ended) == 0 {
			b.Fatal(len(ended), err)
		}
		if _, err := log.Published(ctx, from, end, 5*time.Second); err != nil {
			b.Fatal(err)
		}
	}
}
