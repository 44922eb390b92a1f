-- Expiry finds awaiting orders by `awaiting_until` (their `expires_at` while
-- they await payment, NULL once they leave), as on PostgreSQL, where a
-- partial index on `status` kept every transition from being a HOT update
-- (see the PostgreSQL twin of this migration). The same schema on both.
ALTER TABLE orders ADD COLUMN awaiting_until INTEGER;
UPDATE orders SET awaiting_until = expires_at WHERE status = 'awaiting_payment';
CREATE INDEX orders_awaiting_until ON orders (awaiting_until) WHERE awaiting_until IS NOT NULL;
DROP INDEX orders_awaiting_expiry;
