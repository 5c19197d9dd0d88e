-- Verify raxx_queue:billing_event_batch on pg
SELECT 'billing_apply_stripe_events(jsonb, text)'::regprocedure;
