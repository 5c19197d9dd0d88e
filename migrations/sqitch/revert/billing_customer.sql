-- Revert raxx_queue:billing_customer from pg
BEGIN;
DROP TABLE billing_customer;
COMMIT;
