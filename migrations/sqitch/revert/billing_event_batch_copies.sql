-- Revert raxx_queue:billing_event_batch_copies from pg
BEGIN;

-- billing_apply_stripe_events of billing_event_raw_copy
CREATE OR REPLACE FUNCTION billing_apply_stripe_events(p jsonb, p_lock_timeout text, p_raws text[])
RETURNS TABLE (n integer, outcome text, queue_customer_id text, mirror_changed boolean,
               mirror_version bigint, access_change jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
BEGIN
    IF jsonb_typeof(p) IS DISTINCT FROM 'array'
       OR coalesce(array_length(p_raws, 1), 0) > jsonb_array_length(p) THEN
        RAISE EXCEPTION 'billing_apply_stripe_events takes a JSON array, and no more raw copies than events' USING ERRCODE = '22023';
    END IF;
    PERFORM set_config('lock_timeout', p_lock_timeout, true);
    FOR i IN 0 .. jsonb_array_length(p) - 1 LOOP
        RETURN QUERY SELECT i + 1, r.outcome, r.queue_customer_id, r.mirror_changed,
                            r.mirror_version, r.access_change
                       FROM billing_apply_stripe_event(p -> i, p_raws[i + 1]) AS r;
    END LOOP;
END;
$$;

COMMIT;
