-- Revert raxx_queue:processed_stripe_events from pg
BEGIN;
DROP TABLE processed_stripe_events;
COMMIT;
