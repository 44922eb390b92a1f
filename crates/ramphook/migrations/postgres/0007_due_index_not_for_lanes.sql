-- The lane checks (an append's "is an earlier delivery of this order to this
-- endpoint pending?", and the claim's) must read deliveries_lane: a few
-- entries per order. Both partial indexes had the same predicate, so the
-- planner could answer them from deliveries_endpoint_due as well, reading
-- every pending (and not yet vacuumed) entry of the endpoint and sorting,
-- and did whenever its statistics were taken with few deliveries pending:
-- the two costs then differ by the indexes' sizes alone. It happened in
-- about one `single` run in three, at 2-3 times the append's buffers.
-- A predicate the lane checks do not imply (next_attempt_at is NOT NULL,
-- and every claim and next-due lookup compares it, which implies it) takes
-- the due index out of their choices. SQLite keeps its index as it is:
-- ramphook gives its planner no statistics to go wrong with.
DROP INDEX deliveries_endpoint_due;
CREATE INDEX deliveries_endpoint_due ON deliveries (endpoint_id, next_attempt_at, seq)
    WHERE status = 'pending' AND next_attempt_at IS NOT NULL;
