-- Verify raxx_queue:billing_invoice_mirror on pg
SELECT 'billing_apply_stripe_event(jsonb)'::regprocedure;
