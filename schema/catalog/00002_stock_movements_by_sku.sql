-- +goose NO TRANSACTION
-- +goose Up
-- A product's movement history pages newest first across its warehouses
-- (GET /products/{sku}/movements): without this index that read sorts every
-- movement of the sku, which for a best seller is the whole of its sales.
-- CONCURRENTLY, so that building it on a live ledger does not hold up the
-- reservations that append to it. A build that failed half-way leaves an
-- invalid index that IF NOT EXISTS would keep: the DROP clears it first.
DROP INDEX CONCURRENTLY IF EXISTS catalog.stock_movements_sku_id_idx;
CREATE INDEX CONCURRENTLY stock_movements_sku_id_idx ON catalog.stock_movements (sku, id);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS catalog.stock_movements_sku_id_idx;
