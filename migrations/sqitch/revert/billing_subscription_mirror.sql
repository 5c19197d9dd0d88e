-- Revert raxx_queue:billing_subscription_mirror from pg
BEGIN;
DROP TABLE billing_subscription_mirror;
COMMIT;
