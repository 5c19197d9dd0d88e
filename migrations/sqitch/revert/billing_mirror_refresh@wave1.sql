-- Revert raxx_queue:billing_mirror_refresh from pg
BEGIN;
DROP FUNCTION billing_refresh_mirror(text, timestamptz);
DROP FUNCTION billing_customer_lock_key(text);
COMMIT;
