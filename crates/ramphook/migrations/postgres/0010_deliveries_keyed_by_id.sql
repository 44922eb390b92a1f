-- A delivery is found by its id (the API, the recorder, claims, retention);
-- `seq` only orders the rows of an index that holds it (an order's lane to
-- an endpoint, a partner's deliveries). The primary key on `seq` was an
-- index entry every append wrote, and every recorded outcome again (a new
-- version of the row, since its status is in partial indexes' predicates),
-- that no query read: `id` is the primary key instead. Rebuilds the id
-- index once (docs/PERFORMANCE.md). SQLite keeps `seq` as its rowid, which
-- costs no index.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_id_key;
ALTER TABLE deliveries ADD PRIMARY KEY (id);
