-- Deploy raxx_queue:billing_event_batch to pg
-- requires: billing_access_policy
BEGIN;

-- Stripe's deliveries that arrive together are applied together: one statement, so one
-- transaction and one commit, for several events. Each event is applied exactly as on
-- its own (billing_apply_stripe_event), in the order given; the answer has one row per
-- event, numbered from 1. Any error rolls the whole statement back: the caller then
-- applies each event on its own, so one event's failure is its own. A lock the batch
-- would wait for longer than p_lock_timeout (a customer held by an erasure, a stuck
-- session) is such an error: only that customer's events then wait for it, on their own.
CREATE FUNCTION billing_apply_stripe_events(p jsonb, p_lock_timeout text)
RETURNS TABLE (n integer, outcome text, queue_customer_id text, mirror_changed boolean,
               mirror_version bigint, access_change jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
BEGIN
    IF jsonb_typeof(p) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'billing_apply_stripe_events takes a JSON array' USING ERRCODE = '22023';
    END IF;
    PERFORM set_config('lock_timeout', p_lock_timeout, true);
    FOR i IN 0 .. jsonb_array_length(p) - 1 LOOP
        RETURN QUERY SELECT i + 1, r.outcome, r.queue_customer_id, r.mirror_changed,
                            r.mirror_version, r.access_change
                       FROM billing_apply_stripe_event(p -> i) AS r;
    END LOOP;
END;
$$;

COMMIT;
