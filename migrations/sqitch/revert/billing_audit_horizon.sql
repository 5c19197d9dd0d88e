-- Revert raxx_queue:billing_audit_horizon from pg
BEGIN;
DROP FUNCTION billing_audit_horizon(text);
COMMIT;
