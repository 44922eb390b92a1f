-- Ids and keys compare byte by byte ("C"), as SQLite compares them. Under
-- the database's default collation (say en_US.UTF-8, or C.UTF-8 before
-- PostgreSQL 17) every comparison in a b-tree over them went through the
-- C library's strcoll, and every append, outcome and claim makes about a
-- dozen descents of such indexes (in `single`, 4.8 % of the database's
-- CPU per delivery on C.UTF-8: docs/PERFORMANCE.md). Retention's cut of
-- deliveries by id (`id < floor`) is a byte-order question too, now asked
-- as one. Only indexed and joined columns change; each index over them is
-- rebuilt.
ALTER TABLE partners ALTER COLUMN id TYPE text COLLATE "C",
                     ALTER COLUMN api_key_hash TYPE text COLLATE "C";
ALTER TABLE endpoints ALTER COLUMN id TYPE text COLLATE "C",
                      ALTER COLUMN partner_id TYPE text COLLATE "C";
ALTER TABLE validation_configs ALTER COLUMN id TYPE text COLLATE "C",
                               ALTER COLUMN partner_id TYPE text COLLATE "C";
ALTER TABLE orders ALTER COLUMN id TYPE text COLLATE "C",
                   ALTER COLUMN partner_id TYPE text COLLATE "C",
                   ALTER COLUMN email TYPE text COLLATE "C";
ALTER TABLE events ALTER COLUMN order_id TYPE text COLLATE "C";
ALTER TABLE deliveries ALTER COLUMN id TYPE text COLLATE "C",
                       ALTER COLUMN endpoint_id TYPE text COLLATE "C",
                       ALTER COLUMN order_id TYPE text COLLATE "C",
                       ALTER COLUMN partner_id TYPE text COLLATE "C";
ALTER TABLE attempts ALTER COLUMN delivery_id TYPE text COLLATE "C";
ALTER TABLE idempotency ALTER COLUMN scope TYPE text COLLATE "C",
                        ALTER COLUMN key TYPE text COLLATE "C";
