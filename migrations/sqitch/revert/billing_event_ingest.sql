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

COMMIT;
