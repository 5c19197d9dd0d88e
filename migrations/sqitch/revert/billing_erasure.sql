-- Revert raxx_queue:billing_erasure from pg
BEGIN;

DROP FUNCTION billing_erase_customer(text, text);
DROP TRIGGER billing_event_recheck ON processed_stripe_events;
DROP FUNCTION billing_event_recheck();
DROP TRIGGER billing_event_redact ON processed_stripe_events;
DROP FUNCTION billing_event_redact();
DROP TRIGGER billing_customer_tombstone ON billing_customer;
DROP FUNCTION billing_customer_tombstone();
DROP FUNCTION billing_event_erased_customer(text, jsonb);
DROP FUNCTION billing_event_refs(jsonb);
DROP FUNCTION billing_event_customer(jsonb);
DROP FUNCTION billing_redact_payload(jsonb);
DROP FUNCTION billing_redact_walk(jsonb, jsonb);
DROP FUNCTION billing_json_has_value(jsonb);
DROP FUNCTION billing_personal_category(text);
DROP INDEX billing_customer_erased_idx;
DROP TABLE billing_erased_reference;
ALTER TABLE billing_customer DROP COLUMN erased_at;

COMMIT;
