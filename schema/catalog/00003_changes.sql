-- +goose Up
-- Which products changed, and in which transaction: every write of a
-- product or its stock appends its sku here in the same transaction, by
-- the triggers below (one row per sku per statement), so that no writer can
-- forget it: an older build during a rolling deploy, a script, an
-- operator's manual fix. Gateways keep product pages in a
-- cache and poll this table for what to drop: a poll returns the skus of
-- the transactions that committed since its previous snapshot (see
-- activities/inventory/changes.go). Unlike LISTEN/NOTIFY, appending here
-- takes no lock that serialises commits. Rows are pruned after a minute or
-- two, once every gateway's polls have passed them.
CREATE TABLE catalog.changes (
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    sku text NOT NULL
);
CREATE INDEX changes_xid_idx ON catalog.changes (xid);

-- +goose StatementBegin
CREATE FUNCTION catalog.record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO catalog.changes (sku) SELECT DISTINCT sku FROM changed_rows;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- Statement-level, over the statement's transition table: one insert per
-- statement however many rows it changed. A transition table serves one
-- event only, hence a trigger per event.
CREATE TRIGGER stock_inserted AFTER INSERT ON catalog.stock REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION catalog.record_changes();
CREATE TRIGGER stock_updated AFTER UPDATE ON catalog.stock REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION catalog.record_changes();
CREATE TRIGGER stock_deleted AFTER DELETE ON catalog.stock REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION catalog.record_changes();
CREATE TRIGGER products_inserted AFTER INSERT ON catalog.products REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION catalog.record_changes();
CREATE TRIGGER products_updated AFTER UPDATE ON catalog.products REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION catalog.record_changes();
CREATE TRIGGER products_deleted AFTER DELETE ON catalog.products REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION catalog.record_changes();

-- +goose Down
DROP TRIGGER stock_inserted ON catalog.stock;
DROP TRIGGER stock_updated ON catalog.stock;
DROP TRIGGER stock_deleted ON catalog.stock;
DROP TRIGGER products_inserted ON catalog.products;
DROP TRIGGER products_updated ON catalog.products;
DROP TRIGGER products_deleted ON catalog.products;
DROP FUNCTION catalog.record_changes();
DROP TABLE catalog.changes;
