-- +goose NO TRANSACTION
-- +goose Up
-- The monitoring (GET /api/v1/system/metrics) reads the last 15 minutes of
-- orders.order_events by when events occurred (orders ending, placement to
-- end) and by when the relay published them (Kafka throughput). Without
-- these indexes each read scans the whole history.
--
-- CONCURRENTLY, so that building them does not hold up orders being
-- recorded; a build that failed half-way leaves an invalid index, which
-- the DROP clears before the next attempt.
DROP INDEX CONCURRENTLY IF EXISTS orders.order_events_occurred_idx;
CREATE INDEX CONCURRENTLY order_events_occurred_idx ON orders.order_events (occurred_at);
DROP INDEX CONCURRENTLY IF EXISTS orders.order_events_published_idx;
CREATE INDEX CONCURRENTLY order_events_published_idx ON orders.order_events (published_at) WHERE published_at IS NOT NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS orders.order_events_published_idx;
DROP INDEX CONCURRENTLY IF EXISTS orders.order_events_occurred_idx;
