-- +goose Up
-- Which products changed, and in which transaction: every write of a
-- product or its stock appends its sku here in the same transaction (one
-- row per statement, duplicates allowed). Gateways keep product pages in a
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

-- +goose Down
DROP TABLE catalog.changes;
