-- +goose Up
CREATE TABLE auth.users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL,
    name          text NOT NULL,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('customer', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Emails are compared case-insensitively: one account per mailbox.
CREATE UNIQUE INDEX users_email_key ON auth.users (lower(email));

-- +goose Down
DROP TABLE auth.users;
