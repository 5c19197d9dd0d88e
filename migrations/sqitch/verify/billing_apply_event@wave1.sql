-- Verify raxx_queue:billing_apply_event on pg
SELECT 'billing_apply_stripe_event(jsonb)'::regprocedure;
SELECT 'billing_link_event_customer(text, text)'::regprocedure;
SELECT 1 / CASE WHEN billing_epoch('{"t": 0}', 't') = 'epoch'::timestamptz THEN 1 ELSE 0 END;
