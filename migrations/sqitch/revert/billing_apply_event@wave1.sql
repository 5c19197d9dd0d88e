-- Revert raxx_queue:billing_apply_event from pg
BEGIN;
DROP FUNCTION billing_apply_stripe_event(jsonb);
DROP FUNCTION billing_apply_invoice(jsonb, timestamptz, boolean);
DROP FUNCTION billing_apply_subscription(jsonb, timestamptz, boolean);
DROP FUNCTION billing_apply_customer(jsonb, timestamptz, boolean);
DROP FUNCTION billing_link_event_customer(text, text);
DROP FUNCTION billing_epoch(jsonb, text);
COMMIT;
