-- Claims and the next due time start from the endpoints whose lanes have
-- room and read only their pending rows, in due order: deliveries piling up
-- behind a full lane (a partner that times out) are never scanned.
CREATE INDEX deliveries_endpoint_due ON deliveries(endpoint_id, next_attempt_at, seq) WHERE status = 'pending';
