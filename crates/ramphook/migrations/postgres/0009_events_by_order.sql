-- Events are kept by order: they are only ever read as one order's history
-- (`WHERE order_id = $1 ORDER BY seq`), so (order_id, seq) is their primary
-- key and their one index. The surrogate key on `seq`, the unique index on
-- `id` and the foreign key to `orders` went: every append paid for two index
-- entries nobody read and a lookup of the order the same statement had just
-- moved (an event is written only from the `UPDATE … RETURNING` of its
-- order, and orders are never deleted; event ids are UUIDv7s made here).
-- About a tenth of the database's CPU per delivery (docs/PERFORMANCE.md).
ALTER TABLE events DROP CONSTRAINT events_order_id_fkey;
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events DROP CONSTRAINT events_id_key;
DROP INDEX events_order;
ALTER TABLE events ADD PRIMARY KEY (order_id, seq);
