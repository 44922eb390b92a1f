-- A delivery's first attempt is kept on its own row; `attempts` logs the
-- ones after it (see the PostgreSQL twin of this migration). The same
-- schema on both.
ALTER TABLE deliveries ADD COLUMN first_attempt_at INTEGER;
ALTER TABLE deliveries ADD COLUMN first_status_code INTEGER;
ALTER TABLE deliveries ADD COLUMN first_duration_ms INTEGER;
ALTER TABLE deliveries ADD COLUMN first_error TEXT;
ALTER TABLE deliveries ADD COLUMN first_response_body TEXT;
