-- A delivery's first attempt is kept on its own row; `attempts` logs the
-- ones after it. Most deliveries succeed at once, and their attempt row (a
-- heap tuple and three index entries) was a quarter of the recorder's work:
-- recording an outcome rewrites the delivery row anyway, so its first
-- attempt rides along (docs/PERFORMANCE.md). Deliveries recorded before this
-- migration keep every attempt in `attempts` (first_attempt_at is NULL).
ALTER TABLE deliveries
    ADD COLUMN first_attempt_at bigint,
    ADD COLUMN first_status_code bigint,
    ADD COLUMN first_duration_ms bigint,
    ADD COLUMN first_error text,
    ADD COLUMN first_response_body text;
