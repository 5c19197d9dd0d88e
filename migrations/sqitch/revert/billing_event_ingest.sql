-- Revert raxx_queue:billing_event_ingest from pg
BEGIN;

ALTER TABLE processed_stripe_events ALTER COLUMN payload SET COMPRESSION default;
ALTER TABLE processed_stripe_events ALTER COLUMN payload SET STORAGE EXTENDED;

CREATE OR REPLACE FUNCTION billing_event_redact() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_customer text := billing_event_erased_customer(NEW.stripe_customer_id, NEW.payload);
BEGIN
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

CREATE FUNCTION billing_event_recheck() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF billing_event_erased_customer(NEW.stripe_customer_id, NEW.payload) IS NOT NULL THEN
        UPDATE processed_stripe_events
           SET payload = billing_redact_payload(payload)
         WHERE event_id = NEW.event_id
           AND payload IS DISTINCT FROM billing_redact_payload(payload);
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER billing_event_recheck
    AFTER INSERT ON processed_stripe_events
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION billing_event_recheck();

-- the grace rules as SQL functions again (billing_grace)
CREATE OR REPLACE FUNCTION billing_grace_on_status(
    p_status text, p_grace_until timestamptz, p_failures integer, p_at timestamptz,
    p_days integer, OUT grace_until timestamptz, OUT failures integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
               WHEN p_status <> 'past_due' THEN NULL
               WHEN p_grace_until IS NULL AND p_failures = 0
                   THEN p_at + make_interval(days => p_days)
               ELSE p_grace_until
           END,
           CASE WHEN p_status IN ('active', 'trialing') THEN 0 ELSE p_failures END
$$;

CREATE OR REPLACE FUNCTION billing_grace_on_failure(
    p_status text, p_grace_until timestamptz, p_failures integer, p_attempt_count integer,
    p_at timestamptz, p_days integer, OUT grace_until timestamptz, OUT failures integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
               WHEN p_status NOT IN ('active', 'trialing', 'past_due') THEN NULL
               WHEN f.failures >= 2
                   THEN least(coalesce(p_grace_until, 'infinity'::timestamptz), p_at)
               ELSE least(coalesce(p_grace_until, 'infinity'::timestamptz),
                          p_at + make_interval(days => p_days))
           END,
           f.failures
      FROM (SELECT greatest(p_failures + 1, coalesce(p_attempt_count, 1)) AS failures) AS f
$$;

CREATE OR REPLACE FUNCTION billing_grace_on_payment(
    p_grace_until timestamptz, p_failures integer, p_last_failed_at timestamptz,
    p_paid_at timestamptz, OUT grace_until timestamptz, OUT failures integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN cleared THEN NULL ELSE p_grace_until END,
           CASE WHEN cleared THEN 0 ELSE p_failures END
      FROM (SELECT p_last_failed_at IS NULL OR p_last_failed_at <= p_paid_at AS cleared) AS c
$$;

COMMIT;
