-- Revert raxx_queue:billing_ordering from pg
BEGIN;
DROP FUNCTION billing_is_stale(timestamptz, timestamptz, boolean);
COMMIT;
