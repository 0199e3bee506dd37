-- +goose Up
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE catalog.products (
    sku         text PRIMARY KEY CHECK (sku ~ '^[A-Z0-9][A-Z0-9-]{1,63}$'),
    name        text NOT NULL,
    brand       text NOT NULL,
    description text NOT NULL DEFAULT '',
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    currency    char(3) NOT NULL DEFAULT 'USD',
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Filters and keyset pagination of GET /products (ordered by sku).
CREATE INDEX products_brand_idx ON catalog.products (brand, sku);
CREATE INDEX products_price_idx ON catalog.products (price_cents, sku);
-- Text search on name and brand: trigram index serves ILIKE '%q%'.
CREATE INDEX products_search_idx ON catalog.products
    USING gin ((lower(name || ' ' || brand)) gin_trgm_ops);

-- One row per (sku, warehouse). The CHECK is the last line of defence
-- against overselling: no code path can commit reserved > on_hand.
CREATE TABLE catalog.stock (
    sku        text NOT NULL REFERENCES catalog.products (sku),
    warehouse  text NOT NULL,
    on_hand    integer NOT NULL,
    reserved   integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, warehouse),
    CONSTRAINT stock_reserved_within_on_hand CHECK (0 <= reserved AND reserved <= on_hand)
);

-- One row per order that the inventory has seen: it makes ReserveStock,
-- CommitStock and ReleaseStock idempotent and orders them (a release that
-- arrives before its reservation leaves a RELEASED row that refuses it).
CREATE TABLE catalog.reservations (
    order_id   uuid PRIMARY KEY,
    status     text NOT NULL CHECK (status IN ('RESERVED', 'COMMITTED', 'RELEASED', 'REJECTED')),
    detail     jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE catalog.reservation_lines (
    order_id  uuid NOT NULL REFERENCES catalog.reservations (order_id),
    sku       text NOT NULL,
    warehouse text NOT NULL,
    quantity  integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku, warehouse),
    FOREIGN KEY (sku, warehouse) REFERENCES catalog.stock (sku, warehouse)
);

-- The ledger of every stock change. Σ on_hand_delta per (sku, warehouse)
-- equals on_hand, and Σ reserved_delta equals reserved.
CREATE TABLE catalog.stock_movements (
    id             bigserial PRIMARY KEY,
    sku            text NOT NULL,
    warehouse      text NOT NULL,
    on_hand_delta  integer NOT NULL,
    reserved_delta integer NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('initial', 'adjust', 'reserve', 'release', 'commit')),
    reason         text NOT NULL DEFAULT '',
    order_id       uuid,
    actor          text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (sku, warehouse) REFERENCES catalog.stock (sku, warehouse)
);
CREATE INDEX stock_movements_sku_idx ON catalog.stock_movements (sku, warehouse, id);
CREATE INDEX stock_movements_order_idx ON catalog.stock_movements (order_id) WHERE order_id IS NOT NULL;

-- +goose Down
DROP TABLE catalog.stock_movements;
DROP TABLE catalog.reservation_lines;
DROP TABLE catalog.reservations;
DROP TABLE catalog.stock;
DROP TABLE catalog.products;
