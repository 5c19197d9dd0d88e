-- Revert raxx_queue:billing_mirror_destination from pg
BEGIN;

DROP TABLE billing_mirror_destination;

COMMIT;
