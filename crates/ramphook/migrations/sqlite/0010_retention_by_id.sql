-- Retention cuts finished deliveries by id and takes their attempts with
-- them (see the PostgreSQL twin of this migration, 0011): the indexes by
-- age are not read any more.
DROP INDEX deliveries_finished;
DROP INDEX attempts_at;
