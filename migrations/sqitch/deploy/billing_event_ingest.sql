-- Deploy raxx_queue:billing_event_ingest to pg
-- requires: billing_erasure
-- requires: billing_event_retention
BEGIN;

-- Storing an event costs less, with the same guarantees.
--
-- An event's row waits for its customer's lock (the one billing_apply_stripe_event and
-- an erasure take) before it is written, so an erasure in flight has committed by then
-- and the BEFORE check sees it. The commit-time recheck, which read every stored
-- payload back from TOAST to look the customer up a second time, goes.
CREATE OR REPLACE FUNCTION billing_event_redact() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_customer text;
BEGIN
    IF TG_OP = 'INSERT' AND NEW.stripe_customer_id IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(billing_customer_lock_key(NEW.stripe_customer_id));
    END IF;
    -- evaluated after the lock: a fresh snapshot, an erasure that held it committed
    v_customer := billing_event_erased_customer(NEW.stripe_customer_id, NEW.payload);
    IF v_customer IS NOT NULL THEN
        NEW.payload := billing_redact_payload(NEW.payload);
        INSERT INTO billing_erased_reference (ref, queue_customer_id)
        SELECT NEW.payload #>> '{data,object,id}', v_customer
         WHERE NEW.payload #>> '{data,object,id}' IS NOT NULL
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER billing_event_recheck ON processed_stripe_events;
DROP FUNCTION billing_event_recheck();

-- The payload stays in the event's row, compressed (about 2.7 KB for a full-size event):
-- no TOAST table row and TOAST index entry per event. lz4 where the server has it: it
-- compresses several times faster than pglz.
ALTER TABLE processed_stripe_events ALTER COLUMN payload SET STORAGE MAIN;
DO $$
BEGIN
    EXECUTE 'ALTER TABLE processed_stripe_events ALTER COLUMN payload SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- a server built without lz4 keeps pglz
END;
$$;

COMMIT;
