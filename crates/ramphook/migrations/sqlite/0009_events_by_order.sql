-- Events are kept by order (see the PostgreSQL twin of this migration): the
-- unique index on `id` and the foreign key to `orders` went, `events_order`
-- is their one index beside the rowid. SQLite drops neither in place, so the
-- table is rebuilt.
CREATE TABLE events_by_order (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    event_name   TEXT NOT NULL,
    tx_hash      TEXT,
    reason       TEXT,
    time_stamp   INTEGER NOT NULL
);
INSERT INTO events_by_order (seq, id, order_id, event_name, tx_hash, reason, time_stamp)
    SELECT seq, id, order_id, event_name, tx_hash, reason, time_stamp FROM events;
DROP TABLE events;
ALTER TABLE events_by_order RENAME TO events;
CREATE INDEX events_order ON events(order_id, seq);
