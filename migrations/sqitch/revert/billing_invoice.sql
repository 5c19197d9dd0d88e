-- Revert raxx_queue:billing_invoice from pg
BEGIN;
DROP TABLE billing_invoice;
COMMIT;
