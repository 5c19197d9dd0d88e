-- Verify raxx_queue:billing_mirror_refresh on pg
SELECT 'billing_refresh_mirror(text)'::regprocedure;
SELECT billing_customer_lock_key('cus_verify');
