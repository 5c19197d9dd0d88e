-- Revert raxx_queue:billing_subscription from pg
BEGIN;
DROP TABLE billing_subscription;
COMMIT;
