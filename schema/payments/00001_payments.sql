-- +goose Up
-- One row per order. PENDING is written before the provider is called, so a
-- void that races a slow authorization finds the row and wins; a void that
-- comes first leaves VOIDED, which refuses a late authorization.
CREATE TABLE payments.payments (
    order_id         uuid PRIMARY KEY,
    status           text NOT NULL CHECK (status IN ('PENDING', 'AUTHORIZED', 'CAPTURED', 'VOIDED', 'DECLINED')),
    amount_cents     bigint NOT NULL CHECK (amount_cents >= 0),
    currency         char(3) NOT NULL,
    -- The provider's reference for the authorization; never card data.
    authorization_id text,
    decline_code     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE payments.payments;
