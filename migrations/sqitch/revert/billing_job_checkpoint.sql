-- Revert raxx_queue:billing_job_checkpoint from pg
BEGIN;
DROP TABLE billing_job_checkpoint;
COMMIT;
