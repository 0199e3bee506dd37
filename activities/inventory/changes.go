package inventory

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/ordersaga/ordersaga/internal/retry"
)

// The change feed. Every write of a product or of its stock appends the
// sku to catalog.changes in its own transaction (the tables' triggers,
// whoever writes), stamped by the database with the writing
// transaction's id. A ChangeFeed polls that table with a dedicated
// connection: each poll takes a snapshot and returns the skus written by
// the transactions that it sees committed and the previous poll's snapshot
// did not, so that every committed change is reported exactly once, in
// whatever order the transactions commit, and a poll that comes late
// catches up with everything it missed.
//
// LISTEN/NOTIFY would deliver the same news without polling, but
// PostgreSQL serialises the commits of notifying transactions on one lock
// held while the commit is flushed: on this machine a notify in the
// ledger's statement cut its throughput to a third (docs/performance.md),
// and the ledger writes every reservation, sale and release of every order.
// An insert takes no such lock.

// pollSQL takes the snapshot of this statement and the skus of the changes
// that it sees and $1, the previous poll's snapshot, did not: those of
// transactions at or after $1's xmax, or in progress at $1. The rows this
// statement reads are those its snapshot sees committed, so no change falls
// between two polls.
const pollSQL = `SELECT pg_current_snapshot()::text,
	coalesce((SELECT array_agg(DISTINCT sku) FROM catalog.changes
		WHERE (xid >= pg_snapshot_xmax($1::pg_snapshot) OR xid = ANY (ARRAY(SELECT pg_snapshot_xip($1::pg_snapshot))))
			AND NOT pg_visible_in_snapshot(xid, $1::pg_snapshot)), '{}')`

// ChangeSink is told what changed in the catalogue: a cache of products.
type ChangeSink interface {
	// Invalidate is told the skus of products whose fields or stock changed.
	Invalidate(skus ...string)
	// Reset is told that changes may have been missed (the feed connected,
	// or resumed after too long a pause): whatever the sink holds is stale.
	Reset()
	// Confirm is told that every change committed before asOf has been
	// passed to Invalidate.
	Confirm(asOf time.Time)
}

// FeedOptions tune a ChangeFeed. Zero values take the defaults.
type FeedOptions struct {
	// Interval is the time between two polls (default 25 ms): about the
	// delay between a change and its report.
	Interval time.Duration
	// Timeout bounds a poll; a poll that fails or times out ends the
	// connection, and the feed connects again (default 2 s).
	Timeout time.Duration
	// Retain is how long changes are kept once committed (default 1 min).
	// Every feed prunes what is older; a feed whose previous poll is more
	// than half of Retain old cannot trust it to find everything, and
	// resets its sink instead.
	Retain time.Duration
	// RetryInitial and RetryMax bound the waits between connection
	// attempts (defaults 50 ms and 5 s).
	RetryInitial, RetryMax time.Duration
}

// ChangeFeed reports the changes of the catalogue to a sink. Build it with
// Catalog.Changes and run it with Run.
type ChangeFeed struct {
	db   *Catalog
	opts FeedOptions
	log  *zap.Logger
}

// Changes returns a feed of the catalogue's changes.
func (c *Catalog) Changes(opts FeedOptions, log *zap.Logger) *ChangeFeed {
	if opts.Interval <= 0 {
		opts.Interval = 25 * time.Millisecond
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Retain <= 0 {
		opts.Retain = time.Minute
	}
	if opts.RetryInitial <= 0 {
		opts.RetryInitial = 50 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Second
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &ChangeFeed{db: c, opts: opts, log: log}
}

// feedApplication names the feed's sessions in pg_stat_activity.
const feedApplication = "ordersaga catalog changes"

// Run reports changes to sink until ctx ends: it connects, resets the sink
// and polls every Interval, confirming each poll to the sink, until a poll
// fails; then it connects again, with growing waits. Meanwhile it prunes
// the changes every feed has seen.
func (f *ChangeFeed) Run(ctx context.Context, sink ChangeSink) error {
	pruned := make(chan struct{})
	defer func() { <-pruned }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { defer close(pruned); f.prune(ctx) }()

	backoff := retry.NewBackoff(f.opts.RetryInitial, f.opts.RetryMax)
	for {
		err := f.session(ctx, sink, backoff)
		if ctx.Err() != nil {
			return nil
		}
		next := backoff.Next()
		f.log.Warn("catalog change feed lost; the product cache is off until it reconnects", zap.Error(err), zap.Duration("retry_in", next))
		if retry.Sleep(ctx, next) != nil {
			return nil
		}
	}
}

// session polls on one connection until a poll fails or ctx ends.
func (f *ChangeFeed) session(ctx context.Context, sink ChangeSink, backoff *retry.Backoff) error {
	conn, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	var p poller
	p.opts, p.sink = f.opts, sink
	ticker := time.NewTicker(f.opts.Interval)
	defer ticker.Stop()
	for {
		if err := p.poll(ctx, conn); err != nil {
			return err
		}
		backoff.Reset()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// connect opens the feed's session outside the pool, so that polls never
// queue behind the requests that the pool serves.
func (f *ChangeFeed) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg := f.db.db.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = feedApplication
	cctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect the catalog change feed: %w", err)
	}
	return conn, nil
}

// poller is the state of the polls of one session.
type poller struct {
	opts FeedOptions
	sink ChangeSink
	// snapshot is the previous poll's snapshot ("" before the first), and
	// sent when that poll was sent: its snapshot was taken later.
	snapshot string
	sent     time.Time
}

// poll reads the changes since the previous poll and reports them. The
// first poll of a session, and one after too long a pause, report nothing
// but a Reset: the changes before them may be pruned, or (after a
// failover) numbered by another server.
func (p *poller) poll(ctx context.Context, conn *pgx.Conn) error {
	qctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	sent := time.Now()
	fresh := p.snapshot == "" || sent.Sub(p.sent) > p.opts.Retain/2
	var snapshot string
	var skus []string
	var err error
	if fresh {
		err = conn.QueryRow(qctx, `SELECT pg_current_snapshot()::text`).Scan(&snapshot)
	} else {
		// A plan for these values, not a generic one: the index serves a
		// range this narrow, which the generic plan cannot know.
		err = conn.QueryRow(qctx, pollSQL, pgx.QueryExecModeExec, p.snapshot).Scan(&snapshot, &skus)
	}
	if err != nil {
		return fmt.Errorf("poll the catalog's changes: %w", err)
	}
	if fresh {
		p.sink.Reset()
	} else if len(skus) > 0 {
		p.sink.Invalidate(skus...)
	}
	p.sink.Confirm(sent)
	p.snapshot, p.sent = snapshot, sent
	return nil
}

// prune deletes, once per Retain, the changes of the transactions that had
// ended by a snapshot taken at least Retain before. Every feed that polled
// since then has seen them, and one that did not resets (see poll). Every
// gateway prunes; two that delete the same rows do no harm.
func (f *ChangeFeed) prune(ctx context.Context) {
	var xmin string // of the previous snapshot; "" before the first
	var at time.Time
	for {
		q, args := `SELECT pg_snapshot_xmin(pg_current_snapshot())::text`, []any{}
		if xmin != "" {
			q, args = `WITH d AS (DELETE FROM catalog.changes WHERE xid < $1::xid8)
				SELECT pg_snapshot_xmin(pg_current_snapshot())::text`, []any{xmin}
		}
		var next string
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a frozen database must not hold a pool connection for good
		err := f.db.db.QueryRow(qctx, q, args...).Scan(&next)
		cancel()
		if ctx.Err() != nil {
			return
		}
		wait := f.opts.Retain
		if err != nil {
			f.log.Warn("prune the catalog's changes", zap.Error(err))
		} else {
			// The snapshot was taken before now: now is a safe bound.
			xmin, at = next, time.Now()
			wait = time.Until(at.Add(f.opts.Retain))
		}
		if retry.Sleep(ctx, wait) != nil {
			return
		}
	}
}
