-- Verify raxx_queue:billing_audit_horizon on pg
SELECT 'billing_audit_horizon(text)'::regprocedure;
