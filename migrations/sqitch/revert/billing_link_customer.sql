-- Revert raxx_queue:billing_link_customer from pg (back to its @wave1 version)
BEGIN;
SET LOCAL client_min_messages = error;
DROP FUNCTION billing_link_customer(text, text, text, text, text);
-- what @wave1 deployed, from its own script (its BEGIN is a no-op inside this
-- transaction; its COMMIT ends it)
\ir ../deploy/billing_link_customer@wave1.sql
