-- Claims start from the endpoints whose lanes have room and read only their
-- pending rows, in due order, as on SQLite: deliveries piling up behind a
-- full lane (a partner that times out) are never scanned, and the plan does
-- not hang on statistics of a table that was empty a moment ago.
CREATE INDEX deliveries_endpoint_due ON deliveries (endpoint_id, next_attempt_at, seq) WHERE status = 'pending';
