-- Revert raxx_queue:billing_grace from pg
BEGIN;
DROP FUNCTION billing_grace_on_payment(timestamptz, integer, timestamptz, timestamptz);
DROP FUNCTION billing_grace_on_failure(text, timestamptz, integer, integer, timestamptz, integer);
DROP FUNCTION billing_grace_on_status(text, timestamptz, integer, timestamptz, integer);
COMMIT;
