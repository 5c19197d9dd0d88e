-- Revert raxx_queue:billing_link_customer from pg
BEGIN;
DROP FUNCTION billing_link_customer(text, text, text, text);
COMMIT;
