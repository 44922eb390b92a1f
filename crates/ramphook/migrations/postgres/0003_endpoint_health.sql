-- Secret rotation, endpoint health and retention.

-- During a rotation the old secret keeps signing (beside the new one) until
-- previous_secret_expires_at.
ALTER TABLE endpoints ADD COLUMN previous_secret TEXT;
ALTER TABLE endpoints ADD COLUMN previous_secret_expires_at BIGINT;
-- When the endpoint's current run of failures began (NULL = healthy), and why
-- ramphook disabled it (NULL = enabled, or disabled by hand).
ALTER TABLE endpoints ADD COLUMN failing_since BIGINT;
ALTER TABLE endpoints ADD COLUMN disabled_reason TEXT;

-- Retention purges by age.
CREATE INDEX attempts_at ON attempts(at);
CREATE INDEX deliveries_finished ON deliveries(created_at) WHERE status <> 'pending';
CREATE INDEX idempotency_created ON idempotency(created_at);
