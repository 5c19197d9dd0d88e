-- Deploy raxx_queue:billing_event_ingest to pg
-- requires: billing_erasure
-- requires: billing_event_retention
-- requires: billing_grace
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

-- The grace rules (billing_grace) as PL/pgSQL, same signatures and results: a SQL
-- function returning a record is not inlined into its caller, so it was parsed and
-- planned again on every call (about a tenth of an event's Postgres time); PL/pgSQL
-- keeps its plans for the session.
CREATE OR REPLACE FUNCTION billing_grace_on_status(
    p_status text, p_grace_until timestamptz, p_failures integer, p_at timestamptz,
    p_days integer, OUT grace_until timestamptz, OUT failures integer)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    grace_until := CASE
                       WHEN p_status <> 'past_due' THEN NULL
                       WHEN p_grace_until IS NULL AND p_failures = 0
                           THEN p_at + make_interval(days => p_days)
                       ELSE p_grace_until
                   END;
    failures := CASE WHEN p_status IN ('active', 'trialing') THEN 0 ELSE p_failures END;
END;
$$;

CREATE OR REPLACE FUNCTION billing_grace_on_failure(
    p_status text, p_grace_until timestamptz, p_failures integer, p_attempt_count integer,
    p_at timestamptz, p_days integer, OUT grace_until timestamptz, OUT failures integer)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    failures := greatest(p_failures + 1, coalesce(p_attempt_count, 1));
    grace_until := CASE
                       WHEN p_status NOT IN ('active', 'trialing', 'past_due') THEN NULL
                       WHEN failures >= 2
                           THEN least(coalesce(p_grace_until, 'infinity'::timestamptz), p_at)
                       ELSE least(coalesce(p_grace_until, 'infinity'::timestamptz),
                                  p_at + make_interval(days => p_days))
                   END;
END;
$$;

CREATE OR REPLACE FUNCTION billing_grace_on_payment(
    p_grace_until timestamptz, p_failures integer, p_last_failed_at timestamptz,
    p_paid_at timestamptz, OUT grace_until timestamptz, OUT failures integer)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    cleared boolean := p_last_failed_at IS NULL OR p_last_failed_at <= p_paid_at;
BEGIN
    grace_until := CASE WHEN cleared THEN NULL ELSE p_grace_until END;
    failures := CASE WHEN cleared THEN 0 ELSE p_failures END;
END;
$$;

COMMIT;
