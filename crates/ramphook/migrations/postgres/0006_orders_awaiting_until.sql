-- Expiry finds awaiting orders by `awaiting_until` (their `expires_at` while
-- they await payment, NULL once they leave) instead of a partial index on
-- `status`. PostgreSQL can update a row in place (HOT: no new index entries)
-- only when no indexed column changes, and a column in an index's predicate
-- counts: with `status` there, every transition wrote a new entry into each
-- of the orders' indexes. Now only the first one does (it nulls
-- `awaiting_until`); an on-ramp's later transitions are HOT updates.
ALTER TABLE orders ADD COLUMN awaiting_until BIGINT;
UPDATE orders SET awaiting_until = expires_at WHERE status = 'awaiting_payment';
CREATE INDEX orders_awaiting_until ON orders (awaiting_until) WHERE awaiting_until IS NOT NULL;
DROP INDEX orders_awaiting_expiry;
