-- Deploy raxx_queue:billing_retention_stub to pg
-- requires: billing_event_raw_copy
BEGIN;

-- Retention strips an event with a raw copy from its stub, without parsing the copy.
-- The stub the webhook lane stores (pipeline.stored_payload) keeps every field that
-- billing_strip_payload keeps (the envelope, the object's id and type, its customer,
-- charge and payment intent, an expanded one cut to its id), so stripping the stub
-- gives what stripping the whole event gives: tests/webhooks/test_raw_copy.py checks
-- it for every object of Stripe's fixtures. Parsing each copy first cost retention
-- about a quarter of its pace (docs/privacy.md). An event without a raw copy holds the
-- whole event in `payload`, stripped as before.

CREATE OR REPLACE FUNCTION billing_strip_old_payloads(p_before timestamptz, p_limit integer)
RETURNS TABLE (stripped integer, bytes_before bigint, bytes_after bigint)
LANGUAGE sql AS $$
    WITH due AS (
        SELECT e.event_id,
               pg_column_size(e.payload) + coalesce(pg_column_size(e.payload_raw), 0) AS size
          FROM processed_stripe_events AS e
         WHERE e.payload_stripped_at IS NULL AND e.received_at < p_before
         ORDER BY e.received_at
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), done AS (
        UPDATE processed_stripe_events AS e
           SET payload = billing_strip_payload(e.payload),
               payload_raw = NULL, payload_stripped_at = now()
          FROM due
         WHERE e.event_id = due.event_id
        RETURNING due.size, pg_column_size(e.payload) AS size_after
    )
    SELECT count(*)::integer, coalesce(sum(size), 0)::bigint, coalesce(sum(size_after), 0)::bigint
      FROM done
$$;

COMMIT;
