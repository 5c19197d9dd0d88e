-- Revert raxx_queue:billing_event_batch from pg
BEGIN;

DROP FUNCTION billing_apply_stripe_events(jsonb, text);

COMMIT;
