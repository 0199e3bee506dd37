package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ordersaga/ordersaga/workflows/order"
)

// This file reads what the orders and the relay did, interval by
// interval, for the monitoring (GET /api/v1/system/metrics). The events
// are the system-wide truth: every process that records a transition
// writes one, and the relay marks each one it published.
//
// Each figure is counted in buckets of a whole number of seconds, aligned
// on the Unix epoch: bucket b holds what happened in [b*step, (b+1)*step).

// Ended is how many orders ended in one bucket with one outcome.
type Ended struct {
	// Bucket is the start of the interval.
	Bucket time.Time
	Status order.Status
	Reason order.Reason
	Orders int64
}

// Latency is the time from placement to the end of the orders that ended
// in one bucket.
type Latency struct {
	// Bucket is the start of the interval.
	Bucket time.Time
	// Orders is how many orders ended in it.
	Orders   int64
	P50, P99 time.Duration
}

// Outcomes counts the orders that ended in [from, to), by bucket of step,
// status and reason, and measures how long they took from placement (the
// event of seq 1) to their terminal event (percentile_cont). An order that
// an operator repairs after it FAILED ends twice, and is counted twice.
// Buckets where nothing ended are left out.
func (l *Log) Outcomes(ctx context.Context, from, to time.Time, step time.Duration) ([]Ended, []Latency, error) {
	secs, err := stepSeconds(step)
	if err != nil {
		return nil, nil, err
	}
	// One scan, two groupings: (bucket, status, reason) for the counts,
	// (bucket) for the percentiles over every outcome. The range on
	// occurred_at uses order_events_occurred_idx; seq 1 is found by the
	// (order_id, seq) key.
	rows, err := l.db.Query(ctx, `WITH ends AS (
			SELECT floor(extract(epoch FROM e.occurred_at) / $3)::bigint AS bucket, e.status, e.reason,
				extract(epoch FROM e.occurred_at - p.occurred_at)::float8 AS took
			FROM orders.order_events e
			JOIN orders.order_events p ON p.order_id = e.order_id AND p.seq = 1
			WHERE e.occurred_at >= $1 AND e.occurred_at < $2 AND e.status = ANY($4))
		SELECT bucket, coalesce(status, ''), coalesce(reason, ''), count(*), GROUPING(status, reason) <> 0,
			percentile_cont(0.5) WITHIN GROUP (ORDER BY took), percentile_cont(0.99) WITHIN GROUP (ORDER BY took)
		FROM ends GROUP BY GROUPING SETS ((bucket, status, reason), (bucket))`,
		from, to, secs, statusNames(order.TerminalStatuses()))
	if err != nil {
		return nil, nil, fmt.Errorf("count the orders that ended: %w", err)
	}
	var ended []Ended
	var latency []Latency
	var bucket, n int64
	var status, reason string
	var total bool
	var p50, p99 float64
	_, err = pgx.ForEachRow(rows, []any{&bucket, &status, &reason, &n, &total, &p50, &p99}, func() error {
		start := time.Unix(bucket*secs, 0).UTC()
		if total {
			latency = append(latency, Latency{Bucket: start, Orders: n, P50: seconds(p50), P99: seconds(p99)})
		} else {
			ended = append(ended, Ended{Bucket: start, Status: order.Status(status), Reason: order.Reason(reason), Orders: n})
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("count the orders that ended: %w", err)
	}
	return ended, latency, nil
}

// Published is what the relay published in one bucket.
type Published struct {
	// Bucket is the start of the interval.
	Bucket time.Time
	Events int64
	// Bytes is the size of the records' keys and values, as the relay
	// encodes them; Kafka's own framing and headers are not counted.
	Bytes int64
}

// Published counts the events the relay published in [from, to) by bucket
// of step (by published_at, when the relay marked them after the broker's
// acknowledgement), with the bytes of their records. Buckets where nothing
// was published are left out.
func (l *Log) Published(ctx context.Context, from, to time.Time, step time.Duration) ([]Published, error) {
	secs, err := stepSeconds(step)
	if err != nil {
		return nil, err
	}
	// The size is computed in SQL from the stored columns, as recordSize
	// describes, rather than by encoding every event again here.
	rows, err := l.db.Query(ctx, `SELECT floor(extract(epoch FROM published_at) / $3)::bigint, count(*),
			sum($4 + 2 * length(seq::text) + octet_length(status) + octet_length(reason) + length(total_cents::text)
				+ CASE WHEN to_char(occurred_at, 'US') = '000000' THEN 0
					ELSE 1 + length(rtrim(to_char(occurred_at, 'US'), '0')) END)::bigint
		FROM orders.order_events WHERE published_at >= $1 AND published_at < $2 GROUP BY 1`,
		from, to, secs, recordFixedSize)
	if err != nil {
		return nil, fmt.Errorf("count the published events: %w", err)
	}
	var out []Published
	var bucket, n, size int64
	_, err = pgx.ForEachRow(rows, []any{&bucket, &n, &size}, func() error {
		out = append(out, Published{Bucket: time.Unix(bucket*secs, 0).UTC(), Events: n, Bytes: size})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count the published events: %w", err)
	}
	return out, nil
}

// recordFixedSize is the part of a record's size (key and value, as
// publishBatch builds them) that is the same for every event: the key is
// an order id, the value the event's JSON, whose variable parts are its
// seq (twice: in event_id and seq), status, reason, total and the
// fraction of a second of its time, which RFC 3339 writes without
// trailing zeros (pgx reads microseconds). Statuses and reasons are plain
// ASCII, which JSON writes unescaped. It is measured on a real encoding,
// so that it follows the event's fields; a test holds the SQL sum to
// publishBatch's encoding.
var recordFixedSize = func() int64 {
	e := order.OrderEvent{OrderID: uuid.Nil, CustomerID: uuid.Nil, Seq: 1, OccurredAt: time.Unix(0, 0)}.Complete()
	value, err := json.Marshal(e)
	if err != nil {
		panic(err) // a struct of strings, numbers and a time cannot fail
	}
	variable := 2*len(strconv.Itoa(e.Seq)) + len(e.Status) + len(e.Reason) + len(strconv.FormatInt(e.TotalCents, 10))
	return int64(len(uuid.Nil.String()) + len(value) - variable)
}()

// stepSeconds checks that step is a whole number of seconds, at least one.
func stepSeconds(step time.Duration) (int64, error) {
	if step < time.Second || step%time.Second != 0 {
		return 0, fmt.Errorf("outbox: a bucket must be a whole number of seconds, not %s", step)
	}
	return int64(step / time.Second), nil
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func statusNames(ss []order.Status) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}
