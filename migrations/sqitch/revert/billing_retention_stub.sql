-- Revert raxx_queue:billing_retention_stub from pg
BEGIN;

-- billing_strip_old_payloads of billing_event_raw_copy
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
           SET payload = billing_strip_payload(billing_event_payload(e.payload, e.payload_raw)),
               payload_raw = NULL, payload_stripped_at = now()
          FROM due
         WHERE e.event_id = due.event_id
        RETURNING due.size, pg_column_size(e.payload) AS size_after
    )
    SELECT count(*)::integer, coalesce(sum(size), 0)::bigint, coalesce(sum(size_after), 0)::bigint
      FROM done
$$;

COMMIT;
