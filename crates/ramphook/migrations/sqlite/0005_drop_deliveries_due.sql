-- Claims and next-due lookups start from the endpoints (deliveries_endpoint_due,
-- 0004), and counting what is pending can use that index as well: nothing
-- reads deliveries_due any more, while every delivery still wrote and removed
-- an entry in it, and every retry moved one.
DROP INDEX deliveries_due;
