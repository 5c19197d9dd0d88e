-- Revert raxx_queue:billing_entitlement from pg
BEGIN;
DROP VIEW billing_current_subscription;
DROP FUNCTION billing_status_rank(text);
DROP FUNCTION billing_tier_rank(text);
DROP FUNCTION billing_entitled(text, timestamptz, timestamptz);
COMMIT;
