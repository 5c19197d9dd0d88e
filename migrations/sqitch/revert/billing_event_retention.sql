-- Revert raxx_queue:billing_event_retention from pg
BEGIN;

DROP FUNCTION billing_strip_old_payloads(timestamptz, integer);
DROP FUNCTION billing_strip_payload(jsonb);
DROP INDEX processed_stripe_events_unstripped_idx;
ALTER TABLE processed_stripe_events DROP COLUMN payload_stripped_at;

COMMIT;
