-- Revert raxx_queue:billing_entitlement from pg (back to its @wave1 version)
BEGIN;
DROP VIEW billing_customer_state;
DROP FUNCTION billing_usable_tier(boolean, text);
-- the functions and view of @wave1 are unchanged by the rework
COMMIT;
