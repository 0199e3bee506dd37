package outbox

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ordersaga/ordersaga/internal/testkit"
	"github.com/ordersaga/ordersaga/workflows/order"
)

// lockHolder returns the backend pid of the session holding the relay lock.
func lockHolder(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var pid int
	if err := pool.QueryRow(context.Background(), `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1`, lockKey).Scan(&pid); err != nil {
		t.Fatalf("find the relay lock's session: %v", err)
	}
	return pid
}

// slowly is an afterAck hook that makes a relay take a while over a
// backlog, so that it is mid-way when its session is lost.
func slowly() error { time.Sleep(40 * time.Millisecond); return nil }

// checkHandover asserts what consumers see of a handover from old to new:
// old's last record was acknowledged before new's first, and within a
// lease (plus scheduling slack) of the moment old's session was lost.
func checkHandover(t *testing.T, old, new *relayUnderTest, lost time.Time) {
	t.Helper()
	_, oldLast, oldN := old.acks.span()
	newFirst, _, newN := new.acks.span()
	if oldN == 0 || newN == 0 {
		t.Fatalf("the old leader published %d records and the new one %d: the handover was not exercised", oldN, newN)
	}
	if !oldLast.Before(newFirst) {
		t.Errorf("the old leader published until %s, after the new one started at %s", oldLast.Format(time.StampMicro), newFirst.Format(time.StampMicro))
	}
	if bound := lost.Add(old.relay.opts.lease() + 300*time.Millisecond); oldLast.After(bound) {
		t.Errorf("the old leader published %s after losing its session; the bound is one lease (%s)", oldLast.Sub(lost), old.relay.opts.lease())
	}
	t.Logf("old leader: %d records, the last %s after the loss; new leader: %d records, the first %s after the loss",
		oldN, oldLast.Sub(lost).Round(time.Millisecond), newN, newFirst.Sub(lost).Round(time.Millisecond))
}

// TestLeaderWhoseSessionIsKilledStopsBeforeTheStandbyStarts: the active
// relay's lock session is terminated by the server while it works through a
// backlog. It notices within a lease, the standby takes over within
// seconds, the old leader publishes nothing once the new one has started,
// and every event reaches Kafka in per-order seq order.
func TestLeaderWhoseSessionIsKilledStopsBeforeTheStandbyStarts(t *testing.T) {
	pool := testkit.NewPool(t)
	brokers := testkit.KafkaBrokers(t)
	topic := "events-" + uuid.NewString()[:8]
	// The backlog is there first, so that however slow the writes, A is
	// mid-way through it when its session dies.
	const orders = 300 // 900 events
	writeOrders(t, pool, orders, order.Reserved, order.Authorized)
	opts := testOptions(topic, Options{BatchSize: 10})
	a := startRelayWith(t, pool, brokers, slowly, opts)
	testkit.WaitFor(t, "relay A to take the lock", 10*time.Second, func() bool { return testutil.ToFloat64(a.relay.m.active) == 1 })
	b := startRelayWith(t, pool, brokers, nil, opts)
	testkit.WaitFor(t, "A to be publishing", 20*time.Second, func() bool { return testutil.ToFloat64(a.relay.m.published) >= 50 })
	if n := unpublished(t, pool); n < 200 {
		t.Fatalf("only %d events left when the session is killed: the test needs a backlog", n)
	}

	pid := lockHolder(t, pool)
	lost := time.Now()
	var ok bool
	if err := pool.QueryRow(context.Background(), `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate the lock session: %v %v", ok, err)
	}
	testkit.WaitFor(t, "A to notice", 2*time.Second, func() bool { return testutil.ToFloat64(a.relay.m.active) == 0 })
	t.Logf("A noticed after %s", time.Since(lost).Round(time.Millisecond))
	testkit.WaitFor(t, "B to take over", 5*time.Second, func() bool { return testutil.ToFloat64(b.relay.m.active) == 1 })
	testkit.WaitFor(t, "the outbox to drain", 60*time.Second, func() bool { return unpublished(t, pool) == 0 })

	checkHandover(t, a, b, lost)
	checkOrdered(t, consumeAll(t, brokers, topic, 3*orders))
}

// TestLeaderCutOffFromTheDatabaseStopsAndIsReplaced: the network between
// the active relay and PostgreSQL goes silent (a proxy stops forwarding;
// no error reaches either side). The relay notices within a lease and
// stops; the server ends its silent session after SessionTimeout, the
// standby takes over, and every event reaches Kafka in per-order seq order.
func TestLeaderCutOffFromTheDatabaseStopsAndIsReplaced(t *testing.T) {
	dsn := testkit.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))))
	host, port, _ := net.SplitHostPort(px.addr())
	p, _ := strconv.Atoi(port)
	cfg.ConnConfig.Host, cfg.ConnConfig.Port = host, uint16(p)
	// Connections the pool opens after the cut never answer: give up soon.
	cfg.ConnConfig.ConnectTimeout = time.Second
	cutPool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cutPool.Close)
	// Before the pool closes, close the proxy: the cancel requests that
	// pgx sends while closing interrupted connections then fail at once
	// instead of waiting on the cut network.
	t.Cleanup(px.close)

	brokers := testkit.KafkaBrokers(t)
	topic := "events-" + uuid.NewString()[:8]
	const orders = 300
	writeOrders(t, pool, orders, order.Reserved, order.Authorized)
	opts := testOptions(topic, Options{BatchSize: 10, SessionTimeout: 3 * time.Second})
	a := startRelayWith(t, cutPool, brokers, slowly, opts)
	testkit.WaitFor(t, "relay A to take the lock", 10*time.Second, func() bool { return testutil.ToFloat64(a.relay.m.active) == 1 })
	b := startRelayWith(t, pool, brokers, nil, opts)
	testkit.WaitFor(t, "A to be publishing", 20*time.Second, func() bool { return testutil.ToFloat64(a.relay.m.published) >= 50 })
	if n := unpublished(t, pool); n < 200 {
		t.Fatalf("only %d events left when the network is cut: the test needs a backlog", n)
	}

	lost := time.Now()
	px.cut()
	testkit.WaitFor(t, "A to notice", opts.lease()+time.Second, func() bool { return testutil.ToFloat64(a.relay.m.active) == 0 })
	t.Logf("A noticed after %s", time.Since(lost).Round(time.Millisecond))
	testkit.WaitFor(t, "B to take over once the server ends A's session", opts.SessionTimeout+5*time.Second, func() bool {
		return testutil.ToFloat64(b.relay.m.active) == 1
	})
	t.Logf("B took over after %s", time.Since(lost).Round(time.Millisecond))
	testkit.WaitFor(t, "the outbox to drain", 60*time.Second, func() bool { return unpublished(t, pool) == 0 })

	checkHandover(t, a, b, lost)
	checkOrdered(t, consumeAll(t, brokers, topic, 3*orders))
}

// proxy forwards TCP connections to a target until cut: from then on it
// drops whatever either side sends, and keeps every connection open, as a
// network that lost its route would. Neither side gets an error.
type proxy struct {
	ln     net.Listener
	target string
	isCut  atomic.Bool
	closed sync.Once

	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) cut() { p.isCut.Store(true) }

func (p *proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		if p.isCut.Load() {
			go p.pipe(c, nil)
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.track(up)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// pipe copies src to dst while the proxy is not cut, and passes a close on.
func (p *proxy) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil && !p.isCut.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if dst != nil && !p.isCut.Load() {
				dst.Close()
			}
			return
		}
	}
}

func (p *proxy) close() {
	p.closed.Do(func() {
		p.ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
}
