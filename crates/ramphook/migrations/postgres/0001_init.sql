-- ramphook schema (PostgreSQL). Times are BIGINT milliseconds since the epoch;
-- flags are BIGINT 0/1 so both backends share one set of queries.

CREATE TABLE partners (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    api_key_hash TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL
);

CREATE TABLE endpoints (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    partner_id   TEXT NOT NULL REFERENCES partners(id),
    url          TEXT NOT NULL,
    secret       TEXT NOT NULL,
    event_types  TEXT,              -- JSON array, NULL = every event
    description  TEXT,
    enabled      BIGINT NOT NULL DEFAULT 1,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX endpoints_partner ON endpoints(partner_id, seq);

CREATE TABLE orders (
    id               TEXT PRIMARY KEY,   -- UUID
    partner_id       TEXT NOT NULL REFERENCES partners(id),
    email            TEXT NOT NULL,
    direction        TEXT NOT NULL,
    status           TEXT NOT NULL,
    fiat_currency    TEXT,
    fiat_amount      TEXT,
    crypto_currency  TEXT,
    crypto_amount    TEXT,
    wallet_address   TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX orders_awaiting_expiry ON orders(expires_at) WHERE status = 'awaiting_payment';
CREATE INDEX orders_partner_email ON orders(partner_id, email, created_at);

CREATE TABLE events (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    order_id     TEXT NOT NULL REFERENCES orders(id),
    event_name   TEXT NOT NULL,
    tx_hash      TEXT,
    reason       TEXT,
    time_stamp   BIGINT NOT NULL
);
CREATE INDEX events_order ON events(order_id, seq);

-- The outbox: one row per (event, endpoint). `seq` orders an order's
-- deliveries per endpoint; `locked_until` is the claim lease.
CREATE TABLE deliveries (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    event_id         TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    partner_id       TEXT NOT NULL,
    order_id         TEXT NOT NULL,
    event_name       TEXT NOT NULL,
    time_stamp       BIGINT NOT NULL,
    status           TEXT NOT NULL,     -- pending | delivered | failed
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    locked_until     BIGINT,
    last_status_code BIGINT,
    is_test          BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_lane ON deliveries(endpoint_id, order_id, seq) WHERE status = 'pending';
CREATE INDEX deliveries_partner ON deliveries(partner_id, seq);

CREATE TABLE attempts (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id    TEXT NOT NULL,
    at             BIGINT NOT NULL,
    status_code    BIGINT,
    duration_ms    BIGINT NOT NULL,
    error          TEXT,
    response_body  TEXT
);
CREATE INDEX attempts_delivery ON attempts(delivery_id, seq);

-- Idempotency-Key records: the first answer, replayed for the same request.
CREATE TABLE idempotency (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        BIGINT NOT NULL,
    body          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
