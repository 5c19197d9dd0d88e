-- Revert raxx_queue:billing_apply_event from pg (back to its @wave1 version)
BEGIN;
SET LOCAL client_min_messages = error;
DROP FUNCTION billing_apply_stripe_event(jsonb);
DROP FUNCTION billing_apply_invoice(jsonb, timestamptz, boolean);
DROP FUNCTION billing_store_subscription(jsonb, timestamptz, text, integer);
DROP FUNCTION billing_apply_customer(jsonb, timestamptz, boolean);
DROP FUNCTION billing_epoch(jsonb, text);
-- what @wave1 deployed, from its own script (its BEGIN is a no-op inside this
-- transaction; its COMMIT ends it)
\ir ../deploy/billing_apply_event@wave1.sql
