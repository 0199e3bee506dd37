-- +goose Up
-- The payment simulator's own ledger: what the provider did, kept apart from
-- payments.payments (the payment worker's view) so that a fault run can check
-- the provider's side too. It lives in the payments database because the
-- simulator runs inside the payment worker and must survive kill -9 of it.
CREATE SCHEMA IF NOT EXISTS paysim;

-- One row per idempotency key (the order id) that was ever authorized.
-- captures counts captures that moved money: a correct system never has
-- more than one.
CREATE TABLE paysim.holds (
    idempotency_key  text PRIMARY KEY,
    authorization_id text NOT NULL,
    amount_cents     bigint NOT NULL,
    currency         text NOT NULL,
    state            text NOT NULL CHECK (state IN ('AUTHORIZED', 'CAPTURED', 'VOIDED')),
    captured_cents   bigint NOT NULL DEFAULT 0,
    captures         int NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Append-only: every call the simulator answered, declines and errors included.
CREATE TABLE paysim.operations (
    id              bigserial PRIMARY KEY,
    idempotency_key text NOT NULL,
    op              text NOT NULL CHECK (op IN ('authorize', 'capture', 'void', 'decline', 'error')),
    amount_cents    bigint NOT NULL DEFAULT 0,
    detail          text NOT NULL DEFAULT '',
    at              timestamptz NOT NULL DEFAULT now()
);

-- The simulator looks up a key's earlier voids and errors.
CREATE INDEX operations_by_key ON paysim.operations (idempotency_key, op);

-- +goose Down
DROP SCHEMA paysim CASCADE;
