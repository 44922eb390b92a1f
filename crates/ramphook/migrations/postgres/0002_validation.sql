-- Validation callbacks: at most one per partner (PostgreSQL twin of the
-- SQLite migration; times are BIGINT epoch milliseconds).

CREATE TABLE validation_configs (
    partner_id         TEXT PRIMARY KEY REFERENCES partners(id),
    id                 TEXT NOT NULL UNIQUE,   -- new at every PUT; keys in-memory caches
    url                TEXT NOT NULL,
    auth               TEXT NOT NULL,          -- JSON: {"type": …, credentials}
    timeout_ms         BIGINT NOT NULL,
    on_error           TEXT NOT NULL,          -- deny | allow
    cache_ttl_seconds  BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
