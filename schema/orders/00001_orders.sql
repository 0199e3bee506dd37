-- +goose Up
CREATE TABLE orders.orders (
    id                  uuid PRIMARY KEY,
    customer_id         uuid NOT NULL,
    status              text NOT NULL CHECK (status IN ('PENDING', 'RESERVED', 'AUTHORIZED', 'CONFIRMED', 'REJECTED', 'CANCELLED', 'FAILED')),
    reason              text NOT NULL DEFAULT '',
    total_cents         bigint NOT NULL CHECK (total_cents >= 0),
    currency            char(3) NOT NULL,
    payment_method      text NOT NULL,
    -- last_seq is the seq of the event that set status: a late or repeated
    -- RecordStatus never moves the read model backwards.
    last_seq            integer NOT NULL DEFAULT 1,
    -- Set once a workflow is known to exist; the starter takes the rest.
    workflow_started_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_idx ON orders.orders (customer_id, created_at DESC, id DESC);
CREATE INDEX orders_created_idx ON orders.orders (created_at DESC, id DESC);
CREATE INDEX orders_status_idx ON orders.orders (status, created_at DESC, id DESC);
CREATE INDEX orders_unstarted_idx ON orders.orders (created_at) WHERE workflow_started_at IS NULL;

CREATE TABLE orders.order_lines (
    order_id         uuid NOT NULL REFERENCES orders.orders (id),
    line_no          integer NOT NULL,
    sku              text NOT NULL,
    name             text NOT NULL,
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
    line_total_cents bigint NOT NULL CHECK (line_total_cents >= 0),
    PRIMARY KEY (order_id, line_no),
    UNIQUE (order_id, sku)
);

-- The transactional outbox and the order history in one: a row is written in
-- the same transaction as the status it records; published_at is set by the
-- relay once Kafka acknowledged it.
CREATE TABLE orders.order_events (
    id           bigserial PRIMARY KEY,
    order_id     uuid NOT NULL REFERENCES orders.orders (id),
    seq          integer NOT NULL CHECK (seq >= 1),
    customer_id  uuid NOT NULL,
    status       text NOT NULL,
    reason       text NOT NULL DEFAULT '',
    total_cents  bigint NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    UNIQUE (order_id, seq)
);
CREATE INDEX order_events_unpublished_idx ON orders.order_events (id) WHERE published_at IS NULL;

CREATE TABLE orders.idempotency_keys (
    customer_id  uuid NOT NULL,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash bytea NOT NULL,
    order_id     uuid NOT NULL REFERENCES orders.orders (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, key)
);

-- +goose Down
DROP TABLE orders.idempotency_keys;
DROP TABLE orders.order_events;
DROP TABLE orders.order_lines;
DROP TABLE orders.orders;
