-- Retention cuts finished deliveries by id (a UUIDv7 begins with the time it
-- was made) on the primary key, and takes their attempts with them, found by
-- delivery. The two indexes by age went: `deliveries_finished` got an entry
-- with every recorded outcome, `attempts_at` with every attempt row, for a
-- purge that runs now and then. `attempts` is kept by delivery, as it is
-- read: (delivery_id, seq) is its primary key and one index, as events'
-- is (order_id, seq) (migration 0009).
DROP INDEX deliveries_finished;
DROP INDEX attempts_at;
ALTER TABLE attempts DROP CONSTRAINT attempts_pkey;
DROP INDEX attempts_delivery;
ALTER TABLE attempts ADD PRIMARY KEY (delivery_id, seq);
