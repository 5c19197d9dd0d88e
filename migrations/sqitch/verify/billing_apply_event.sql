-- Verify raxx_queue:billing_apply_event on pg
SELECT 'billing_apply_stripe_event(jsonb)'::regprocedure;
SELECT 'billing_store_subscription(jsonb, timestamptz, text, integer)'::regprocedure;
SELECT 1 / CASE WHEN billing_epoch('{"t": 0}', 't') = 'epoch'::timestamptz THEN 1 ELSE 0 END;
