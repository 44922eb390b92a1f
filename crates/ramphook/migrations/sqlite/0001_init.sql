-- ramphook schema (SQLite). Times are integer milliseconds since the epoch.

CREATE TABLE partners (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    api_key_hash TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL
);

CREATE TABLE endpoints (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    partner_id   TEXT NOT NULL REFERENCES partners(id),
    url          TEXT NOT NULL,
    secret       TEXT NOT NULL,
    event_types  TEXT,              -- JSON array, NULL = every event
    description  TEXT,
    enabled      INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
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
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
);
CREATE INDEX orders_awaiting_expiry ON orders(expires_at) WHERE status = 'awaiting_payment';
CREATE INDEX orders_partner_email ON orders(partner_id, email, created_at);

CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    order_id     TEXT NOT NULL REFERENCES orders(id),
    event_name   TEXT NOT NULL,
    tx_hash      TEXT,
    reason       TEXT,
    time_stamp   INTEGER NOT NULL
);
CREATE INDEX events_order ON events(order_id, seq);

-- The outbox: one row per (event, endpoint). `seq` orders an order's
-- deliveries per endpoint; `locked_until` is the claim lease.
CREATE TABLE deliveries (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    event_id         TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    partner_id       TEXT NOT NULL,
    order_id         TEXT NOT NULL,
    event_name       TEXT NOT NULL,
    time_stamp       INTEGER NOT NULL,
    status           TEXT NOT NULL,     -- pending | delivered | failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    locked_until     INTEGER,
    last_status_code INTEGER,
    is_test          INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_lane ON deliveries(endpoint_id, order_id, seq) WHERE status = 'pending';
CREATE INDEX deliveries_partner ON deliveries(partner_id, seq);

CREATE TABLE attempts (
    seq            INTEGER PRIMARY KEY,
    delivery_id    TEXT NOT NULL,
    at             INTEGER NOT NULL,
    status_code    INTEGER,
    duration_ms    INTEGER NOT NULL,
    error          TEXT,
    response_body  TEXT
);
CREATE INDEX attempts_delivery ON attempts(delivery_id, seq);

-- Idempotency-Key records: the first answer, replayed for the same request.
CREATE TABLE idempotency (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        INTEGER NOT NULL,
    body          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
