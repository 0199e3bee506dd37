-- +goose Up
-- Set by CapturePayment just before it calls the provider: the latest moment
-- that call can still take effect there. A void (the saga's, or an
-- operator's repair) must not race a capture that may still land; NULL once
-- the capture settled, or when none was issued.
ALTER TABLE payments.payments ADD COLUMN capture_in_flight_until timestamptz;

-- +goose Down
ALTER TABLE payments.payments DROP COLUMN capture_in_flight_until;
