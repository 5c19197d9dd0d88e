-- Deploy raxx_queue:billing_ordering to pg
BEGIN;

-- The ordering guard (SPEC §4.3): every stored Stripe object keeps the `created` time
-- of the event that last wrote it (source_event_created_at), and an event older than
-- that is stale: it changes nothing. `p_force` marks a state read from Stripe just now
-- (the re-read of a same-second tie), which is newer than anything stored. A tie is
-- not stale: what a tie means is decided by the writer of each object
-- (billing_store_subscription re-reads a subscription from Stripe).
CREATE FUNCTION billing_is_stale(p_stored_at timestamptz, p_event_at timestamptz,
                                 p_force boolean)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NOT p_force AND p_stored_at IS NOT NULL AND p_stored_at > p_event_at
$$;

COMMIT;
