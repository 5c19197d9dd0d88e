-- Verify raxx_queue:billing_event_raw_copy on pg
SELECT payload_raw FROM processed_stripe_events WHERE false;
SELECT 'billing_apply_stripe_event(jsonb, text)'::regprocedure;
SELECT 'billing_apply_stripe_events(jsonb, text, text[])'::regprocedure;
SELECT 'billing_event_payload(jsonb, text)'::regprocedure;
