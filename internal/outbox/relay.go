// Package outbox is the relay of the transactional outbox: it publishes the
// committed rows of orders.order_events to Kafka, in id order, keyed by
// order id, and marks them published once the broker acknowledged them.
//
// One relay is active at a time: the one holding a Postgres advisory lock.
// Others wait and take over when its session ends. Delivery is at least
// once: a relay that dies between the broker's acknowledgement and the
// mark publishes those events again, with the same event_id.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/kafkaclient"
	"github.com/ordersaga/ordersaga/internal/metrics"
	"github.com/ordersaga/ordersaga/internal/orderstore"
)

// lockKey is the advisory lock that elects the active relay.
const lockKey int64 = LockKey

// LockKey is the advisory lock the active relay holds; status pages look
// for it in pg_locks.
const LockKey int64 = 0x6f75_7462_6f78 // "outbox"

// Options tune a relay.
type Options struct {
	Topic      string
	Partitions int32
	// BatchSize is how many events one produce round carries.
	BatchSize int
	// Idle is the longest wait between two looks at the outbox when no
	// notification arrives.
	Idle time.Duration
	// Standby is how often a waiting replica tries to take the lock.
	Standby time.Duration
}

// Relay publishes the outbox. Build it with New.
type Relay struct {
	db       *pgxpool.Pool
	producer *kgo.Client
	opts     Options
	log      *zap.Logger
	m        *relayMetrics

	// afterAck, when set, runs after the broker acknowledged a batch and
	// before it is marked published: tests use it to kill a relay there.
	afterAck func() error
}

// New returns a relay over the orders database and a producer.
func New(db *pgxpool.Pool, producer *kgo.Client, opts Options, reg prometheus.Registerer, log *zap.Logger) *Relay {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Idle <= 0 {
		opts.Idle = time.Second
	}
	if opts.Standby <= 0 {
		opts.Standby = time.Second
	}
	if opts.Partitions <= 0 {
		opts.Partitions = 6
	}
	return &Relay{db: db, producer: producer, opts: opts, log: log.With(zap.String("component", "outbox relay")), m: newRelayMetrics(reg)}
}

// Run relays until ctx ends: it waits for the lock, then publishes; if it
// loses its session it waits for the lock again.
func (r *Relay) Run(ctx context.Context) error {
	backoff := newBackoff()
	for ctx.Err() == nil {
		conn, err := r.takeLock(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("cannot reach the orders database; retrying", zap.Error(err))
				backoff.wait(ctx)
			}
			continue
		}
		if conn == nil { // another replica is active
			r.m.active.Set(0)
			r.updateLag(ctx)
			sleep(ctx, r.opts.Standby)
			continue
		}
		r.log.Info("relay active")
		r.m.active.Set(1)
		err = r.lead(ctx, conn)
		r.m.active.Set(0)
		// Closing the session releases the advisory lock.
		_ = conn.Close(context.Background())
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("relay stepped down; will try to take over again", zap.Error(err))
		backoff.wait(ctx)
	}
	return nil
}

// takeLock returns a session holding the relay lock, or nil when another
// session holds it. The connection leaves the pool: the lock lives as long
// as this session.
func (r *Relay) takeLock(ctx context.Context) (*pgx.Conn, error) {
	pc, err := r.db.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	var got bool
	if err := pc.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&got); err != nil {
		pc.Release()
		return nil, err
	}
	if !got {
		pc.Release()
		return nil, nil
	}
	return pc.Hijack(), nil
}

func (r *Relay) lead(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, `LISTEN `+orderstore.OutboxChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	backoff := newBackoff()
	for {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := kafkaclient.EnsureTopic(tctx, r.producer, r.opts.Topic, r.opts.Partitions)
		cancel()
		if err == nil {
			break
		}
		r.log.Warn("kafka not ready; retrying", zap.Error(err))
		r.updateLag(ctx)
		if !backoff.wait(ctx) {
			return ctx.Err()
		}
	}
	backoff.reset()
	for {
		n, err := r.publishBatch(ctx)
		r.updateLag(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.log.Warn("publishing failed; nothing is lost, retrying", zap.Error(err))
			if _, perr := conn.Exec(ctx, `SELECT 1`); perr != nil {
				return fmt.Errorf("lost the lock session: %w", perr)
			}
			if !backoff.wait(ctx) {
				return ctx.Err()
			}
			continue
		}
		backoff.reset()
		if n == r.opts.BatchSize {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, r.opts.Idle)
		_, err = conn.WaitForNotification(wctx)
		cancel()
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("lost the lock session: %w", err)
		}
	}
}

// publishBatch publishes up to BatchSize unpublished events and marks them.
func (r *Relay) publishBatch(ctx context.Context) (int, error) {
	rows, err := r.db.Query(ctx, `SELECT id, order_id, customer_id, seq, status, reason, total_cents, occurred_at
		FROM orders.order_events WHERE published_at IS NULL ORDER BY id LIMIT $1`, r.opts.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	var ids []int64
	var records []*kgo.Record
	for rows.Next() {
		var id int64
		var e orderstore.Event
		if err := rows.Scan(&id, &e.OrderID, &e.CustomerID, &e.Seq, &e.Status, &e.Reason, &e.TotalCents, &e.OccurredAt); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read outbox: %w", err)
		}
		e = orderstore.Complete(e)
		value, err := json.Marshal(e)
		if err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
		records = append(records, &kgo.Record{Topic: r.opts.Topic, Key: []byte(e.OrderID.String()), Value: value})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	if len(records) == 0 {
		return 0, nil
	}
	if err := r.producer.ProduceSync(ctx, records...).FirstErr(); err != nil {
		return 0, fmt.Errorf("produce %d events: %w", len(records), err)
	}
	if r.afterAck != nil {
		if err := r.afterAck(); err != nil {
			return 0, err
		}
	}
	if _, err := r.db.Exec(ctx, `UPDATE orders.order_events SET published_at = now() WHERE id = ANY($1)`, ids); err != nil {
		return 0, fmt.Errorf("mark published: %w", err)
	}
	r.m.published.Add(float64(len(records)))
	return len(records), nil
}

func (r *Relay) updateLag(ctx context.Context) {
	var n int64
	var age float64
	if err := r.db.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(occurred_at)), 0)::float8
		FROM orders.order_events WHERE published_at IS NULL`).Scan(&n, &age); err == nil {
		r.m.lagCount.Set(float64(n))
		r.m.lagAge.Set(age)
	}
}

type relayMetrics struct {
	published prometheus.Counter
	lagCount  prometheus.Gauge
	lagAge    prometheus.Gauge
	active    prometheus.Gauge
}

func newRelayMetrics(reg prometheus.Registerer) *relayMetrics {
	m := &relayMetrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "ordersaga_outbox_published_total", Help: "Events the relay published to Kafka."}),
		lagCount:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "ordersaga_outbox_unpublished_events", Help: "Committed events not yet on Kafka."}),
		lagAge:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "ordersaga_outbox_oldest_unpublished_age_seconds", Help: "Age of the oldest committed event not yet on Kafka."}),
		active:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "ordersaga_outbox_relay_active", Help: "1 while this process is the active relay."}),
	}
	metrics.Register(reg, m.published, m.lagCount, m.lagAge, m.active)
	return m
}

// backoff waits 100 ms, doubling to at most 5 s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 100 * time.Millisecond} }
func (b *backoff) reset()  { b.d = 100 * time.Millisecond }
func (b *backoff) wait(ctx context.Context) bool {
	ok := sleep(ctx, b.d)
	b.d = min(b.d*2, 5*time.Second)
	return ok
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
