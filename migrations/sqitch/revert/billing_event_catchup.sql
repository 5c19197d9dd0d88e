-- Revert raxx_queue:billing_event_catchup from pg
BEGIN;

DROP TABLE billing_job_run;
DROP TABLE billing_job_lease;

-- The earlier vocabularies again, NOT VALID: audit rows cannot be rewritten (the log
-- is append-only), so rows written as 'catchup' stay; new rows obey the old check.
ALTER TABLE billing_action_log DROP CONSTRAINT billing_action_log_actor_check;
ALTER TABLE billing_action_log ADD CONSTRAINT billing_action_log_actor_check
    CHECK (actor IN ('stripe', 'raptor', 'console', 'reconcile', 'system')) NOT VALID;

ALTER TABLE processed_stripe_events DROP CONSTRAINT processed_stripe_events_source_check;
ALTER TABLE processed_stripe_events ADD CONSTRAINT processed_stripe_events_source_check
    CHECK (source IN ('webhook', 'replay', 'reconcile')) NOT VALID;

COMMIT;
