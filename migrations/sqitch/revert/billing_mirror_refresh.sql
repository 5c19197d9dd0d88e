-- Revert raxx_queue:billing_mirror_refresh from pg (back to its @wave1 version)
BEGIN;
SET LOCAL client_min_messages = error;
DROP FUNCTION billing_refresh_mirror(text);
DROP FUNCTION billing_customer_lock_key(text);
-- what @wave1 deployed, from its own script (its BEGIN is a no-op inside this
-- transaction; its COMMIT ends it)
\ir ../deploy/billing_mirror_refresh@wave1.sql
