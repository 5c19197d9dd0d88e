-- Deploy raxx_queue:billing_event_retention to pg
-- requires: processed_stripe_events
BEGIN;

-- Stored event payloads are kept EVENT_PAYLOAD_RETENTION_DAYS (beyond Stripe's 30-day
-- events window), then stripped to what deduplication and ordering need: the ledger row
-- (event id, type, created, customer, outcome, source) stays whole, so a late retry of
-- the event is still recognised as a duplicate; the payload keeps only ids.
ALTER TABLE processed_stripe_events ADD COLUMN payload_stripped_at timestamptz;

CREATE INDEX processed_stripe_events_unstripped_idx
    ON processed_stripe_events (received_at) WHERE payload_stripped_at IS NULL;

-- What a payload is stripped to: the envelope and the ids of its object (the ids that
-- tie an event to its customer: billing_event_customer and billing_event_refs read
-- them; the customer is read here as billing_event_customer does, so this change
-- stands on its own).
CREATE FUNCTION billing_strip_payload(p jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'id', p -> 'id',
        'object', p -> 'object',
        'type', p -> 'type',
        'created', p -> 'created',
        'api_version', p -> 'api_version',
        'livemode', p -> 'livemode',
        'data', jsonb_build_object('object', jsonb_strip_nulls(jsonb_build_object(
            'id', p #> '{data,object,id}',
            'object', p #> '{data,object,object}',
            'customer', to_jsonb(CASE
                WHEN p #>> '{data,object,object}' = 'customer' THEN p #>> '{data,object,id}'
                WHEN jsonb_typeof(p #> '{data,object,customer}') = 'object'
                    THEN p #>> '{data,object,customer,id}'
                ELSE p #>> '{data,object,customer}'
            END),
            'charge', to_jsonb(coalesce(p #>> '{data,object,charge,id}',
                                        p #>> '{data,object,charge}')),
            'payment_intent', to_jsonb(coalesce(p #>> '{data,object,payment_intent,id}',
                                                p #>> '{data,object,payment_intent}'))
        )))))
$$;

-- Strip up to p_limit payloads received before p_before; rows another process is
-- stripping are skipped. Returns how many were stripped and the bytes they held.
CREATE FUNCTION billing_strip_old_payloads(p_before timestamptz, p_limit integer)
RETURNS TABLE (stripped integer, bytes_before bigint, bytes_after bigint)
LANGUAGE sql AS $$
    WITH due AS (
        SELECT e.event_id, pg_column_size(e.payload) AS size
          FROM processed_stripe_events AS e
         WHERE e.payload_stripped_at IS NULL AND e.received_at < p_before
         ORDER BY e.received_at
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), done AS (
        UPDATE processed_stripe_events AS e
           SET payload = billing_strip_payload(e.payload), payload_stripped_at = now()
          FROM due
         WHERE e.event_id = due.event_id
        RETURNING due.size, pg_column_size(e.payload) AS size_after
    )
    SELECT count(*)::integer, coalesce(sum(size), 0)::bigint, coalesce(sum(size_after), 0)::bigint
      FROM done
$$;

COMMIT;
