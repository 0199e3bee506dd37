package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// writeOrders records n orders, each PENDING then the given statuses, as
// the gateway and the workflow would: the order row and each event in one
// transaction. The order service writes the row in production; it imports
// this package, so these tests write the row themselves.
func writeOrders(t *testing.T, pool *pgxpool.Pool, n int, statuses ...order.Status) []uuid.UUID {
	t.Helper()
	ctx := context.Background()
	var ids []uuid.UUID
	for i := 0; i < n; i++ {
		id, customer := uuid.New(), uuid.New()
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO orders.orders (id, customer_id, status, total_cents, currency, payment_method) VALUES ($1, $2, $3, 100, 'USD', 'tok_ok')`,
				id, customer, order.Pending); err != nil {
				return err
			}
			_, err := Append(ctx, tx, order.OrderEvent{OrderID: id, CustomerID: customer, Seq: 1, Status: order.Pending, TotalCents: 100, OccurredAt: time.Now()})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for seq, st := range statuses {
		for _, id := range ids {
			appendEvent(t, pool, order.OrderEvent{OrderID: id, CustomerID: uuid.New(), Seq: seq + 2, Status: st, TotalCents: 100, OccurredAt: time.Now()})
		}
	}
	return ids
}

// appendEvent appends e in a transaction of its own and reports whether it
// was new.
func appendEvent(t *testing.T, pool *pgxpool.Pool, e order.OrderEvent) bool {
	t.Helper()
	var added bool
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		var err error
		added, err = Append(context.Background(), tx, e)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return added
}

type relayUnderTest struct {
	relay *Relay
	reg   *prometheus.Registry
	stop  func()
	// acks are the moments the broker acknowledged this relay's records.
	acks *ackLog
}

// ackLog records when the broker acknowledged each record of a producer.
type ackLog struct {
	mu    sync.Mutex
	times []time.Time
}

// OnProduceRecordUnbuffered implements kgo.HookProduceRecordUnbuffered.
func (a *ackLog) OnProduceRecordUnbuffered(_ *kgo.Record, err error) {
	if err != nil {
		return
	}
	a.mu.Lock()
	a.times = append(a.times, time.Now())
	a.mu.Unlock()
}

// span returns the first and last acknowledgement and their count.
func (a *ackLog) span() (first, last time.Time, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, at := range a.times {
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	return first, last, len(a.times)
}

// testOptions are the relay options of these tests: short timings, so that
// a lost session is noticed and replaced in about a second.
func testOptions(topic string, o Options) Options {
	o.Topic, o.Partitions = topic, 3
	if o.BatchSize == 0 {
		o.BatchSize = 25
	}
	o.Idle, o.Standby = 200*time.Millisecond, 100*time.Millisecond
	o.CheckInterval, o.CheckTimeout = 200*time.Millisecond, 500*time.Millisecond
	if o.SessionTimeout == 0 {
		o.SessionTimeout = 3 * time.Second
	}
	return o
}

func startRelay(t *testing.T, pool *pgxpool.Pool, brokers []string, topic string, afterAck func() error) *relayUnderTest {
	t.Helper()
	return startRelayWith(t, pool, brokers, afterAck, testOptions(topic, Options{}))
}

func startRelayWith(t *testing.T, pool *pgxpool.Pool, brokers []string, afterAck func() error, opts Options) *relayUnderTest {
	t.Helper()
	// kafkaclient.Producer's settings, plus a hook that logs acknowledgements.
	acks := &ackLog{}
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(opts.Topic),
		kgo.RecordDeliveryTimeout(2*time.Second), kgo.ProducerLinger(2*time.Millisecond), kgo.WithHooks(acks))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r := New(pool, prod, opts, reg, testkit.Logger())
	r.afterAck = afterAck
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	var once bool
	stop := func() {
		if once {
			return
		}
		once = true
		cancel()
		<-done
		prod.Close()
	}
	t.Cleanup(stop)
	return &relayUnderTest{relay: r, reg: reg, stop: stop, acks: acks}
}

// consumeAll reads topic from the start until want distinct event ids arrived.
func consumeAll(t *testing.T, brokers []string, topic string, want int) []order.OrderEvent {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []order.OrderEvent
	distinct := map[string]bool{}
	for len(distinct) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d distinct events of %d", len(distinct), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var e order.OrderEvent
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Errorf("record value is not an OrderEvent: %s", r.Value)
				return
			}
			if string(r.Key) != e.OrderID.String() {
				t.Errorf("record key %s, order %s", r.Key, e.OrderID)
			}
			out = append(out, e)
			distinct[e.EventID] = true
		})
	}
	return out
}

// checkOrdered: per order, after deduplication by event_id (what every
// consumer does under at-least-once delivery), seqs arrive in order.
func checkOrdered(t *testing.T, events []order.OrderEvent) {
	t.Helper()
	last := map[uuid.UUID]int{}
	seen := map[string]bool{}
	for _, e := range events {
		if seen[e.EventID] {
			continue
		}
		seen[e.EventID] = true
		if e.Seq != last[e.OrderID]+1 {
			t.Errorf("order %s: seq %d follows %d", e.OrderID, e.Seq, last[e.OrderID])
		}
		if e.EventID != fmt.Sprintf("%s:%d", e.OrderID, e.Seq) || e.Type != "order.status_changed" {
			t.Errorf("event %+v", e)
		}
		last[e.OrderID] = max(last[e.OrderID], e.Seq)
	}
}

func unpublished(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM orders.order_events WHERE published_at IS NULL`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRelayPublishesExactlyTheCommittedEventsInOrder(t *testing.T) {
	pool := testkit.NewPool(t)
	brokers := testkit.KafkaBrokers(t)
	topic := "events-" + uuid.NewString()[:8]
	ids := writeOrders(t, pool, 30, order.Reserved, order.Authorized, order.Confirmed)

	// An event whose transaction never commits must never reach Kafka.
	tx, err := pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), `INSERT INTO orders.order_events (order_id, seq, customer_id, status, total_cents) VALUES ($1, 5, $2, 'FAILED', 1)`, ids[0], uuid.New()); err != nil {
		t.Fatal(err)
	}
	r := startRelay(t, pool, brokers, topic, nil)
	testkit.WaitFor(t, "the outbox to drain", 30*time.Second, func() bool { return unpublished(t, pool) == 0 })
	_ = tx.Rollback(context.Background())

	events := consumeAll(t, brokers, topic, 120)
	checkOrdered(t, events)
	for _, e := range events {
		if e.Status == "FAILED" {
			t.Errorf("an uncommitted event reached Kafka: %+v", e)
		}
	}
	if got := testutil.ToFloat64(r.relay.m.published); got != 120 {
		t.Errorf("published counter %v", got)
	}
	// Events written while the relay runs go out promptly (NOTIFY, not a poll).
	began := time.Now()
	writeOrders(t, pool, 1)
	testkit.WaitFor(t, "a new event to be published", 5*time.Second, func() bool { return unpublished(t, pool) == 0 })
	t.Logf("a new event was published %s after commit", time.Since(began))
}

func TestRelayKilledMidBatchLosesNothing(t *testing.T) {
	pool := testkit.NewPool(t)
	brokers := testkit.KafkaBrokers(t)
	topic := "events-" + uuid.NewString()[:8]
	writeOrders(t, pool, 10, order.Reserved, order.Confirmed)

	// The first relay dies after the broker acknowledged its first batch,
	// before marking it.
	killed := make(chan struct{})
	first := startRelay(t, pool, brokers, topic, func() error {
		select {
		case <-killed:
		default:
			close(killed)
		}
		return errors.New("killed after the ack")
	})
	<-killed
	first.stop()
	if n := unpublished(t, pool); n != 30 {
		t.Fatalf("after the kill %d events are unmarked, want all 30", n)
	}

	startRelay(t, pool, brokers, topic, nil)
	testkit.WaitFor(t, "the outbox to drain", 30*time.Second, func() bool { return unpublished(t, pool) == 0 })
	events := consumeAll(t, brokers, topic, 30)
	checkOrdered(t, events)
	seen := map[string]order.OrderEvent{}
	repeats := 0
	for _, e := range events {
		if prev, ok := seen[e.EventID]; ok {
			repeats++
			if prev != e {
				t.Errorf("a repeat differs: %+v vs %+v", prev, e)
			}
		}
		seen[e.EventID] = e
	}
	if len(seen) != 30 || repeats == 0 {
		t.Errorf("%d distinct events, %d repeats: the acknowledged batch should come again", len(seen), repeats)
	}
}

func TestOneRelayAtATime(t *testing.T) {
	pool := testkit.NewPool(t)
	brokers := testkit.KafkaBrokers(t)
	topic := "events-" + uuid.NewString()[:8]
	a := startRelay(t, pool, brokers, topic, nil)
	testkit.WaitFor(t, "relay A to take the lock", 10*time.Second, func() bool { return testutil.ToFloat64(a.relay.m.active) == 1 })
	b := startRelay(t, pool, brokers, topic, nil)

	writeOrders(t, pool, 5, order.Reserved)
	testkit.WaitFor(t, "A to publish", 10*time.Second, func() bool { return unpublished(t, pool) == 0 })
	time.Sleep(300 * time.Millisecond)
	if testutil.ToFloat64(b.relay.m.active) != 0 || testutil.ToFloat64(b.relay.m.published) != 0 {
		t.Fatalf("replica B worked while A held the lock")
	}
	if testutil.ToFloat64(a.relay.m.published) != 10 {
		t.Errorf("A published %v", testutil.ToFloat64(a.relay.m.published))
	}

	a.stop()
	testkit.WaitFor(t, "B to take over", 10*time.Second, func() bool { return testutil.ToFloat64(b.relay.m.active) == 1 })
	writeOrders(t, pool, 5, order.Reserved)
	testkit.WaitFor(t, "B to publish", 10*time.Second, func() bool { return unpublished(t, pool) == 0 })
	// The relay counts a batch once it is marked: wait for the count.
	testkit.WaitFor(t, "B to count the 10 events it published", 5*time.Second, func() bool {
		return testutil.ToFloat64(b.relay.m.published) == 10
	})
	checkOrdered(t, consumeAll(t, brokers, topic, 20))

	// Status pages see the active relay in pg_locks, and its absence.
	log := NewLog(pool)
	active, last, err := log.RelayStatus(context.Background())
	if err != nil || !active || last == nil {
		t.Errorf("while B is active: active=%v last=%v err=%v", active, last, err)
	}
	b.stop()
	testkit.WaitFor(t, "the lock to be released", 10*time.Second, func() bool {
		active, _, err := log.RelayStatus(context.Background())
		return err == nil && !active
	})
}

func TestRelayWaitsOutAKafkaOutage(t *testing.T) {
	pool := testkit.NewPool(t)
	// The broker is down by closing every connection it accepts, rather than
	// by not listening: a port given up during the outage can be taken by
	// another test before the broker comes back on it.
	var down atomic.Bool
	down.Store(true)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cluster.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if down.Load() {
			return nil, errors.New("broker is down"), true
		}
		return nil, nil, false
	})
	brokers := cluster.ListenAddrs()
	topic := "events-" + uuid.NewString()[:8]
	writeOrders(t, pool, 5, order.Reserved)
	r := startRelay(t, pool, brokers, topic, nil)
	time.Sleep(2 * time.Second)
	if n := unpublished(t, pool); n != 10 {
		t.Fatalf("with Kafka down %d events are unpublished, want 10", n)
	}
	if lag := testutil.ToFloat64(r.relay.m.lagCount); lag != 10 {
		t.Errorf("lag metric %v while Kafka is down", lag)
	}
	if age := testutil.ToFloat64(r.relay.m.lagAge); age < 1 {
		t.Errorf("lag age metric %v", age)
	}

	down.Store(false)
	testkit.WaitFor(t, "the outbox to drain once Kafka is back", 60*time.Second, func() bool { return unpublished(t, pool) == 0 })
	checkOrdered(t, consumeAll(t, brokers, topic, 10))
	testkit.WaitFor(t, "the lag metric to clear", 5*time.Second, func() bool { return testutil.ToFloat64(r.relay.m.lagCount) == 0 })
}

// TestCatchUpCountsTheBacklogSparingly: catching up on a backlog in many
// full batches, the relay counts what is left about once a second, not
// after every batch (a scan of the rest each time: quadratic in the
// backlog), and its lag metric is exact once the outbox is drained.
func TestCatchUpCountsTheBacklogSparingly(t *testing.T) {
	pool := testkit.NewPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		t.Fatal(err)
	}
	lagCounts := func() int64 {
		var n int64
		if err := pool.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
			WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
				AND query LIKE 'SELECT count(*), coalesce(extract(% FROM now() - min(occurred_at))%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	writeOrders(t, pool, 500, order.Reserved, order.Authorized, order.Confirmed) // 2,000 events
	before := lagCounts()
	began := time.Now()
	r := startRelayWith(t, pool, testkit.KafkaBrokers(t), nil, testOptions("events-"+uuid.NewString()[:8], Options{BatchSize: 20}))
	testkit.WaitFor(t, "the outbox to drain", 60*time.Second, func() bool { return unpublished(t, pool) == 0 })
	took := time.Since(began)
	counted := lagCounts() - before
	if counted == 0 {
		t.Fatal("pg_stat_statements saw no count of the backlog: the query this test looks for has changed")
	}
	// 100 full batches; a count per second of the catch-up, one when it
	// goes idle, and a few from the waits around it.
	if limit := int64(took.Seconds()) + 5; counted > limit {
		t.Errorf("the relay counted the backlog %d times in %s of catching up on 100 batches; want at most %d", counted, took.Round(time.Millisecond), limit)
	}
	testkit.WaitFor(t, "the lag metric to say the outbox is empty", 10*time.Second, func() bool {
		return testutil.ToFloat64(r.relay.m.lagCount) == 0
	})
	t.Logf("caught up on 2,000 events in %s, counting the backlog %d times", took.Round(time.Millisecond), counted)
}
