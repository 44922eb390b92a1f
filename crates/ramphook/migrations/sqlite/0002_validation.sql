-- Validation callbacks: at most one per partner. Portable SQL (the same
-- statements run on PostgreSQL); times are integer epoch milliseconds.

CREATE TABLE validation_configs (
    partner_id         TEXT PRIMARY KEY REFERENCES partners(id),
    id                 TEXT NOT NULL UNIQUE,   -- new at every PUT; keys in-memory caches
    url                TEXT NOT NULL,
    auth               TEXT NOT NULL,          -- JSON: {"type": …, credentials}
    timeout_ms         INTEGER NOT NULL,
    on_error           TEXT NOT NULL,          -- deny | allow
    cache_ttl_seconds  INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
