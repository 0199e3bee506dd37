// Package outbox owns the transactional outbox, orders.order_events: every
// statement on that table is here. Append adds an event inside the
// transaction of the change it describes; the Relay publishes the
// committed events to Kafka, in id order, keyed by order id, and marks
// them published once the broker acknowledged them; Log reads an order's
// events back (replays, the events endpoint) and the relay's progress
// (lag, relay status) for status pages.
//
// One relay is active at a time: the one holding a Postgres advisory lock
// on a dedicated connection, its lock session. Others wait and take over
// when that session ends. Delivery is at least once: a relay that dies
// between the broker's acknowledgement and the mark publishes those events
// again, with the same event_id.
//
// A relay that loses its lock session stops publishing before another can
// start, without relying on the loss being reported to it:
//
//   - While active, it checks its session (SELECT 1) every CheckInterval,
//     each check bounded by CheckTimeout, and once more right before it
//     produces each batch, unless a check that began less than a tenth of
//     CheckInterval ago proved it already (under steady load that spares
//     a round trip per batch and moves the bound below by that tenth at
//     most). A check that fails or times out ends its
//     leadership at once: the batch in hand is abandoned and the produce in
//     progress cancelled. So it stops publishing at most one lease
//     (CheckInterval + CheckTimeout) after the start of the last check that
//     proved its session alive.
//   - A standby can take the lock only after the server has ended that
//     session, so after the start of that last successful check; and a
//     relay that has just taken the lock waits one lease before it
//     publishes. By then the old relay has stopped.
//   - The server ends the session of a relay that stopped answering
//     (network partition, process frozen) after SessionTimeout, through the
//     session's idle_session_timeout, TCP keepalives and tcp_user_timeout.
//     That is how a standby takes over within seconds when no error ever
//     reaches the server.
//
// What no client-side check can stop: records already written to the
// broker's socket when leadership ends, or a relay process frozen for
// longer than SessionTimeout in the middle of a produce, may still land.
// Those are duplicates of events the new relay publishes too, never a
// reordering: an event is marked published only after the broker
// acknowledged it, so every relay publishes an order's events from its
// first unacknowledged one, in seq order.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/kafkaclient"
	"github.com/ordersaga/ordersaga/internal/metrics"
	"github.com/ordersaga/ordersaga/internal/retry"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// channel is the Postgres channel notified, at commit, whenever an event
// is appended; the active relay listens on it instead of polling.
const channel = "orders_outbox"

// Append adds e to the outbox inside the caller's transaction tx, so that
// the event commits or rolls back with the change it describes, and asks
// the relay to look at the outbox once tx commits. Only e's stored fields
// are used (order, seq, customer, status, reason, total, time); the
// derived ones are filled again when the event is read.
//
// An event is identified by (order_id, seq): appending one that is there
// already changes nothing and returns false, so that a retried transition
// is recorded once.
func Append(ctx context.Context, tx pgx.Tx, e order.OrderEvent) (bool, error) {
	// One statement, one round trip: the insert, and the notification
	// only when a row went in.
	tag, err := tx.Exec(ctx, appendSQL, appendArgs(e)...)
	if err != nil {
		return false, fmt.Errorf("append event %d (%s) of order %s: %w", e.Seq, e.Status, e.OrderID, err)
	}
	return tag.RowsAffected() == 1, nil
}

const appendSQL = `WITH appended AS (
		INSERT INTO orders.order_events (order_id, seq, customer_id, status, reason, total_cents, occurred_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_id, seq) DO NOTHING RETURNING 1)
	SELECT pg_notify('` + channel + `', '') FROM appended`

func appendArgs(e order.OrderEvent) []any {
	return []any{e.OrderID, e.Seq, e.CustomerID, string(e.Status), string(e.Reason), e.TotalCents, e.OccurredAt}
}

// Update is a change to the caller's table that AppendWith applies with
// an event: UPDATE Table SET Set WHERE (Where). In Set and Where, $1 to $7
// are the event's order id, seq, customer id, status, reason, total and
// time, and Args are $8 and after.
type Update struct {
	Table, Set, Where string
	Args              []any
}

// AppendWith appends e as Append does and, only when it went in, applies
// u in the same statement: a transition recorded and applied in one round
// trip, atomic without a transaction of its own. A retried transition
// (the event is there already) changes nothing and returns false.
func AppendWith(ctx context.Context, db DB, e order.OrderEvent, u Update) (bool, error) {
	q := `WITH appended AS (
		INSERT INTO orders.order_events (order_id, seq, customer_id, status, reason, total_cents, occurred_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_id, seq) DO NOTHING RETURNING 1),
	changed AS (UPDATE ` + u.Table + ` SET ` + u.Set + ` WHERE (` + u.Where + `) AND EXISTS (SELECT FROM appended) RETURNING 1)
	SELECT pg_notify('` + channel + `', ''), (SELECT count(*) FROM changed) FROM appended`
	tag, err := db.Exec(ctx, q, append(appendArgs(e), u.Args...)...)
	if err != nil {
		return false, fmt.Errorf("append event %d (%s) of order %s: %w", e.Seq, e.Status, e.OrderID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// DB runs a statement: a pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// lockKey is the advisory lock that elects the active relay; Log.RelayStatus
// looks for it in pg_locks.
const lockKey int64 = 0x6f75_7462_6f78 // "outbox"

// queryTimeout bounds the relay's reads and writes of the outbox through
// the pool, so that a stalled database delays the relay instead of
// hanging it.
const queryTimeout = 10 * time.Second

// Options tune a relay. Zero values take the defaults.
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
	// CheckInterval is how often the active relay checks that its lock
	// session is alive (default 1 s).
	CheckInterval time.Duration
	// CheckTimeout bounds each check of the lock session, and the
	// statements that take the lock (default 2 s). CheckInterval +
	// CheckTimeout is the lease: how long after its last good check a
	// relay that lost its session may still publish, and how long a relay
	// that took the lock waits before it publishes.
	CheckTimeout time.Duration
	// SessionTimeout is how long the database keeps the lock session of a
	// relay that stopped answering before it ends it, freeing the lock for
	// a standby (default 10 s; at least two leases).
	SessionTimeout time.Duration
	// ConnectTimeout bounds the connection of the lock session (default 5 s).
	ConnectTimeout time.Duration
}

// lease is how long a good check of the lock session vouches for it.
func (o Options) lease() time.Duration { return o.CheckInterval + o.CheckTimeout }

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

// New returns a relay over the orders database and a producer. The lock
// session is a connection of its own, made with the pool's connection
// settings.
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
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = time.Second
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = 2 * time.Second
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = 10 * time.Second
	}
	// The server must not end a healthy session between two checks, and a
	// relay must notice a dead session before the server frees the lock.
	opts.SessionTimeout = max(opts.SessionTimeout, 2*opts.lease(), time.Second)
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	return &Relay{db: db, producer: producer, opts: opts, log: log.With(zap.String("component", "outbox relay")), m: newRelayMetrics(reg)}
}

// Run relays until ctx ends: it waits for the lock, then publishes; if it
// loses its session it waits for the lock again.
func (r *Relay) Run(ctx context.Context) error {
	backoff := newBackoff()
	// conn is the session that tries for the lock; a standby keeps it
	// between tries rather than connecting every time.
	var conn *pgx.Conn
	closeConn := func() {
		if conn != nil {
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			// Closing the session releases the advisory lock.
			_ = conn.Close(cctx)
			cancel()
			conn = nil
		}
	}
	defer closeConn()
	for ctx.Err() == nil {
		if conn == nil {
			c, err := r.connect(ctx)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("cannot reach the orders database; retrying", zap.Error(err))
					_ = backoff.Wait(ctx)
				}
				continue
			}
			conn = c
		}
		got, err := r.tryLock(ctx, conn)
		if err != nil {
			closeConn()
			if ctx.Err() == nil {
				r.log.Warn("cannot try the relay lock; reconnecting", zap.Error(err))
				_ = backoff.Wait(ctx)
			}
			continue
		}
		if !got { // another replica is active
			backoff.Reset()
			r.m.active.Set(0)
			r.updateLag(ctx)
			_ = retry.Sleep(ctx, r.opts.Standby)
			continue
		}
		r.log.Info("relay active", zap.Duration("lease", r.opts.lease()))
		r.m.active.Set(1)
		err = r.lead(ctx, conn)
		r.m.active.Set(0)
		closeConn()
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("relay stepped down; will try to take over again", zap.Error(err))
		_ = backoff.Wait(ctx)
	}
	return nil
}

// connect opens a lock session: a connection outside the pool, since the
// lock lives as long as the session, with TCP keepalives on both ends and
// a user timeout on the server's, so that a dead peer is noticed in
// seconds rather than hours.
func (r *Relay) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg := r.db.Config().ConnConfig.Copy()
	ka := r.opts.SessionTimeout / 2
	dialer := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: ka, Interval: max(ka/3, time.Second), Count: 3,
	}}
	cfg.DialFunc = dialer.DialContext
	cfg.ConnectTimeout = r.opts.ConnectTimeout
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "ordersaga outbox relay"
	}
	cctx, cancel := context.WithTimeout(ctx, r.opts.ConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect the lock session: %w", err)
	}
	secs := int(ka / time.Second)
	if _, err := conn.Exec(cctx, fmt.Sprintf(`SET tcp_keepalives_idle = %d; SET tcp_keepalives_interval = %d; SET tcp_keepalives_count = 3; SET tcp_user_timeout = %d`,
		max(secs, 1), max(secs/3, 1), r.opts.SessionTimeout.Milliseconds())); err != nil {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("set the lock session's timeouts: %w", err)
	}
	return conn, nil
}

// tryLock takes the relay lock on conn if no other session holds it.
func (r *Relay) tryLock(ctx context.Context, conn *pgx.Conn) (bool, error) {
	tctx, cancel := context.WithTimeout(ctx, r.opts.CheckTimeout)
	defer cancel()
	var got bool
	if err := conn.QueryRow(tctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&got); err != nil {
		return false, err
	}
	if !got {
		return false, nil
	}
	// A session that falls silent (its relay frozen, or cut off where
	// keepalives still get answers, as behind a proxy) ends after
	// SessionTimeout; the relay's own checks keep a live one busy.
	_, err := conn.Exec(tctx, fmt.Sprintf(`SET idle_session_timeout = %d`, r.opts.SessionTimeout.Milliseconds()))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42704" { // before PostgreSQL 14
		r.log.Warn("the server has no idle_session_timeout; a frozen relay keeps the lock until its connection breaks")
		err = nil
	}
	if err != nil {
		return false, fmt.Errorf("set the lock session's idle timeout: %w", err)
	}
	return true, nil
}

// lead publishes while conn holds the lock. It returns why it stopped.
func (r *Relay) lead(ctx context.Context, conn *pgx.Conn) error {
	lctx, lose := context.WithCancelCause(ctx)
	defer lose(nil)
	tctx, cancel := context.WithTimeout(lctx, r.opts.CheckTimeout)
	_, err := conn.Exec(tctx, `LISTEN `+channel)
	cancel()
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s := &session{conn: conn, every: r.opts.CheckInterval, timeout: r.opts.CheckTimeout, wake: make(chan struct{}, 1)}
	watched := make(chan struct{})
	go func() { defer close(watched); s.watch(lctx, lose) }()
	// The caller closes conn once lead returns: stop the watcher first.
	defer func() { lose(nil); <-watched }()
	stopped := func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return context.Cause(lctx)
	}

	// Whoever held the lock before may still publish for one lease after
	// the last check that proved its session alive: wait it out.
	if retry.Sleep(lctx, r.opts.lease()) != nil {
		return stopped()
	}
	backoff := newBackoff()
	for {
		tctx, cancel := context.WithTimeout(lctx, 10*time.Second)
		err := kafkaclient.EnsureTopic(tctx, r.producer, r.opts.Topic, r.opts.Partitions)
		cancel()
		if err == nil {
			break
		}
		if lctx.Err() != nil {
			return stopped()
		}
		r.log.Warn("kafka not ready; retrying", zap.Error(err))
		r.updateLag(lctx)
		if backoff.Wait(lctx) != nil {
			return stopped()
		}
	}
	backoff.Reset()
	var lagCounted time.Time
	for {
		n, err := r.publishBatch(lctx, s)
		if lctx.Err() != nil {
			return stopped()
		}
		// The lag is counted at most once a second: after every batch it
		// would cost a scan of what is left per batch, quadratic in the
		// backlog during a catch-up, and a query per batch, about one per
		// event, under steady load.
		if time.Since(lagCounted) >= time.Second {
			r.updateLag(lctx)
			lagCounted = time.Now()
		}
		if err != nil {
			r.log.Warn("publishing failed; nothing is lost, retrying", zap.Error(err))
			if backoff.Wait(lctx) != nil {
				return stopped()
			}
			continue
		}
		backoff.Reset()
		if n == r.opts.BatchSize {
			continue
		}
		idle := time.NewTimer(r.opts.Idle)
		select {
		case <-s.wake:
		case <-idle.C:
		case <-lctx.Done():
		}
		idle.Stop()
	}
}

// publishBatch publishes up to BatchSize unpublished events and marks them.
// lctx is the leadership: it ends when the lock session is lost, and with
// it every step, the mark included: a relay that lost its lock stops at
// once, and the next one publishes the unmarked events again.
func (r *Relay) publishBatch(lctx context.Context, s *session) (int, error) {
	qctx, cancel := context.WithTimeout(lctx, queryTimeout)
	defer cancel()
	rows, err := r.db.Query(qctx, `SELECT id, order_id, customer_id, seq, status, reason, total_cents, occurred_at
		FROM orders.order_events WHERE published_at IS NULL ORDER BY id LIMIT $1`, r.opts.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	var ids []int64
	var records []*kgo.Record
	for rows.Next() {
		var id int64
		var e order.OrderEvent
		if err := rows.Scan(&id, &e.OrderID, &e.CustomerID, &e.Seq, &e.Status, &e.Reason, &e.TotalCents, &e.OccurredAt); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read outbox: %w", err)
		}
		e = e.Complete()
		value, err := json.Marshal(e)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("encode event %s: %w", e.EventID, err)
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
	// The session may have died since the last periodic check: prove it
	// alive now, so that this batch starts within a lease of the proof.
	if err := s.confirm(lctx); err != nil {
		return 0, fmt.Errorf("abandon a batch of %d events: %w", len(records), err)
	}
	if err := r.producer.ProduceSync(lctx, records...).FirstErr(); err != nil {
		return 0, fmt.Errorf("produce %d events: %w", len(records), err)
	}
	if r.afterAck != nil {
		if err := r.afterAck(); err != nil {
			return 0, err
		}
	}
	mctx, cancel := context.WithTimeout(lctx, queryTimeout)
	defer cancel()
	if _, err := r.db.Exec(mctx, `UPDATE orders.order_events SET published_at = now() WHERE id = ANY($1)`, ids); err != nil {
		return 0, fmt.Errorf("mark %d events published: %w", len(ids), err)
	}
	r.m.published.Add(float64(len(records)))
	return len(records), nil
}

// session watches the active relay's lock session. Its watcher goroutine
// is the only user of the connection while the relay leads: it waits for
// the outbox's notifications and checks the session every interval, or at
// once when the publisher asks.
type session struct {
	conn           *pgx.Conn
	every, timeout time.Duration
	// wake gets a token when a notification arrives.
	wake chan struct{}

	mu sync.Mutex
	// proven is when the last check that the session answered began.
	proven time.Time
	// asks are the publisher's requests for a check, answered by the next.
	asks []chan error
	// interrupt ends the watcher's current wait for notifications.
	interrupt context.CancelFunc
}

// confirm checks the session now, unless a check that began within a tenth
// of the interval proved it, and returns nil if it answered in time.
func (s *session) confirm(lctx context.Context) error {
	answer := make(chan error, 1)
	s.mu.Lock()
	if !s.proven.IsZero() && time.Since(s.proven) < s.every/10 {
		s.mu.Unlock()
		return nil
	}
	s.asks = append(s.asks, answer)
	if s.interrupt != nil {
		s.interrupt()
	}
	s.mu.Unlock()
	select {
	case err := <-answer:
		return err
	case <-lctx.Done():
		return context.Cause(lctx)
	}
}

// watch runs until lctx ends, or until a check fails: then it ends the
// leadership with lose, at most one lease after the start of the last
// good check.
func (s *session) watch(lctx context.Context, lose context.CancelCauseFunc) {
	next := time.Now().Add(s.every)
	for {
		s.mu.Lock()
		asked := len(s.asks) > 0
		wctx, cancel := context.WithDeadline(lctx, next)
		s.interrupt = cancel
		s.mu.Unlock()
		if !asked && time.Now().Before(next) {
			_, err := s.conn.WaitForNotification(wctx)
			waited := wctx.Err() != nil
			cancel()
			switch {
			case err == nil:
				select {
				case s.wake <- struct{}{}:
				default:
				}
				continue
			case lctx.Err() != nil:
				return
			case !waited:
				// The connection broke: the server ended the session
				// (terminated, restarted) or the network did.
				lose(fmt.Errorf("lost the lock session: %w", err))
				return
			}
			continue // time for a check, or one was asked for
		}
		cancel()
		s.mu.Lock()
		asks := s.asks
		s.asks, s.interrupt = nil, nil
		s.mu.Unlock()
		began := time.Now()
		cctx, cancel := context.WithTimeout(lctx, s.timeout)
		_, err := s.conn.Exec(cctx, `SELECT 1`)
		cancel()
		if err != nil {
			err = fmt.Errorf("lost the lock session: no answer to a check within %s: %w", s.timeout, err)
			lose(err)
		}
		for _, a := range asks {
			a <- err
		}
		if err != nil {
			return
		}
		s.mu.Lock()
		s.proven = began
		s.mu.Unlock()
		next = began.Add(s.every)
	}
}

func (r *Relay) updateLag(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if n, age, err := lag(ctx, r.db); err == nil {
		r.m.lagCount.Set(float64(n))
		r.m.lagAge.Set(age.Seconds())
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

// newBackoff returns the relay's backoff after a failure: 100 ms, doubling
// to at most 5 s.
func newBackoff() *retry.Backoff { return retry.NewBackoff(100*time.Millisecond, 5*time.Second) }
